//! The search tools against fake-graph on the standard world: what the conformance S and R
//! scenarios do not cover (mailbox settings caching and fallback, delegated mailboxes, unknown
//! and bad arguments, max_results caps, name resolution, schema portability). The S03–S07
//! output snapshots, R01 and R07 live in the conformance suite only.

use fake_entra::GrantResource;
use insta::assert_json_snapshot;
use serde_json::{Value, json};

use crate::tools_support::{Persona, ToolsWorld};

/// The hits of a page, whatever the tool calls them.
fn items(page: &Value) -> Vec<Value> {
    ["items", "messages", "events"]
        .iter()
        .find_map(|k| page[*k].as_array().cloned())
        .unwrap_or_default()
}

async fn tool_names(world: &ToolsWorld, who: &Persona) -> Vec<String> {
    let response = world.rpc(who, "tools/list", json!({})).await;
    let mut names: Vec<String> = response
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{response:#}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn get_me_reports_zone_working_hours_and_available_tools() {
    let world = ToolsWorld::start().await;
    let diego = world.persona("diego@contoso.com");
    let me = world.structured(&diego, "get_me", json!({})).await;
    assert_eq!(me["time_zone"], "W. Europe Standard Time");
    assert_eq!(me["time_zone_iana"], "Europe/Berlin");
    assert!(me.pointer("/working_hours/start_time").is_some(), "{me:#}");
    assert_eq!(me["available_tools"].as_array().map(Vec::len), Some(8), "{me:#}");
    let mut me = me;
    for volatile in ["tenant_id", "user_id"] {
        me[volatile] = json!(format!("[{volatile}]"));
    }
    assert_json_snapshot!("get_me_diego", me);
}

/// The mailbox settings are read once per user and reused by the next calls (and by `get_me`)
/// for a few minutes; past that window they are read again.
#[tokio::test]
async fn mailbox_settings_are_read_once_per_user_within_the_reuse_window() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let settings_reads =
        || world.graph_calls(&alex).iter().filter(|c| c.ends_with("/me/mailboxSettings")).count();
    for query in ["budget", "forecast"] {
        let result = world.call_tool(&alex, "outlook_email_search", json!({"query": query})).await;
        assert_ne!(result["isError"], true, "{result:#}");
    }
    let me = world.structured(&alex, "get_me", json!({})).await;
    assert!(me["time_zone"].is_string(), "{me:#}");
    assert!(me.pointer("/working_hours/start_time").is_some(), "{me:#}");
    assert_eq!(settings_reads(), 1, "{:?}", world.graph_calls(&alex));

    world.clock.advance(std::time::Duration::from_secs(301));
    let alex = world.persona("alex@contoso.com");
    let result = world.call_tool(&alex, "outlook_email_search", json!({"query": "budget"})).await;
    assert_ne!(result["isError"], true, "{result:#}");
    assert_eq!(settings_reads(), 2, "{:?}", world.graph_calls(&alex));
}

/// The mailbox time zone is presentation: losing its permission must block no tool, only turn
/// local times into UTC with a note.
#[tokio::test]
async fn revoking_mailbox_settings_read_keeps_every_tool_and_falls_back_to_utc() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let before = tool_names(&world, &alex).await;

    world
        .entra
        .revoke_consent(
            "contoso",
            world.entra.connector_id(),
            GrantResource::Graph,
            &["MailboxSettings.Read"],
        )
        .expect("revoked");
    world.clock.advance(std::time::Duration::from_secs(600));
    let alex = world.persona("alex@contoso.com");
    assert_eq!(tool_names(&world, &alex).await, before);

    let result = world.call_tool(&alex, "outlook_email_search", json!({"query": "budget"})).await;
    assert_ne!(result["isError"], true, "{result:#}");
    let note = result["structuredContent"]["time_zone_note"].as_str().unwrap_or_default();
    assert!(note.contains("UTC"), "the UTC fallback is said: {result:#}");
}

/// Adele's mailbox and calendar are shared with Alex (fixtures); Diego has no access to either.
/// A shared search asks Graph for `/users/{owner}/…` with `Mail.Read.Shared` /
/// `Calendars.Read.Shared`, and Graph decides who may read.
#[tokio::test]
async fn a_shared_mailbox_and_calendar_are_searchable_only_by_their_delegate() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let diego = world.persona("diego@contoso.com");

    let shared_mail = json!({"mailbox": "adele@contoso.com", "received_after": "2025-01-01"});
    let mail = world.structured(&alex, "outlook_email_search", shared_mail.clone()).await;
    assert!(!items(&mail).is_empty(), "Alex reads Adele's shared mailbox: {mail:#}");
    let refused = world.call_tool(&diego, "outlook_email_search", shared_mail).await;
    assert_eq!(refused["isError"], true, "Diego has no access to Adele's mailbox: {refused:#}");

    let shared_calendar = json!({
        "calendar_owner": "adele@contoso.com",
        "start": "2026-06-01T00:00:00Z",
        "end": "2026-06-08T00:00:00Z",
    });
    let week = world.structured(&alex, "outlook_calendar_search", shared_calendar.clone()).await;
    assert!(!items(&week).is_empty(), "Alex reads Adele's shared calendar: {week:#}");
    let refused = world.call_tool(&diego, "outlook_calendar_search", shared_calendar).await;
    assert_eq!(refused["isError"], true, "Diego has no access to Adele's calendar: {refused:#}");
}

