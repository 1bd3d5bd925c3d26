//! I — isolation and per-user permissions.

use anyhow::{Result, anyhow, ensure};
use serde_json::json;

use super::{catalogue, ensure_ran_as, graph_since, me_of, scenario, structured_ok, uri_where};
use crate::{Persona, World, world::TenantRule};

catalogue!($ i_isolation_tests {
    i01_cross_tenant_uri_is_refused => scenario!(
        "I01",
        "a user cannot read another tenant's resources by URI",
        i01_cross_tenant_uri
    ),
    i02_another_users_mail_is_refused => scenario!(
        "I02",
        "a user cannot read another user's mail, events or private files",
        i02_other_users_mail
    ),
    i03_sharepoint_results_respect_sharing => scenario!("I03", "SharePoint results respect sharing", i03_sharing_respected),
    i04_handles_are_bound_to_their_caller => scenario!(
        "I04",
        "nothing handed to a caller is usable by another",
        i04_handles_bound_to_caller
    ),
    i05_concurrent_callers_of_several_tenants_get_their_own_results => scenario!(
        "I05",
        "many users of several tenants at once each get their own results",
        clock = false,
        setup = i05_setup,
        i05_concurrent_callers
    ),
});

pub async fn i04_handles_bound_to_caller(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    // No legacy MCP session id is minted (stateless), so there is none to steal.
    let init =
        adele.raw_post(crate::session::initialize_body().to_string().into_bytes(), &[]).await?;
    ensure!(init.status == 200, "initialize: HTTP {}", init.status);
    ensure!(init.header("mcp-session-id").is_none(), "the connector minted a session id");
    let other = world.session(Persona::AdeleFabrikam).await?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_me", "arguments": {}}});
    let r = other
        .raw_post(body.to_string().into_bytes(), &[("mcp-session-id", "adele-session")])
        .await?;
    ensure!(r.status == 200 || r.status == 404 || r.status == 400, "HTTP {}", r.status);
    if r.status == 200 {
        let (tid, oid) = me_of(&crate::session::ToolOutcome::from_json(&r.tool_result()?))?;
        ensure!(
            tid == other.tenant_id.to_string() && oid == other.object_id.to_string(),
            "identity crossed callers"
        );
    }
    // A paging cursor works for its owner and no one else.
    let args = json!({"folder": "inbox", "limit": 1});
    let page = structured_ok(&adele, "outlook_email_search", args.clone()).await?;
    let cursor = page["page"]["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow!("no next_cursor on a one-item page: {page}"))?
        .to_owned();
    let mut next = args.clone();
    next["cursor"] = json!(cursor);
    structured_ok(&adele, "outlook_email_search", next.clone()).await?;
    let diego = world.session(Persona::Diego).await?;
    for (who, s) in [("another user", &diego), ("another tenant", &other)] {
        let r = s.call_tool_http("outlook_email_search", next.clone()).await?;
        let v = r.json()?;
        ensure!(
            v["error"]["code"] == json!(-32602),
            "{who} used adele's cursor: HTTP {} {}",
            r.status,
            r.text.chars().take(300).collect::<String>()
        );
        ensure!(
            v["error"]["message"].as_str().unwrap_or_default().contains("cursor"),
            "the refusal does not name the cursor: {v}"
        );
    }
    // The same caller cannot reuse it for another query either.
    let mut twisted = next.clone();
    twisted["folder"] = json!("archive");
    let r = adele.call_tool_http("outlook_email_search", twisted).await?;
    ensure!(r.json()?["error"]["code"] == json!(-32602), "a cursor moved to another query");
    Ok(())
}

fn i05_setup() -> crate::WorldBuilder {
    World::builder().tenant_policy("tailspin", TenantRule { enabled: true, tools: None })
}

/// The first word of each organisation's display name, as it appears in its content.
const TENANT_WORDS: [&str; 3] = ["Contoso", "Fabrikam", "Tailspin"];

pub async fn i05_concurrent_callers(world: &World) -> Result<()> {
    let people = [
        Persona::Adele,
        Persona::Alex,
        Persona::Diego,
        Persona::Megan,
        Persona::PradeepContoso,
        Persona::AdeleFabrikam,
        Persona::PradeepFabrikam,
        Persona::Lee,
        Persona::Miriam,
        Persona::Johanna,
    ];
    let mut sessions = Vec::new();
    for _round in 0..5 {
        for p in people {
            sessions.push(world.session(p).await?);
        }
    }
    let tenants: std::collections::BTreeSet<_> = sessions.iter().map(|s| s.tenant_id).collect();
    ensure!(sessions.len() >= 50 && tenants.len() >= 3, "too few callers or tenants");
    let word_of = |s: &crate::Session| -> &'static str {
        match s.upn.rsplit('@').next().unwrap_or_default() {
            "contoso.com" => "Contoso",
            "fabrikam.com" => "Fabrikam",
            _ => "Tailspin",
        }
    };
    let calls = sessions.iter().map(|s| async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.push(me_of(&s.call_ok("get_me", json!({})).await?)?);
        }
        let mail = structured_ok(s, "outlook_email_search", json!({"query": "budget"})).await?;
        let docs = structured_ok(s, "sharepoint_search", json!({"query": "budget"})).await?;
        anyhow::Ok((s, seen, mail, docs))
    });
    for r in futures::future::join_all(calls).await {
        let (s, seen, mail, docs) = r?;
        for (tid, oid) in seen {
            ensure!(
                tid == s.tenant_id.to_string() && oid == s.object_id.to_string(),
                "{} got {tid}/{oid}",
                s.upn
            );
        }
        let own = word_of(s);
        let messages = mail["messages"].as_array().cloned().unwrap_or_default();
        ensure!(!messages.is_empty(), "{} found no budget mail", s.upn);
        for text in [mail.to_string(), docs.to_string()] {
            for other in TENANT_WORDS.iter().filter(|w| **w != own) {
                ensure!(
                    !text.contains(&format!("{other} Q3")),
                    "{} ({own}) received {other} content",
                    s.upn
                );
            }
        }
        ensure!(
            messages.iter().any(|m| m["subject"].as_str().is_some_and(|x| x.contains(own))),
            "{}: no {own} mail in {mail}",
            s.upn
        );
    }
    // Every Graph request ran as a user of the tenant whose token it carried.
    for e in world.graph.journal() {
        ensure!(!e.mutating, "mutating Graph request {}", e.request_uri);
        if let (Some(tid), Some(oid)) = (e.tenant_id, e.user_id) {
            let owner = sessions.iter().find(|s| s.object_id == oid);
            ensure!(owner.is_none_or(|s| s.tenant_id == tid), "Graph call crossed tenants");
        }
    }
    Ok(())
}

