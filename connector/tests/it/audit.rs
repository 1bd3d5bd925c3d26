//! The audit chain: records link by hash, and `audit verify` finds edits and deletions.

use connector::{
    audit::{AuditEvent, AuditLog, Verdict, verify},
    clock::Clock,
    domain::{ObjectId, TenantId},
};

use crate::helpers::*;

fn write_records(path: &std::path::Path, n: usize) {
    let log = AuditLog::open(path, true, Clock::system()).unwrap();
    for i in 0..n {
        log.record(AuditEvent::ToolCall {
            tenant_id: TenantId::parse(CONTOSO).unwrap(),
            user_id: ObjectId::parse(ADELE).unwrap(),
            tool: "get_me".into(),
            arguments: Default::default(),
            query_text: None,
            graph_request_ids: vec![format!("req-{i}")],
            outcome: "ok",
            status: 200,
            latency_ms: i as u64,
        })
        .unwrap();
    }
}

#[test]
fn records_chain_by_hash_and_verify_ok() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(&path, 3);
    // Re-opening continues the chain.
    write_records(&path, 2);
    assert_eq!(verify(&path).unwrap(), Verdict::Ok { records: 5 });
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["prev"], connector::audit::GENESIS);
    assert_eq!(lines[4]["seq"], 5);
    assert_eq!(lines[0]["event"], "tool_call");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_reports_an_edited_line() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(&path, 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"outcome\":\"ok\"", "\"outcome\":\"no\"", 2).replacen(
        "\"outcome\":\"no\"",
        "\"outcome\":\"ok\"",
        1,
    );
    std::fs::write(&path, edited).unwrap();
    match verify(&path).unwrap() {
        Verdict::Broken { line, reason } => {
            assert_eq!(line, 2);
            assert!(reason.contains("edited"), "{reason}");
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_reports_a_deleted_line() {
    let dir = temp_dir();
    let path = dir.join("audit.jsonl");
    write_records(&path, 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> =
        text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| l).collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    match verify(&path).unwrap() {
        Verdict::Broken { line, reason } => {
            assert_eq!(line, 2);
            assert!(reason.contains("removed"), "{reason}");
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn audit_records_never_contain_the_token() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 200);
    let text = std::fs::read_to_string(&app.audit_path).unwrap();
    assert!(!text.contains(&token));
    assert!(!text.contains(token.split('.').nth(2).unwrap()));
    assert_eq!(verify(&app.audit_path).unwrap(), Verdict::Ok { records: 1 });
}
