//! The audit log: the chain and `audit verify` (edits, deletions, segments, torn writes, the
//! keyed chain), the writer (group commit, a failed fsync, rotation, file mode), and what the
//! running connector records (one record per call, refusals aggregated per peer, 429 for
//! floods, abandoned and refused calls).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use connector::{
    audit::{
        AuditEvent, AuditLog, FaultPoint, OboUse, Outcome, Report, Verdict, WriterOptions, verify,
    },
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

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every record of the log in `dir`, all segments in order.
fn all_records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.split('.').nth(1).and_then(|n| n.parse::<u32>().ok()).unwrap_or(1)
    });
    files.iter().flat_map(|f| lines_of(f)).collect()
}

fn ok(verdict: Verdict) -> Report {
    match verdict {
        Verdict::Ok(report) => report,
        broken => panic!("expected a good chain, got {broken:?}"),
    }
}

#[tokio::test]
async fn records_chain_by_hash_and_verify_ok() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(options(&path), 3).await;
    // Re-opening continues the chain.
    write_records(options(&path), 2).await;
    assert_eq!(ok(verify(&dir, None).unwrap()).records, 5);
    let lines = lines_of(&path);
    assert_eq!(lines[0]["prev"], connector::audit::GENESIS);
    assert_eq!(lines[4]["seq"], 5);
    assert_eq!(lines[0]["event"], "tool_call");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn verify_reports_an_edited_line() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(options(&path), 4).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"latency_ms\":1,", "\"latency_ms\":9,", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    match verify(&path, None).unwrap() {
        Verdict::Broken { line, reason, .. } => {
            assert_eq!(line, 2);
            assert!(reason.contains("edited"), "{reason}");
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn verify_reports_a_deleted_line() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(options(&path), 4).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> =
        text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| l).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    match verify(&path, None).unwrap() {
        Verdict::Broken { line, reason, .. } => {
            assert_eq!(line, 2);
            assert!(reason.contains("removed"), "{reason}");
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn records_that_arrive_together_share_one_fsync() {
    let dir = temp_dir();
    let syncs = Arc::new(AtomicUsize::new(0));
    let counted = syncs.clone();
    let options = WriterOptions {
        fsync: true,
        faults: Some(Arc::new(move |point| {
            if point == FaultPoint::Sync {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })),
        ..WriterOptions::new(dir.join("audit.jsonl"))
    };
    let log = Arc::new(AuditLog::open(options, Clock::system()).unwrap());
    let writers: Vec<_> = (0..500)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(&call_record(i)).await.unwrap() })
        })
        .collect();
    let mut seqs: Vec<u64> = Vec::new();
    for w in writers {
        seqs.push(w.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>(), "every caller got its own seq");
    let syncs = syncs.load(Ordering::SeqCst);
    assert!(syncs < 250, "500 concurrent records took {syncs} fsyncs");
    assert_eq!(ok(verify(&dir, None).unwrap()).records, 500);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failed_fsync_fails_its_records_and_never_repeats_a_seq() {
    let dir = temp_dir();
    let fail = Arc::new(AtomicBool::new(false));
    let failing = fail.clone();
    let options = WriterOptions {
        fsync: true,
        faults: Some(Arc::new(move |point| {
            if point == FaultPoint::Sync && failing.swap(false, Ordering::SeqCst) {
                return Err(std::io::Error::other("EIO"));
            }
            Ok(())
        })),
        ..WriterOptions::new(dir.join("audit.jsonl"))
    };
    let log = AuditLog::open(options, Clock::system()).unwrap();
    assert_eq!(log.record(&call_record(0)).await.unwrap(), 1);
    fail.store(true, Ordering::SeqCst);
    assert!(log.record(&call_record(1)).await.is_err(), "a failed fsync fails the call");
    // The failed record's bytes reached the file; the next one must not reuse its seq.
    let next = log.record(&call_record(2)).await.unwrap();
    assert_eq!(next, 3);
    let seqs: Vec<u64> = all_records(&dir).iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let report = ok(verify(&dir, None).unwrap());
    assert_eq!((report.records, report.segments), (3, 2), "continued in a new segment");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn segments_rotate_by_size_and_the_chain_runs_through_them() {
    let dir = temp_dir();
    let options = WriterOptions { rotate_bytes: 64 * 1024, ..options(&dir.join("audit.jsonl")) };
    write_records(options.clone(), 600).await;
    // Reopening continues in the last segment.
    write_records(options, 10).await;
    let report = ok(verify(&dir, None).unwrap());
    assert_eq!(report.records, 610);
    assert!(report.segments >= 3, "{} segments", report.segments);
    assert!(dir.join("audit.000002.jsonl").exists());
    #[cfg(unix)]
    for entry in std::fs::read_dir(&dir).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "segments are readable by their owner only");
    }
    // Removing a middle segment breaks the chain.
    std::fs::remove_file(dir.join("audit.000002.jsonl")).unwrap();
    assert!(matches!(verify(&dir, None).unwrap(), Verdict::Broken { .. }));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_torn_last_line_is_reported_and_the_log_continues_in_a_new_segment() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(options(&path), 3).await;
    // A crash in the middle of a write leaves half a record.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"event":"tool_call","seq":4,"pre"#);
    std::fs::write(&path, bytes).unwrap();
    write_records(options(&path), 2).await;
    let resumed = lines_of(&dir.join("audit.000002.jsonl"));
    assert_eq!(resumed[0]["event"], "log_resumed");
    assert_eq!(resumed[0]["seq"], 4);
    assert_eq!(resumed[0]["torn_segment"], "audit.jsonl");
    let report = ok(verify(&dir, None).unwrap());
    assert_eq!(report.records, 6);
    assert_eq!(report.torn, vec![(path.clone(), 33)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_keyed_chain_cannot_be_rewritten_without_the_key() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    let key = Key32::from_base64(&base64_of(&[9u8; 32])).unwrap();
    write_records(WriterOptions { key: Some(key.clone()), ..options(&path) }, 3).await;
    assert_eq!(ok(verify(&dir, Some(&key)).unwrap()).records, 3);
    let other = Key32::from_base64(&base64_of(&[8u8; 32])).unwrap();
    assert!(matches!(verify(&dir, Some(&other)).unwrap(), Verdict::Broken { line: 1, .. }));
    assert!(matches!(verify(&dir, None).unwrap(), Verdict::Broken { line: 1, .. }));

    // Someone without the key drops the last record and rewrites the second with a correct
    // plain SHA-256 chain: the unkeyed check would pass, the keyed one does not.
    let mut records = lines_of(&path);
    records.truncate(2);
    records[1]["latency_ms"] = json!(0);
    let mut prev = records[0].to_string();
    let rewritten = &mut records[1];
    rewritten.as_object_mut().unwrap().remove("keyed");
    rewritten["prev"] = json!(sha256_hex(prev.as_bytes()));
    let mut body = rewritten.clone();
    body.as_object_mut().unwrap().remove("hash");
    rewritten["hash"] = json!(sha256_hex(body.to_string().as_bytes()));
    prev = format!("{}\n{}\n", records[0], records[1]);
    std::fs::write(&path, prev).unwrap();
    match verify(&dir, Some(&key)).unwrap() {
        Verdict::Broken { line, .. } => assert_eq!(line, 2),
        other => panic!("a rewritten keyed log passed: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