#[tokio::test]
async fn an_argument_a_tool_does_not_know_is_refused_naming_it_and_the_valid_ones() {
    // `{"sender": ...}` must not be ignored into "the latest mail, unfiltered".
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    for (tool, args, unknown, valid) in [
        ("outlook_email_search", json!({"sender": "nobody@contoso.com"}), "sender", "from"),
        (
            "outlook_calendar_search",
            json!({"query": "budget", "organiser": "x"}),
            "organiser",
            "start",
        ),
        ("chat_message_search", json!({"query": "budget", "chat": "x"}), "chat", "query"),
        (
            "find_meeting_availability",
            json!({"attendees": ["alex@contoso.com"], "length": 30}),
            "length",
            "attendees",
        ),
        ("sharepoint_search", json!({"query": "budget", "site": "x"}), "site", "query"),
        ("read_resource", json!({"url": "x"}), "url", "uri"),
    ] {
        let result = world.call_tool(&adele, tool, args.clone()).await;
        // A tool execution error the model can correct (MCP: input validation errors are tool
        // results), never a silently ignored argument.
        assert_eq!(result.get("isError"), Some(&json!(true)), "{tool} {args}: {result:#}");
        let message = result.pointer("/content/0/text").and_then(Value::as_str).unwrap_or_default();
        assert!(message.contains(&format!("unknown field `{unknown}`")), "{tool}: {message}");
        assert!(message.contains(&format!("`{valid}`")), "{tool}: lists valid fields: {message}");
    }
    // get_me takes none: any argument is refused by name.
    let result = world.call_tool(&adele, "get_me", json!({"verbose": true})).await;
    assert_eq!(result.get("isError"), Some(&json!(true)), "get_me: {result:#}");
    let message = result.pointer("/content/0/text").and_then(Value::as_str).unwrap_or_default();
    assert!(message.contains("unknown field `verbose`"), "get_me: {message}");
    assert!(world.graph_calls(&adele).is_empty(), "a refused call reached Graph");
}

#[tokio::test]
async fn the_tenant_max_results_caps_every_search_tool() {
    let calls = [
        ("outlook_email_search", json!({}), "/messages"),
        ("outlook_email_search", json!({"limit": 20}), "/messages"),
        ("outlook_calendar_search", json!({"start": "2026-01-01", "end": "2026-12-31"}), "/events"),
        ("chat_message_search", json!({"query": "the"}), "/messages"),
        (
            "find_meeting_availability",
            json!({"attendees": ["alex@contoso.com"], "duration_minutes": 30,
                   "start": "2026-05-04", "end": "2026-05-09"}),
            "/slots",
        ),
    ];
    let open = ToolsWorld::start().await;
    let adele = open.persona("adele@contoso.com");
    for (tool, args, list) in &calls {
        let page = open.structured(&adele, tool, args.clone()).await;
        let n = page.pointer(list).and_then(Value::as_array).map_or(0, Vec::len);
        assert!(n > 2, "{tool}: the fixture needs more than 2 hits to show the cap ({n})");
    }
    let capped = ToolsWorld::start_with_policy("max_results = 2").await;
    let adele = capped.persona("adele@contoso.com");
    for (tool, args, list) in &calls {
        let page = capped.structured(&adele, tool, args.clone()).await;
        let n = page.pointer(list).and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(n, 2, "{tool} {args}: {page:#}");
        // The cut is reported: more pages, or (slots) more found than listed.
        let more = page.pointer("/page/has_more") == Some(&json!(true))
            || page["total_found"].as_u64().is_some_and(|t| t > 2);
        assert!(more, "{tool}: the answer does not say more exist: {page:#}");
    }
}

