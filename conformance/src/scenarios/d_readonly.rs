//! D — read-only and data flow.

use anyhow::{Result, ensure};
use fake_entra::{BadToken, TokenSpec};
use serde_json::json;

use super::{catalogue, me_of, scenario, structured_ok, uri_where};
use crate::{Persona, World};

catalogue!($ d_readonly_tests {
    d01_no_mutating_graph_request_after_a_mixed_run => scenario!("D01", "no mutating Graph request after a mixed run", d01_no_mutating_request),
    d02_no_content_caching => scenario!(
    "D02",
    "no content caching: two reads, two Graph requests",
    d02_no_content_caching
        ),
    d03_every_tool_is_read_only => scenario!(
        "D03",
        "every tool is annotated read-only; no write tool",
        d03_tools_are_read_only
    ),
    d04_every_call_is_audited_and_no_secret_is_logged => scenario!(
        "D04",
        "every call is audited; no secret or content in any log",
        d04_audit_without_secrets
    ),
    d05_returned_content_is_marked_untrusted => scenario!(
    "D05",
    "returned content is fenced and marked as untrusted third-party data",
    d05_content_marked_untrusted
        ),
});

/// A plausible argument set for every tool, so a run touches every Graph path.
pub fn sample_calls(uri: &str) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("get_me", json!({})),
        ("sharepoint_search", json!({"query": "budget", "file_types": ["xlsx", "pdf"]})),
        ("sharepoint_folder_search", json!({"name": "Reports"})),
        ("outlook_email_search", json!({"query": "budget", "has_attachments": true})),
        ("outlook_email_search", json!({"from": "kim.akers@litware.com"})),
        ("outlook_calendar_search", json!({"start": "2026-05-25", "end": "2026-06-08"})),
        ("outlook_calendar_search", json!({"query": "sync"})),
        (
            "find_meeting_availability",
            json!({"attendees": ["alex@contoso.com"], "duration_minutes": 30,
                   "start": "2026-06-01", "end": "2026-06-03"}),
        ),
        ("chat_message_search", json!({"query": "budget"})),
        ("read_resource", json!({"uri": uri})),
    ]
}

pub async fn d01_no_mutating_request(world: &World) -> Result<()> {
    for p in [Persona::Adele, Persona::AdeleFabrikam, Persona::Megan] {
        let s = world.session(p).await?;
        let tools = s.tool_names().await?;
        let mail = structured_ok(&s, "outlook_email_search", json!({"query": "budget"})).await?;
        let uri = uri_where(&mail, "messages", "subject", "budget")?;
        let calls = sample_calls(&uri);
        for tool in &tools {
            ensure!(calls.iter().any(|(t, _)| t == tool), "no sample call for listed tool {tool}");
        }
        for (tool, args) in calls {
            let out = s.call_ok(tool, args).await?;
            ensure!(!out.is_error, "{tool} failed for {}: {}", s.upn, out.text);
        }
    }
    let violations = read_only_violations(&world.graph.journal());
    ensure!(violations.is_empty(), "Graph requests that are not reads: {violations:?}");
    Ok(())
}

/// What in a fake-graph journal is not a read: requests fake-graph flags as mutating, any
/// method but GET and POST, and a POST outside the read-only query endpoints (search, free/
/// busy). The gate applies this to the journal of every scenario it runs (D01 over the whole
/// run, error, retry and CAE paths included).
pub fn read_only_violations(journal: &[fake_graph::JournalEntry]) -> Vec<String> {
    journal
        .iter()
        .filter(|e| {
            e.mutating
                || !(e.request_method == "GET"
                    || (e.request_method == "POST"
                        && (e.path.ends_with("/search/query")
                            || e.path.ends_with("/calendar/getSchedule"))))
        })
        .map(|e| format!("{} {}", e.request_method, e.request_uri))
        .collect()
}

pub async fn d03_tools_are_read_only(world: &World) -> Result<()> {
    let s = world.session(Persona::Adele).await?;
    let tools = s.list_tools().await?;
    ensure!(!tools.is_empty(), "no tools");
    for t in tools {
        let v = serde_json::to_value(&t)?;
        let a = &v["annotations"];
        ensure!(a["readOnlyHint"] == json!(true), "{} is not readOnlyHint: {a}", t.name);
        ensure!(
            a["destructiveHint"] == json!(false),
            "{} is not destructiveHint=false: {a}",
            t.name
        );
        let name = t.name.to_lowercase();
        for verb in
            ["send", "create", "update", "delete", "write", "post", "move", "upload", "reply"]
        {
            ensure!(!name.starts_with(verb), "write-like tool {name}");
        }
    }
    Ok(())
}

