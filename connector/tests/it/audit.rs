//! The audit log as the running connector keeps it (one record per call, refusals aggregated
//! per peer, 429 for floods, abandoned and refused calls) and the `audit verify` command. The
//! chain, the writer (group commit, a failed fsync, rotation, file mode) and `verify` on edited,
//! torn and keyed logs are unit-tested in `src/audit/tests.rs`.

use std::{path::Path, time::Duration};

use connector::{
    audit::{AuditEvent, AuditLog, OboUse, Outcome, Report, Verdict, WriterOptions, verify},
    clock::Clock,
    config::Key32,
    domain::{ObjectId, TenantId},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::*;

fn call_record(i: usize) -> AuditEvent {
    AuditEvent::ToolCall {
        tenant_id: TenantId::parse(CONTOSO).unwrap(),
        user_id: ObjectId::parse(ADELE).unwrap(),
        client_id: MCP_CLIENT_ID.into(),
        token_id: Some("uti".into()),
        request_id: format!("request-{i}"),
        peer: None,
        tool: "get_me".into(),
        arguments: Default::default(),
        query_text: None,
        obo: OboUse::CacheHit,
        obo_error: None,
        graph_request_ids: vec![format!("req-{i}")],
        outcome: Outcome::Ok,
        status: 200,
        latency_ms: i as u64,
    }
}

fn options(path: &Path) -> WriterOptions {
    WriterOptions { fsync: false, ..WriterOptions::new(path) }
}

async fn write_records(options: WriterOptions, n: usize) {
    let log = AuditLog::open(options, Clock::system()).unwrap();
    for i in 0..n {
        log.record(&call_record(i)).await.unwrap();
    }
}

fn ok(verdict: Verdict) -> Report {
    match verdict {
        Verdict::Ok(report) => report,
        broken => panic!("expected a good chain, got {broken:?}"),
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// -------------------------------------------------------------------------------------------
// The running connector

#[tokio::test]
async fn audit_records_never_contain_the_token() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 200);
    let _ = call_tool(&app, &token, "get_me", json!({})).await;
    let text = std::fs::read_to_string(&app.audit_path).unwrap();
    assert!(!text.contains(&token));
    assert!(!text.contains(token.split('.').nth(2).unwrap()));
    assert!(ok(verify(&app.audit_path, None).unwrap()).records >= 1);
}

async fn call_tool(app: &TestApp, token: &str, name: &str, arguments: Value) -> Value {
    app.call_tool_raw(token, name, arguments).await.json().await.expect("JSON-RPC answer")
}

fn events(app: &TestApp, event: &str) -> Vec<Value> {
    app.audit_lines().into_iter().filter(|l| l["event"] == event).collect()
}

#[tokio::test]
async fn a_tool_call_is_one_record_saying_what_it_did() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    for _ in 0..3 {
        let answer = call_tool(&app, &token, "get_me", json!({})).await;
        assert!(answer["result"]["isError"] != json!(true), "{answer}");
    }
    let calls = events(&app, "tool_call");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["obo"], "exchange");
    assert_eq!(calls[1]["obo"], "cache_hit");
    assert_eq!(calls[2]["obo"], "cache_hit");
    for call in &calls {
        assert_eq!(call["token_id"], "AbCdEf123");
        assert_eq!(call["client_id"], MCP_CLIENT_ID);
        assert_eq!(call["peer"], "127.0.0.1");
        assert!(call["request_id"].as_str().is_some_and(|id| id.len() == 32));
        assert_eq!(call["outcome"], "ok");
    }
    // One exchange, one record of it; no record per accepted token or cache hit.
    assert_eq!(events(&app, "obo_exchange").len(), 1);
    assert_eq!(app.audit_lines().len(), 4, "{:#?}", app.audit_lines());
}

