//! Error bodies, snapshotted with trace ids and timestamps redacted.

use crate::{assert_entra_error, helpers::*};

#[tokio::test]
async fn error_description_has_the_entra_tail_and_fields() {
    let t = spawn().await;
    let r = t
        .http
        .post(t.entra.token_endpoint(CONTOSO))
        .header("client-request-id", "0b7c2a6e-1111-4222-8333-444455556666")
        .form(&[("grant_type", "password"), ("client_id", t.client().to_string().as_str())])
        .send()
        .await
        .expect("post");
    let body: serde_json::Value = r.json().await.expect("json");
    let d = body["error_description"].as_str().unwrap_or("");
    assert!(d.starts_with("AADSTS70003: "));
    assert!(d.contains("\r\nTrace ID: "));
    assert!(d.contains("\r\nCorrelation ID: 0b7c2a6e-1111-4222-8333-444455556666\r\nTimestamp: "));
    assert_eq!(body["correlation_id"], "0b7c2a6e-1111-4222-8333-444455556666");
    let ts = body["timestamp"].as_str().unwrap_or("");
    assert!(chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%SZ").is_ok(), "{ts}");
    assert_eq!(body["error_uri"], "https://login.microsoftonline.com/error?code=70003");
}

#[tokio::test]
async fn snapshot_consent_required() {
    let t = spawn().await;
    t.entra.revoke_all_consent("contoso").expect("revoke");
    let (tid, oid) = t.persona("adele@contoso.com");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, oid), "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_mfa_required() {
    let t = spawn().await;
    let (tid, oid) = t.persona("isaiah@contoso.com");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, oid), "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_ca_blocked() {
    let t = spawn().await;
    let (tid, oid) = t.persona("joni@contoso.com");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, oid), "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_device_not_compliant() {
    let t = spawn().await;
    let (tid, oid) = t.persona("nestor@contoso.com");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, oid), "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_user_disabled() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    t.entra.disable_user("contoso", "adele@contoso.com").expect("disable");
    let (_, body) = t.obo(CONTOSO, &assertion, "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_not_assigned() {
    let t = spawn().await;
    t.entra.set_assignment_required("contoso", true).expect("control");
    let (tid, oid) = t.persona("diego@contoso.com");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, oid), "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_wrong_audience() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t
        .entra
        .mint(&fake_entra::TokenSpec::user(tid, oid).bad(fake_entra::BadToken::WrongAudience));
    let (_, body) = t.obo(CONTOSO, &assertion, "User.Read").await;
    assert_entra_error!(body);
}

#[tokio::test]
async fn snapshot_missing_client_credential() {
    let t = spawn().await;
    let connector = t.connector().to_string();
    let (_, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &connector),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_entra_error!(body);
}