pub async fn i01_cross_tenant_uri(world: &World) -> Result<()> {
    // Alex is in Contoso's pilot group, with which the Q3 budget is shared.
    let a = world.session(Persona::Alex).await?;
    let b = world.session(Persona::AdeleFabrikam).await?;
    let docs = structured_ok(&a, "sharepoint_search", json!({"query": "budget"})).await?;
    let doc = uri_where(&docs, "items", "name", "Q3 Budget")?;
    let mail = structured_ok(&a, "outlook_email_search", json!({"query": "budget"})).await?;
    let msg = uri_where(&mail, "messages", "subject", "budget")?;
    for uri in [doc, msg] {
        let before = world.graph.journal().len();
        let out = b.call_ok("read_resource", json!({"uri": uri})).await?;
        ensure!(out.is_error, "fabrikam read contoso's {uri}: {}", out.text);
        ensure!(!out.text.contains("Contoso"), "the refusal leaks contoso content: {}", out.text);
        // Whatever the connector asked Graph for this read, it asked as Fabrikam's Adele in
        // Fabrikam, and nothing was served.
        let requests = graph_since(world, before);
        ensure_ran_as(&requests, &b, &format!("fabrikam reading {uri}"))?;
        ensure!(
            requests
                .iter()
                .all(|e| own_settings(e) || !(200..300).contains(&e.response_status_code)),
            "Graph served fabrikam's adele a request for contoso's {uri}: {:?}",
            requests
                .iter()
                .map(|e| (e.request_uri.clone(), e.response_status_code))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

pub async fn i02_other_users_mail(world: &World) -> Result<()> {
    let a = world.session(Persona::Adele).await?;
    let d = world.session(Persona::Diego).await?;
    let mail = structured_ok(&a, "outlook_email_search", json!({"query": "budget"})).await?;
    let msg = uri_where(&mail, "messages", "subject", "budget")?;
    let cal = structured_ok(
        &a,
        "outlook_calendar_search",
        json!({"start": "2026-05-25", "end": "2026-06-08"}),
    )
    .await?;
    let event = cal["events"][0]["uri"]
        .as_str()
        .ok_or_else(|| anyhow!("adele has no event in the window: {cal}"))?
        .to_owned();
    let docs = structured_ok(&a, "sharepoint_search", json!({"query": "private notes"})).await?;
    let private = uri_where(&docs, "items", "name", "Adele private notes")?;
    for (what, uri) in [("mail", msg), ("event", event), ("private file", private)] {
        let before = world.graph.journal().len();
        structured_ok(&a, "read_resource", json!({"uri": uri})).await?;
        ensure_ran_as(&graph_since(world, before), &a, &format!("adele reading her {what}"))?;
        let before = world.graph.journal().len();
        let out = d.call_ok("read_resource", json!({"uri": uri})).await?;
        ensure!(out.is_error, "diego read adele's {what} {uri}: {}", out.text);
        let requests = graph_since(world, before);
        ensure_ran_as(&requests, &d, &format!("diego reading adele's {what}"))?;
        ensure!(
            requests
                .iter()
                .all(|e| own_settings(e) || !(200..300).contains(&e.response_status_code)),
            "Graph served diego a request for adele's {what}: {:?}",
            requests
                .iter()
                .map(|e| (e.request_uri.clone(), e.response_status_code))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The caller's own mailbox settings (time zone for dates), read on every tool call.
fn own_settings(e: &fake_graph::JournalEntry) -> bool {
    e.path == "/v1.0/me/mailboxSettings"
}

/// A SharePoint search whose every Graph request must run as the searching user.
async fn search(world: &World, s: &crate::Session, q: &str) -> Result<serde_json::Value> {
    let before = world.graph.journal().len();
    let found = structured_ok(s, "sharepoint_search", json!({"query": q})).await?;
    let requests = graph_since(world, before);
    ensure!(!requests.is_empty(), "{} searching {q:?}: no Graph request", s.upn);
    ensure_ran_as(&requests, s, &format!("{} searching {q:?}", s.upn))?;
    Ok(found)
}

pub async fn i03_sharing_respected(world: &World) -> Result<()> {
    // Roadmap.pptx is shared with adele only, Q3 Budget.xlsx with the pilot group (alex, not
    // diego), her private notes with no one; Design.docx with the whole tenant.
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect()
    };
    let adele = world.session(Persona::Adele).await?;
    let alex = world.session(Persona::Alex).await?;
    let diego = world.session(Persona::Diego).await?;
    let has = |v: &serde_json::Value, n: &str| names(v).iter().any(|x| x.contains(n));

    ensure!(
        has(&search(world, &adele, "roadmap").await?, "Roadmap.pptx"),
        "adele lost her roadmap"
    );
    ensure!(
        !has(&search(world, &diego, "roadmap").await?, "Roadmap.pptx"),
        "diego sees the roadmap"
    );
    ensure!(
        has(&search(world, &alex, "budget").await?, "Q3 Budget"),
        "the pilot cannot see the budget"
    );
    ensure!(
        !has(&search(world, &diego, "budget").await?, "Q3 Budget"),
        "diego sees the pilot's budget"
    );
    ensure!(
        !has(&search(world, &diego, "private notes").await?, "Adele private notes"),
        "diego sees adele's private notes"
    );
    ensure!(
        has(&search(world, &diego, "design").await?, "Design.docx"),
        "tenant-wide file not visible"
    );
    Ok(())
}