#[tokio::test]
async fn arguments_refused_before_the_tool_runs_are_audited() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    let answer = call_tool(&app, &token, "outlook_email_search", json!({"limit": "many"})).await;
    assert!(
        answer["result"]["isError"] == json!(true) || answer.get("error").is_some(),
        "{answer}"
    );
    let calls = events(&app, "tool_call");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["tool"], "outlook_email_search");
    assert_eq!(calls[0]["outcome"], "invalid_params");
    assert_eq!(calls[0]["arguments"], json!({"limit": "string"}));
    assert!(calls[0]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_flood_of_refused_tokens_gets_429_and_costs_a_bounded_number_of_records() {
    let app = spawn_app_with(Options {
        edit: |raw| {
            raw.audit.refusals_per_peer = 5;
            raw.audit.refusal_interval_secs = 60;
        },
        ..Options::default()
    })
    .await;
    // A caller whose token verified before the flood keeps working.
    let known = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&known)).await.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let response = app.post_mcp(Some("x")).await;
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
        }
        statuses.push(response.status().as_u16());
    }
    assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // A peer over its budget gets 429 before a new token is looked at, even a good one; a
    // token that verified before still passes.
    let new = app.token_with(|c| c["uti"] = json!("another-sign-in"));
    assert_eq!(app.post_mcp(Some(&new)).await.status(), 429);
    assert_eq!(app.post_mcp(Some(&known)).await.status(), 200);
    let refused = events(&app, "token_refused");
    assert_eq!(refused.len(), 2, "one opening record per (peer, reason): {refused:#?}");
    assert!(refused.iter().all(|r| r["peer"] == "127.0.0.1" && r["count"] == 1));
    // At shutdown the aggregation windows close: every refusal is counted.
    app.stop.cancel();
    let mut total = 0;
    for _ in 0..100 {
        total = events(&app, "token_refused").iter().map(|r| r["count"].as_u64().unwrap()).sum();
        if total == 41 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, 41, "{:#?}", events(&app, "token_refused"));
    assert!(events(&app, "token_refused").len() <= 4);
}

#[tokio::test]
async fn forwarding_headers_name_the_peer_only_behind_a_trusted_proxy() {
    let untrusted = spawn_app().await;
    let spoofed = |r: reqwest::RequestBuilder| r.header("x-forwarded-for", "203.0.113.9");
    untrusted.post_mcp_with(Some("x"), spoofed).await;
    assert_eq!(events(&untrusted, "token_refused")[0]["peer"], "127.0.0.1");

    let behind_proxy = spawn_app_with(Options {
        edit: |raw| raw.audit.trusted_proxies = vec!["127.0.0.0/8".into()],
        ..Options::default()
    })
    .await;
    behind_proxy.post_mcp_with(Some("x"), spoofed).await;
    assert_eq!(events(&behind_proxy, "token_refused")[0]["peer"], "203.0.113.9");
}

#[tokio::test]
async fn per_caller_429s_are_audited_with_peer_and_request_id() {
    let app = spawn_app_with(Options { per_minute: 1, burst: 1, ..Options::default() }).await;
    let token = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 200);
    let response = app.post_mcp(Some(&token)).await;
    assert_eq!(response.status(), 429);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let limited = events(&app, "rate_limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["user_id"], ADELE);
    assert_eq!(limited[0]["peer"], "127.0.0.1");
    assert_eq!(limited[0]["request_id"], request_id);
}

/// Makes Graph's `/me` answer after `delay`.
async fn slow_me(app: &TestApp, delay: Duration) {
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay).set_body_json(json!({
            "id": ADELE, "displayName": "Adele Vance", "userPrincipalName": "adele@contoso.com",
        })))
        .with_priority(1)
        .mount(&app.graph)
        .await;
}

