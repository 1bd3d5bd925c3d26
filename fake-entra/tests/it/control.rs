use std::time::Duration;

use fake_entra::{Endpoint, Fault, FaultKind};

use crate::helpers::*;

#[tokio::test]
async fn events_feed_reports_identity_events_in_order() {
    let t = spawn().await;
    t.entra.revoke_sessions("contoso", "adele@contoso.com").expect("revoke");
    t.entra.disable_user(CONTOSO, "diego@contoso.com").expect("disable");
    t.entra.reset_password("contoso.com", "alex@contoso.com").expect("reset");
    let (status, feed) = t.get_json("/_fake/events?after=0").await;
    assert_eq!(status, 200);
    assert_eq!(feed["lastSeq"], 3);
    let kinds: Vec<_> =
        feed["events"].as_array().expect("events").iter().map(|e| e["type"].clone()).collect();
    assert_eq!(kinds, ["sessionsRevoked", "userDisabled", "passwordReset"]);
    let first = &feed["events"][0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["tenantId"], CONTOSO);
    assert!(first["userId"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(first["time"].as_str().unwrap_or("")).is_ok());
    let (_, later) = t.get_json("/_fake/events?after=2").await;
    assert_eq!(later["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(later["lastSeq"], 3);
}

#[tokio::test]
async fn http_control_api_mirrors_the_rust_api() {
    let t = spawn().await;
    let uri = t.entra.uri();
    let r = t
        .http
        .post(format!("{uri}/_fake/tenants/contoso/users/adele@contoso.com/disable"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 204);
    let scope = t.connector_scope();
    let err = t
        .entra
        .sign_in("adele@contoso.com", t.client(), &[scope.as_str()])
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), 50057);
    let r = t
        .http
        .post(format!("{uri}/_fake/tenants/contoso/consent/revoke"))
        .json(&serde_json::json!({"scopes": ["Mail.Read"]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 204);
    let (tid, oid) = t.persona("alex@contoso.com");
    assert_eq!(
        t.obo(CONTOSO, &t.entra.user_token(tid, oid), "Mail.Read").await.1["error_codes"][0],
        65001
    );
    let r = t
        .http
        .put(format!("{uri}/_fake/tenants/contoso/assignment-required"))
        .json(&serde_json::json!({"required": true}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 204);
    let (_, diego) = t.persona("diego@contoso.com");
    assert_eq!(
        t.obo(CONTOSO, &t.entra.user_token(tid, diego), "User.Read").await.1["error_codes"][0],
        50105
    );
    let r = t
        .http
        .post(format!("{uri}/_fake/tenants/nowhere/users/x/disable"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn clock_advance_over_http_moves_the_shared_clock() {
    let t = spawn().await;
    let before = t.entra.clock().now();
    let r = t
        .http
        .post(format!("{}/_fake/clock/advance", t.entra.uri()))
        .json(&serde_json::json!({"seconds": 3600}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert!(t.entra.clock().now() - before >= chrono::Duration::seconds(3600));
}

#[tokio::test]
async fn key_rotation_is_reflected_in_the_jwks() {
    let t = spawn().await;
    let old = t.entra.active_kid();
    let r = t.http.post(format!("{}/_fake/keys/rotate", t.entra.uri())).send().await.expect("post");
    let new = r.json::<serde_json::Value>().await.expect("json")["kid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (_, jwks) = t.get_json("/common/discovery/v2.0/keys").await;
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kids.contains(&new));
    assert!(!kids.contains(&old));
    let (tid, oid) = t.persona("adele@contoso.com");
    let token = t.entra.user_token(tid, oid);
    assert_eq!(segment(&token, 0)["kid"], new);
    t.validate_v2(&token).await.expect("valid with rotated key");
}

#[tokio::test]
async fn scripted_faults_fail_the_next_n_requests() {
    let t = spawn().await;
    t.entra.add_fault(Fault::new(
        Endpoint::Token,
        2,
        FaultKind::TooManyRequests { retry_after: Some(7) },
    ));
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    for _ in 0..2 {
        let r = t
            .http
            .post(t.entra.token_endpoint(CONTOSO))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    assert_eq!(t.obo(CONTOSO, &assertion, "User.Read").await.0, 200);

    t.entra.add_fault(Fault::new(Endpoint::Keys, 1, FaultKind::Unavailable { retry_after: None }));
    assert_eq!(t.get_json("/common/discovery/v2.0/keys").await.0, 503);
    assert_eq!(t.get_json("/common/discovery/v2.0/keys").await.0, 200);

    t.entra.add_fault(Fault::new(
        Endpoint::Token,
        1,
        FaultKind::Aadsts {
            code: 50196,
            error: Some("invalid_grant".into()),
            description: None,
            status: None,
        },
    ));
    assert_eq!(t.obo(CONTOSO, &assertion, "User.Read").await.1["error_codes"][0], 50196);

    t.entra.add_fault(Fault::new(Endpoint::Token, 1, FaultKind::Latency { ms: 200 }));
    let started = std::time::Instant::now();
    assert_eq!(t.obo(CONTOSO, &assertion, "User.Read").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn faults_can_be_scripted_over_http_and_scoped_to_a_tenant() {
    let t = spawn().await;
    let r = t
        .http
        .post(format!("{}/_fake/faults", t.entra.uri()))
        .json(&serde_json::json!({"endpoint": "token", "times": 1, "tenant": CONTOSO, "fault": {"kind": "unavailable", "retryAfter": 3}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 204);
    let (tid, oid) = t.persona("adele@fabrikam.com");
    let fab = tid.to_string();
    assert_eq!(t.obo(&fab, &t.entra.user_token(tid, oid), "User.Read").await.0, 200);
    let (ctid, coid) = t.persona("adele@contoso.com");
    assert_eq!(t.obo(CONTOSO, &t.entra.user_token(ctid, coid), "User.Read").await.0, 503);
}

#[tokio::test]
async fn journal_records_issued_and_refused_tokens() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    t.obo(CONTOSO, &assertion, "User.Read").await;
    t.entra.disable_user("contoso", "adele@contoso.com").expect("disable");
    t.obo(CONTOSO, &assertion, "User.Read").await;
    let (_, journal) = t.get_json("/_fake/journal").await;
    let entries = journal.as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["grant"], "on_behalf_of");
    assert_eq!(entries[0]["userId"], oid.to_string());
    assert_eq!(entries[0]["tenantId"], CONTOSO);
    assert_eq!(entries[0]["scopes"], serde_json::json!(["https://graph.microsoft.com/User.Read"]));
    assert!(entries[0]["uti"].is_string());
    assert_eq!(entries[1]["errorCode"], 50057);
    t.http.delete(format!("{}/_fake/journal", t.entra.uri())).send().await.expect("delete");
    assert!(t.entra.journal().is_empty());
}
