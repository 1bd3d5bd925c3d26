//! Token validation, scopes, tenant isolation, CAE, request ids.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::{MAIL, TestWorld};

#[tokio::test]
async fn a_request_without_a_token_gets_graphs_401_and_challenge() {
    let w = TestWorld::start().await;
    let r = w.send(Method::GET, None, "/v1.0/me", None, &[("client-request-id", "abc-123")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");
    assert_eq!(r.body["error"]["message"], "Access token is empty.");
    assert!(
        r.header("www-authenticate").contains("client_id=\"00000003-0000-0000-c000-000000000000\"")
    );
    assert_eq!(r.header("client-request-id"), "abc-123");
    assert_eq!(r.body["error"]["innerError"]["client-request-id"], "abc-123");
    assert_eq!(r.body["error"]["innerError"]["request-id"], r.header("request-id"));
}

#[tokio::test]
async fn a_token_for_the_connector_audience_is_refused() {
    let w = TestWorld::start().await;
    let (tid, oid) = w.persona("contoso", "adele");
    let r = w.get(&w.entra.user_token(tid, oid), "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");
}

#[tokio::test]
async fn forged_and_garbage_tokens_are_refused() {
    let w = TestWorld::start().await;
    let good = w.token("contoso", "adele", MAIL);
    let mut forged = good.clone();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = w.get(&forged, "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = w.get("not-a-jwt", "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["message"], "CompactToken parsing failed with error code: 80049217");
    let r = w.get(&good, "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_refused_when_the_shared_clock_moves_past_exp() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    assert_eq!(w.get(&t, "/v1.0/me").await.status, StatusCode::OK);
    w.clock.advance(Duration::from_secs(3 * 3600));
    let r = w.get(&t, "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["message"], "Lifetime validation failed, the token is expired.");
}

#[tokio::test]
async fn missing_scopes_get_each_services_403_code() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["User.Read"]);
    let cases = [
        ("/v1.0/me/messages", "ErrorAccessDenied"),
        ("/v1.0/users", "Authorization_RequestDenied"),
        ("/v1.0/me/chats", "Forbidden"),
        ("/v1.0/me/drive", "accessDenied"),
    ];
    for (path, code) in cases {
        let r = w.get(&t, path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.code(), code, "{path}");
    }
    let r = w.get(&t, "/v1.0/me/chats").await;
    assert_eq!(
        r.body["error"]["message"],
        "Missing scope permissions on the request. API requires one of 'Chat.ReadBasic, Chat.Read, Chat.ReadWrite'. Scopes on the request 'User.Read'"
    );
}

#[tokio::test]
async fn another_tenants_user_is_indistinguishable_from_a_missing_one() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["User.ReadBasic.All", "Mail.Read"]);
    let (_, fabrikam_adele) = w.persona("fabrikam", "adele");
    let other = w.get(&t, &format!("/v1.0/users/{fabrikam_adele}")).await;
    let missing = w.get(&t, &format!("/v1.0/users/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!((other.status, other.code()), (missing.status, missing.code()));
    let mail = w.get(&t, &format!("/v1.0/users/{fabrikam_adele}/messages")).await;
    assert_eq!((mail.status, mail.code()), (StatusCode::NOT_FOUND, "ErrorInvalidUser"));
}

#[tokio::test]
async fn a_cp1_token_issued_before_a_revocation_gets_the_cae_challenge() {
    let w = TestWorld::start().await;
    let (tid, oid) = w.persona("contoso", "adele");
    let cp1 = w.entra.graph_token(tid, oid, MAIL, true);
    let plain = w.entra.graph_token(tid, oid, MAIL, false);
    assert_eq!(w.get(&cp1, "/v1.0/me").await.status, StatusCode::OK);
    w.clock.advance(Duration::from_secs(2));
    w.entra.revoke_sessions("contoso", "adele@contoso.com").expect("revoked");
    let r = w.get(&cp1, "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "InvalidAuthenticationToken");
    // Graph's shape (entra.md §9.2): a PoP challenge, then the Bearer one with the claims.
    let challenge = r.header("www-authenticate");
    let authority = r#"realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;
    assert!(challenge.starts_with(&format!("PoP {authority}, nonce=\"")), "{challenge}");
    let (pop, bearer) =
        challenge.split_at(challenge.find(", Bearer ").expect("a Bearer challenge after PoP"));
    assert!(!pop.contains("claims"), "{challenge}");
    assert!(bearer.starts_with(&format!(", Bearer {authority}, error_description=\"Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp\", error=\"insufficient_claims\", claims=\"")), "{challenge}");
    let claims =
        bearer.split("claims=\"").nth(1).and_then(|s| s.split('"').next()).expect("claims");
    assert!(!claims.ends_with('='), "claims are sent unpadded: {claims}");
    use base64::Engine;
    let decoded: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD_NO_PAD.decode(claims).expect("base64"),
    )
    .expect("json");
    let revoked_at = w.graph.cae_events().last().expect("the event").time.timestamp();
    assert_eq!(
        decoded,
        serde_json::json!({"access_token": {
            "nbf": {"essential": true, "value": revoked_at.to_string()},
            "xms_caeerror": {"value": "10012"},
        }})
    );
    // Tokens without cp1 keep working until they expire.
    assert_eq!(w.get(&plain, "/v1.0/me").await.status, StatusCode::OK);
    // A token issued after the event works.
    w.clock.advance(Duration::from_secs(2));
    let fresh = w.entra.graph_token(tid, oid, MAIL, true);
    assert_eq!(w.get(&fresh, "/v1.0/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn background_cae_polling_also_sees_events() {
    let w = TestWorld::start_with(|b| {
        b.cae_sync(fake_graph::CaeSync::Background(Duration::from_millis(20)))
    })
    .await;
    let (tid, oid) = w.persona("contoso", "alex");
    let cp1 = w.entra.graph_token(tid, oid, MAIL, true);
    w.clock.advance(Duration::from_secs(2));
    w.entra.revoke_sessions("contoso", "alex@contoso.com").expect("revoked");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.get(&cp1, "/v1.0/me").await.status, StatusCode::UNAUTHORIZED);
    assert!(!w.graph.cae_events().is_empty());
}

#[tokio::test]
async fn every_write_is_refused_and_flagged_in_the_journal() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["Mail.ReadWrite", "Mail.Send"]);
    let r =
        w.send(Method::POST, Some(&t), "/v1.0/me/sendMail", Some(serde_json::json!({})), &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = w.send(Method::DELETE, Some(&t), "/v1.0/me/messages/AAA", None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let writes = w.graph.mutating_requests();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].request_method, "POST");
    let (tid, oid) = w.persona("contoso", "adele");
    assert_eq!(writes[0].user_id, Some(oid));
    assert_eq!(writes[0].tenant_id, Some(tid));
}

#[tokio::test]
async fn the_journal_records_activity_log_columns_and_never_called_works() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get_h(&t, "/v1.0/me/messages?$top=1", &[("client-request-id", "c-1")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let (tid, adele) = w.persona("contoso", "adele");
    let (_, alex) = w.persona("contoso", "alex");
    let entries = w.graph.requests_for_user(tid, adele);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.request_uri, "/v1.0/me/messages?$top=1");
    assert_eq!(e.client_request_id, "c-1");
    assert_eq!(e.request_id, r.header("request-id"));
    assert_eq!(e.response_status_code, 200);
    assert_eq!(e.scopes.as_deref(), Some("User.Read Mail.Read"));
    assert!(e.sign_in_activity_id.as_deref().is_some_and(|u| !u.is_empty()));
    assert_eq!(e.app_id.as_deref(), Some(w.entra.connector_id().to_string().as_str()));
    assert!(w.graph.never_called_for(tid, alex));
    assert!(!w.graph.never_called_for(tid, adele));
}