async fn wait_for_call(app: &TestApp) -> Value {
    for _ in 0..100 {
        if let Some(call) = events(app, "tool_call").into_iter().next() {
            return call;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no tool_call record: {:#?}", app.audit_lines());
}

#[tokio::test]
async fn a_call_the_client_abandons_is_audited_as_cancelled() {
    let app = spawn_app().await;
    slow_me(&app, Duration::from_secs(3)).await;
    let token = app.token(CONTOSO, ADELE);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        app.call_tool_raw(&token, "get_me", json!({})),
    );
    assert!(abandoned.await.is_err(), "the call should still be running");
    let call = wait_for_call(&app).await;
    assert_eq!(call["outcome"], "cancelled", "{call}");
    assert_eq!(call["tool"], "get_me");
}

#[tokio::test]
async fn a_call_cut_off_by_the_request_timeout_is_audited_as_timeout() {
    let app = spawn_app_with(Options {
        edit: |raw| raw.limits.request_timeout_secs = 1,
        ..Options::default()
    })
    .await;
    slow_me(&app, Duration::from_secs(4)).await;
    let token = app.token(CONTOSO, ADELE);
    let response = app.call_tool_raw(&token, "get_me", json!({})).await;
    assert_eq!(response.status(), 503);
    let call = wait_for_call(&app).await;
    assert_eq!(call["outcome"], "timeout", "{call}");
}

#[tokio::test]
async fn an_exchange_made_while_listing_tools_is_recorded_before_the_answer() {
    let app = spawn_app().await;
    // Entra grants every scope the tools need, so listing the tools makes one exchange.
    let granted: Vec<String> = connector::tools::permissions::union_scopes()
        .iter()
        .map(|s| format!("https://graph.microsoft.com/{s}"))
        .collect();
    Mock::given(method("POST"))
        .and(path(format!("/{CONTOSO}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "scope": granted.join(" "),
            "expires_in": 3599,
            "access_token": "graph-access-token-for-adele",
        })))
        .with_priority(1)
        .mount(&app.entra)
        .await;
    let token = app.token(CONTOSO, ADELE);
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}});
    let response = app
        .http
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .bearer_auth(&token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    let exchanges = events(&app, "obo_exchange");
    assert_eq!(exchanges.len(), 1, "{:#?} {text}", app.audit_lines());
    assert_eq!(exchanges[0]["request_id"], request_id);
}

#[test]
fn audit_settings_are_validated_naming_the_setting() {
    let dir = temp_dir();
    let addr = "127.0.0.1:1".parse().unwrap();
    let refused = |edit: fn(&mut connector::config::RawSettings)| {
        let mut raw = raw_settings(
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
            addr,
            &dir,
            &Options::default(),
        );
        edit(&mut raw);
        connector::config::Settings::from_raw(raw).unwrap_err().to_string()
    };
    let e = refused(|r| r.audit.trusted_proxies = vec!["proxy.internal".into()]);
    assert!(e.contains("audit.trusted_proxies") && e.contains("proxy.internal"), "{e}");
    let e = refused(|r| r.audit.hmac_key = Some("c2hvcnQ=".to_owned().into()));
    assert!(e.contains("audit.hmac_key") && e.contains("32"), "{e}");
    let e = refused(|r| r.audit.rotate_bytes = 10);
    assert!(e.contains("audit.rotate_bytes"), "{e}");
    let e = refused(|r| r.audit.refusal_interval_secs = 0);
    assert!(e.contains("audit.refusal_interval_secs"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_verify_command_checks_a_directory_and_takes_the_key_from_the_environment() {
    let dir = temp_dir();
    let key_text = base64_of(&[5u8; 32]);
    let key = Key32::from_base64(&key_text).unwrap();
    let options = WriterOptions {
        key: Some(key),
        rotate_bytes: 64 * 1024,
        ..options(&dir.join("audit.jsonl"))
    };
    write_records(options, 300).await;
    let bin = env!("CARGO_BIN_EXE_m365-connector");
    let run = |key: Option<&str>| {
        let mut command = std::process::Command::new(bin);
        command.args(["audit", "verify"]).arg(&dir).env_remove("M365_AUDIT__HMAC_KEY");
        if let Some(k) = key {
            command.env("M365_AUDIT__HMAC_KEY", k);
        }
        command.output().unwrap()
    };
    let good = run(Some(&key_text));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(out.contains("OK: 300 records in ") && out.contains("segments, keyed"), "{out}");
    let without = run(None);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("keyed"));
    let _ = std::fs::remove_dir_all(&dir);
}
