//! D — read-only and data flow.

use anyhow::{Result, ensure};
use fake_entra::{BadToken, TokenSpec};
use serde_json::json;

use super::{me_of, scenario};
use crate::{Persona, World};

pub fn scenarios() -> Vec<super::Scenario> {
    let mut v = vec![
        scenario!("D01", "no mutating Graph request after a mixed run", d01_no_mutating_request),
        scenario!(
            "D03",
            "every tool is annotated read-only; no write tool",
            d03_tools_are_read_only
        ),
        scenario!(
            "D04",
            "every call is audited; no secret or content in any log",
            d04_audit_without_secrets
        ),
    ];
    #[cfg(feature = "pending-tools")]
    v.push(scenario!(
        "D02",
        "no content caching: two reads, two Graph requests",
        pending::d02_no_content_caching
    ));
    v.sort_by_key(|s| s.id);
    v
}

pub async fn d01_no_mutating_request(world: &World) -> Result<()> {
    for p in [Persona::Adele, Persona::AdeleFabrikam, Persona::Megan] {
        let s = world.session(p).await?;
        for tool in s.tool_names().await? {
            let _ = s
                .call_tool_http(&tool, json!({"query": "budget", "uri": "m365://me/profile"}))
                .await?;
        }
    }
    let m = world.graph.mutating_requests();
    ensure!(
        m.is_empty(),
        "mutating Graph requests: {:?}",
        m.iter().map(|e| &e.request_uri).collect::<Vec<_>>()
    );
    Ok(())
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
        #[cfg(feature = "pending-tools")]
        {
            s.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
            s.call_ok("sharepoint_search", json!({"query": "report"})).await?;
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
    ensure!(calls.len() >= 3, "expected ≥ 3 tool_call audit records, found {}", calls.len());
    for r in &calls {
        for field in ["tenant_id", "user_id", "tool", "graph_request_ids", "outcome", "latency_ms"]
        {
            ensure!(!r[field].is_null(), "audit record lacks {field}: {r}");
        }
    }
    ensure!(
        calls.iter().any(|r| r["user_id"] == json!(lee.object_id.to_string())
            && r["tenant_id"] == json!(lee.tenant_id.to_string())),
        "no audit record for lee's call"
    );
    ensure!(
        records.iter().any(|r| r["event"] == "token_refused"),
        "the forged token left no audit record"
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
        ensure!(!logs.contains(&c), "fixture content appears in the logs: {c:.40}");
    }
    ensure!(
        !logs.to_lowercase().contains("authorization: bearer"),
        "an Authorization header was logged"
    );
    Ok(())
}

#[cfg(feature = "pending-tools")]
mod pending {
    use super::*;

    pub async fn d02_no_content_caching(world: &World) -> Result<()> {
        let s = world.session(Persona::Adele).await?;
        let out = s.call_ok("outlook_email_search", json!({"query": "a"})).await?;
        let uri = out.structured.unwrap_or_default()["results"][0]["uri"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let before = world.graph.requests_for_user(s.tenant_id, s.object_id).len();
        s.call_ok("read_resource", json!({"uri": uri})).await?;
        let mid = world.graph.requests_for_user(s.tenant_id, s.object_id).len();
        s.call_ok("read_resource", json!({"uri": uri})).await?;
        let after = world.graph.requests_for_user(s.tenant_id, s.object_id).len();
        ensure!(
            mid > before && after - mid == mid - before,
            "the second read was served from a cache"
        );
        Ok(())
    }
}