/// Strings of fixture content (mail subjects and bodies) long enough to be distinctive.
fn content_strings(world: &World) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if matches!(k.as_str(), "subject" | "body" | "content" | "preview")
                        && let Some(s) = x.as_str()
                        && s.len() >= 16
                    {
                        out.push(s.to_owned());
                    }
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(&*world.fixtures) {
        walk(&v, &mut out);
    }
    out.truncate(500);
    out
}

pub async fn d04_audit_without_secrets(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    for s in [&adele, &lee, &adele] {
        me_of(&s.call_ok("get_me", json!({})).await?)?;
        let mail = structured_ok(s, "outlook_email_search", json!({"query": "budget"})).await?;
        let uri = uri_where(&mail, "messages", "subject", "budget")?;
        for (tool, args) in sample_calls(&uri) {
            s.call_ok(tool, args).await?;
        }
    }
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let forged = world.mint(&TokenSpec::user(tid, oid).bad(BadToken::TamperedPayload));
    let _ = world
        .session_with_token(Persona::Adele.upn(), forged)
        .call_tool_http("get_me", json!({}))
        .await?;

    let records = world.audit_records();
    let calls: Vec<_> = records.iter().filter(|r| r["event"] == "tool_call").collect();
    ensure!(calls.len() >= 33, "expected ≥ 33 tool_call audit records, found {}", calls.len());
    for tool in sample_calls("").iter().map(|(t, _)| *t) {
        ensure!(calls.iter().any(|r| r["tool"] == json!(tool)), "no audit record for {tool}");
    }
    ensure!(
        calls.iter().any(|r| r["graph_request_ids"].as_array().is_some_and(|a| !a.is_empty())),
        "no audit record carries Graph request ids"
    );
    for r in &calls {
        for field in [
            "tenant_id",
            "user_id",
            "tool",
            "graph_request_ids",
            "outcome",
            "status",
            "latency_ms",
            "request_id",
            "obo",
        ] {
            ensure!(!r[field].is_null(), "audit record lacks {field}: {r}");
        }
    }
    ensure!(
        calls.iter().any(|r| r["user_id"] == json!(lee.object_id.to_string())
            && r["tenant_id"] == json!(lee.tenant_id.to_string())),
        "no audit record for lee's call"
    );
    ensure!(
        records.iter().any(|r| r["event"] == "token_refused"
            && !r["peer"].is_null()
            && r["request_id"].as_str().is_some_and(|id| !id.is_empty())),
        "the forged token left no audit record with its peer and request id"
    );
    ensure!(
        records.iter().all(|r| r["event"] != "token_accepted"),
        "accepted tokens belong in the call's record, not a record per request"
    );

    let logs = world.all_logs();
    ensure!(!logs.is_empty(), "no logs captured");
    for s in world.secrets() {
        ensure!(
            s.len() < 8 || !logs.contains(&s),
            "a token or secret appears in the logs ({} chars)",
            s.len()
        );
    }
    for c in content_strings(world) {
        if let Some(line) = logs.lines().find(|l| l.contains(&c)) {
            let masked = line.replace(&c, "[CONTENT]");
            return Err(anyhow::anyhow!(
                "fixture content ({} chars) appears in the logs: {:.300}",
                c.len(),
                masked
            ));
        }
    }
    ensure!(!super::contains_jwt(&logs), "a JWT (user or Graph token) appears in the logs");
    ensure!(
        !logs.to_lowercase().contains("authorization: bearer"),
        "an Authorization header was logged"
    );
    Ok(())
}

