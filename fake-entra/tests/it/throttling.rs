//! Entra under load or failing at the transport: the per-user loop limit (AADSTS50196 with
//! 429 and `Retry-After`), a token endpoint that hangs, and one that drops the connection.

use std::time::Duration;

use fake_entra::{Endpoint, FakeEntra, Fault, FaultKind, UserRateLimit};
use serde_json::Value;

use crate::helpers::{CONNECTOR_SECRET, TestEntra, spawn};

const MAIL_READ: &str = "https://graph.microsoft.com/Mail.Read";

/// One OBO exchange over HTTP: (status, `Retry-After`, body).
async fn obo(t: &TestEntra, upn: &str) -> (u16, Option<String>, Value) {
    let (tid, oid) = t.persona(upn);
    let assertion = t.entra.user_token(tid, oid);
    let connector = t.connector().to_string();
    let r = t
        .http
        .post(t.entra.token_endpoint(&tid.to_string()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("client_id", connector.as_str()),
            ("client_secret", CONNECTOR_SECRET),
            ("assertion", assertion.as_str()),
            ("scope", MAIL_READ),
            ("requested_token_use", "on_behalf_of"),
        ])
        .send()
        .await
        .expect("token request answered");
    let status = r.status().as_u16();
    let retry_after =
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

async fn spawn_limited(limit: UserRateLimit) -> TestEntra {
    let mut t = spawn().await;
    t.entra = FakeEntra::builder().seed(7).user_rate_limit(limit).start().await.expect("starts");
    t
}

#[tokio::test]
async fn a_user_over_the_limit_gets_429_retry_after_and_aadsts50196() {
    let t = spawn_limited(UserRateLimit::new(2, 60)).await;
    for i in 0..2 {
        let (status, _, body) = obo(&t, "adele@contoso.com").await;
        assert_eq!(status, 200, "exchange {i} within the limit: {body}");
    }
    let (status, retry_after, body) = obo(&t, "adele@contoso.com").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], serde_json::json!([50196]));
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(
            "AADSTS50196: The server terminated an operation because it encountered a loop"
        ),
        "{desc}"
    );
    let wait: u64 = retry_after.and_then(|r| r.parse().ok()).expect("a numeric Retry-After");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Another user is not affected; the journal shows the refusal.
    let (status, _, _) = obo(&t, "megan@contoso.com").await;
    assert_eq!(status, 200, "the limit is per user");
    assert!(t.entra.journal().iter().any(|e| e.error_code == Some(50196)));
    // Once the window has passed, the user gets tokens again.
    t.entra.advance_clock(Duration::from_secs(61));
    let (status, _, body) = obo(&t, "adele@contoso.com").await;
    assert_eq!(status, 200, "after the window: {body}");
}

#[tokio::test]
async fn the_limit_is_set_and_lifted_over_http_and_from_rust() {
    let t = spawn().await;
    let url = format!("{}/_fake/user-rate-limit", t.entra.uri());
    let r = t.http.put(&url).json(&serde_json::json!({"maxRequests": 1, "windowSeconds": 30}));
    assert_eq!(r.send().await.expect("put").status().as_u16(), 204);
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 200);
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 429);
    let r = t.http.put(&url).json(&serde_json::json!({"maxRequests": 1, "windowSeconds": 0}));
    assert_eq!(r.send().await.expect("put").status().as_u16(), 400, "a zero window is refused");
    assert_eq!(t.http.delete(&url).send().await.expect("delete").status().as_u16(), 204);
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 200, "lifted over HTTP");
    t.entra.set_user_rate_limit(Some(UserRateLimit::new(1, 30)));
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 200);
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 429);
    t.entra.set_user_rate_limit(None);
    assert_eq!(obo(&t, "adele@contoso.com").await.0, 200, "lifted from Rust");
}

#[tokio::test]
async fn a_hanging_token_endpoint_answers_nothing_until_the_client_gives_up() {
    let t = spawn().await;
    t.entra.add_fault(Fault::new(Endpoint::Token, 1, FaultKind::Hang));
    let started = std::time::Instant::now();
    let r = t
        .http
        .post(t.entra.token_endpoint("contoso.com"))
        .form(&[("grant_type", "client_credentials")])
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let err = r.expect_err("no answer while hanging");
    assert!(err.is_timeout(), "the client timed out: {err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(t.entra.journal().iter().any(|e| e.error.as_deref() == Some("hang")));
    // One request only: the next is answered.
    let (status, _, _) = obo(&t, "adele@contoso.com").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_hanging_request_ends_when_the_fake_stops() {
    let t = spawn().await;
    t.entra.add_fault(Fault::new(Endpoint::Token, 1, FaultKind::Hang));
    let request = t
        .http
        .post(t.entra.token_endpoint("contoso.com"))
        .form(&[("grant_type", "client_credentials")])
        .send();
    let pending = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "still hanging while the fake runs");
    drop(t.entra);
    let ended = tokio::time::timeout(Duration::from_secs(5), pending).await;
    assert!(ended.is_ok(), "the hanging request outlived the fake");
}

#[tokio::test]
async fn a_dropped_connection_sends_no_status_line() {
    let t = spawn().await;
    t.entra.add_fault(Fault::new(Endpoint::Token, 1, FaultKind::DropConnection));
    let r = t
        .http
        .post(t.entra.token_endpoint("contoso.com"))
        .form(&[("grant_type", "client_credentials")])
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let err = r.expect_err("no response on a dropped connection");
    assert!(!err.is_timeout() && err.status().is_none(), "a transport error: {err}");
    assert!(t.entra.journal().iter().any(|e| e.error.as_deref() == Some("connection_dropped")));
    let (status, _, _) = obo(&t, "adele@contoso.com").await;
    assert_eq!(status, 200, "the next request is served");
}

#[tokio::test]
async fn faults_are_scriptable_over_http_as_hang_and_drop_connection() {
    let t = spawn().await;
    let url = format!("{}/_fake/faults", t.entra.uri());
    let fault = serde_json::json!({"endpoint": "token", "fault": {"kind": "dropConnection"}});
    assert_eq!(t.http.post(&url).json(&fault).send().await.expect("post").status().as_u16(), 204);
    let fault = serde_json::json!({"endpoint": "token", "fault": {"kind": "hang"}});
    assert_eq!(t.http.post(&url).json(&fault).send().await.expect("post").status().as_u16(), 204);
    let r = t.http.post(t.entra.token_endpoint("contoso.com")).form(&[("a", "b")]).send().await;
    assert!(r.is_err_and(|e| e.status().is_none() && !e.is_timeout()), "dropped first");
    let r = t
        .http
        .post(t.entra.token_endpoint("contoso.com"))
        .form(&[("a", "b")])
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()), "then hangs");
}

#[tokio::test]
async fn an_in_process_sign_in_reports_a_dropped_connection() {
    let t = spawn().await;
    t.entra.add_fault(Fault::new(Endpoint::Token, 1, FaultKind::DropConnection));
    let scope = t.connector_scope();
    let r = t.entra.sign_in("adele@contoso.com", t.client(), &[scope.as_str()]).await;
    let err = r.expect_err("the code redemption was dropped");
    assert_eq!(err.error_description, "connection dropped");
}