#[tokio::test]
async fn from_and_to_accept_a_colleagues_name_and_report_ambiguity() {
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    for (tool, field, name, address) in [
        ("outlook_email_search", "from", "Megan Bowen", "megan@contoso.com"),
        ("outlook_email_search", "to", "Alex Wilber", "alex@contoso.com"),
        ("chat_message_search", "from", "Megan Bowen", "megan@contoso.com"),
    ] {
        let by_address = world.structured(&adele, tool, json!({field: address})).await;
        let by_name = world.structured(&adele, tool, json!({field: name})).await;
        let (a, n) = (items(&by_address), items(&by_name));
        assert_eq!(n, a, "{tool} {field}={name:?} differs from {address}");
        assert!(!a.is_empty(), "{tool} {field}={address}: the fixture needs a hit");
    }
    for (name, expected) in [("A", "several people"), ("Nobody Atall", "matches no one")] {
        let refused = world.call_tool(&adele, "outlook_email_search", json!({"from": name})).await;
        assert_eq!(refused.pointer("/error/code"), Some(&json!(-32602)), "{name}: {refused:#}");
        let message = refused.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
        assert!(message.contains(expected) && message.contains("`from`"), "{message}");
        if name == "A" {
            assert!(message.contains("adele@contoso.com"), "lists the candidates: {message}");
        }
    }
}

#[tokio::test]
async fn tool_schemas_use_only_the_portable_subset() {
    // What `@modelcontextprotocol/inspector --strict` flags as schema portability warnings:
    // `type` arrays (nullable fields) and formats JSON Schema does not define (`uint32`).
    fn walk(v: &Value, path: &str, problems: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").is_some_and(Value::is_array) {
                    problems.push(format!("{path}: type array {}", m["type"]));
                }
                if let Some(f) = m.get("format").and_then(Value::as_str)
                    && !["date-time", "date", "uri", "email"].contains(&f)
                {
                    problems.push(format!("{path}: format {f}"));
                }
                for (k, x) in m {
                    walk(x, &format!("{path}.{k}"), problems);
                }
            }
            Value::Array(a) => {
                a.iter().enumerate().for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), problems))
            }
            _ => {}
        }
    }
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    let response = world.rpc(&adele, "tools/list", json!({})).await;
    let tools =
        response.pointer("/result/tools").and_then(Value::as_array).cloned().unwrap_or_default();
    assert_eq!(tools.len(), 8, "{response:#}");
    let mut problems = Vec::new();
    for t in &tools {
        walk(t, t["name"].as_str().unwrap_or("?"), &mut problems);
    }
    assert!(problems.is_empty(), "{} portability problems: {problems:#?}", problems.len());
}

#[tokio::test]
async fn a_bad_argument_costs_no_token_exchange_and_no_graph_call() {
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    for (tool, args, field) in [
        ("outlook_email_search", json!({"received_after": "last week"}), "received_after"),
        ("outlook_email_search", json!({"from": "Megan", "folder": "attic"}), "folder"),
        ("outlook_calendar_search", json!({"start": "2026-05-02", "end": "2026-05-01"}), "end"),
        ("chat_message_search", json!({"query": "x", "sent_after": "yesterday"}), "sent_after"),
        (
            "find_meeting_availability",
            json!({"attendees": ["alex@contoso.com"], "duration_minutes": 0,
                   "start": "2026-05-01", "end": "2026-05-02"}),
            "duration_minutes",
        ),
    ] {
        let refused = world.call_tool(&adele, tool, args.clone()).await;
        assert_eq!(
            refused.pointer("/error/code"),
            Some(&json!(-32602)),
            "{tool} {args}: {refused:#}"
        );
        let message = refused.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
        assert!(message.contains(&format!("`{field}`")), "{tool}: {message}");
    }
    let exchanges = world
        .entra
        .journal()
        .iter()
        .filter(|e| {
            (e.grant == "on_behalf_of" || e.grant.contains("jwt-bearer"))
                && e.user_id == Some(adele.oid)
        })
        .count();
    assert_eq!(exchanges, 0, "a refused argument cost an OBO exchange");
    assert!(world.graph_calls(&adele).is_empty(), "{:?}", world.graph_calls(&adele));
}

#[tokio::test]
async fn the_tenant_max_results_caps_the_lists_read_resource_returns() {
    let chat_of = |page: &Value| -> String {
        let uri = page.pointer("/messages/0/uri").and_then(Value::as_str).unwrap_or_default();
        uri.split("/message/").next().unwrap_or_default().to_owned()
    };
    let open = ToolsWorld::start().await;
    let adele = open.persona("adele@contoso.com");
    let found = open.structured(&adele, "chat_message_search", json!({"query": "budget"})).await;
    let chat = chat_of(&found);
    assert!(chat.starts_with("m365://chat/"), "{found:#}");
    let whole = open.structured(&adele, "read_resource", json!({"uri": chat})).await;
    let all = whole["messages"].as_array().map_or(0, Vec::len);
    assert!(all > 2, "the fixture chat needs more than 2 messages ({all})");

    let capped = ToolsWorld::start_with_policy("max_results = 2").await;
    let adele = capped.persona("adele@contoso.com");
    let read = capped.structured(&adele, "read_resource", json!({"uri": chat})).await;
    assert_eq!(read["messages"].as_array().map_or(0, Vec::len), 2, "{read:#}");
}