pub async fn d02_no_content_caching(world: &World) -> Result<()> {
    let s = world.session(Persona::Adele).await?;
    let mail = structured_ok(&s, "outlook_email_search", json!({"query": "budget"})).await?;
    let uri = uri_where(&mail, "messages", "subject", "budget")?;
    let docs = structured_ok(&s, "sharepoint_search", json!({"query": "design"})).await?;
    let file = uri_where(&docs, "items", "name", "Design.docx")?;
    let count = || world.graph.requests_for_user(s.tenant_id, s.object_id).len();
    for uri in [uri.clone(), file.clone()] {
        let before = count();
        let first = structured_ok(&s, "read_resource", json!({"uri": uri})).await?;
        let mid = count();
        let second = structured_ok(&s, "read_resource", json!({"uri": uri})).await?;
        let after = count();
        ensure!(mid > before, "the first read of {uri} made no Graph request");
        ensure!(
            after - mid == mid - before,
            "the second read of {uri} made {} Graph requests, the first {}: served from a cache",
            after - mid,
            mid - before
        );
        ensure!(first["text"] == second["text"], "two reads of {uri} differ");
    }
    // Search responses are not cached either: the same search twice costs the same Graph
    // requests, and content removed in between is gone from the second answer.
    for (tool, args) in [
        ("outlook_email_search", json!({"query": "budget"})),
        ("sharepoint_search", json!({"query": "design"})),
        ("chat_message_search", json!({"query": "budget"})),
        ("outlook_calendar_search", json!({"start": "2026-05-25", "end": "2026-06-08"})),
    ] {
        let before = count();
        structured_ok(&s, tool, args.clone()).await?;
        let mid = count();
        structured_ok(&s, tool, args).await?;
        let after = count();
        ensure!(mid > before, "{tool}: the first search made no Graph request");
        ensure!(
            after - mid == mid - before,
            "{tool}: the second search made {} Graph requests, the first {}: served from a cache",
            after - mid,
            mid - before
        );
    }
    let message_id = uri
        .strip_prefix("m365://mail/")
        .map(|id| percent_encoding::percent_decode_str(id).decode_utf8_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("not a mail URI: {uri}"))?;
    ensure!(
        world.graph.delete_message(s.tenant_id, s.object_id, &message_id),
        "fake-graph has no message {message_id}"
    );
    let again = structured_ok(&s, "outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(
        !again.to_string().contains(&uri),
        "a deleted message is still in the search answer: served from a cache"
    );
    let (drive, item) = file
        .strip_prefix("m365://drive/")
        .and_then(|rest| rest.split_once("/item/"))
        .map(|(d, i)| {
            let d = percent_encoding::percent_decode_str(d).decode_utf8_lossy().into_owned();
            (d, i.to_owned())
        })
        .ok_or_else(|| anyhow::anyhow!("not a drive item URI: {file}"))?;
    ensure!(
        world.graph.delete_drive_item(s.tenant_id, &drive, &item),
        "fake-graph has no drive item {drive}/{item}"
    );
    let again = structured_ok(&s, "sharepoint_search", json!({"query": "design"})).await?;
    ensure!(
        !again.to_string().contains(&file),
        "a deleted file is still in the search answer: served from a cache"
    );
    Ok(())
}

/// A mail, a chat and a file reach the model as quoted third-party data (`security.md` J2):
/// the text is fenced and labelled, the result carries the untrusted-content `_meta` marker, and
/// a closing fence inside the content cannot end the fence early.
pub async fn d05_content_marked_untrusted(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let found = structured_ok(&adele, "outlook_email_search", json!({"query": "budget"})).await?;
    let uri = uri_where(&found, "messages", "subject", "budget")?;
    for (tool, args) in [
        ("outlook_email_search", json!({"query": "budget"})),
        ("chat_message_search", json!({"query": "budget"})),
        ("sharepoint_search", json!({"query": "budget"})),
        ("read_resource", json!({"uri": uri})),
    ] {
        let result = adele.call_tool_http(tool, args).await?.tool_result()?;
        ensure!(result["isError"] != json!(true), "{tool} failed: {result}");
        ensure!(
            result.pointer("/_meta/m365-connector~1untrusted-content") == Some(&json!(true)),
            "{tool}: the result is not marked as untrusted content: {:?}",
            result.get("_meta")
        );
        let text = result.pointer("/content/0/text").and_then(|t| t.as_str()).unwrap_or_default();
        ensure!(
            text.contains("not instructions") && text.contains("<untrusted-m365-content>"),
            "{tool}: the text is not labelled as third-party data: {text:.200}"
        );
        ensure!(
            text.trim_end().ends_with("</untrusted-m365-content>")
                && text.matches("</untrusted-m365-content>").count() == 1,
            "{tool}: the fence does not close exactly once at the end"
        );
    }
    Ok(())
}
