//! Inbound token rules: every refused shape gets the documented answer, and no refused token
//! reaches rmcp.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::*;

async fn assert_invalid_token(app: &TestApp, token: &str, reason: &str) {
    let response = app.post_mcp(Some(token)).await;
    assert_eq!(response.status(), 401, "expected 401 for {reason}");
    let c = challenge(&response);
    assert_eq!(c.error.as_deref(), Some("invalid_token"), "{reason}");
    assert_eq!(c.resource_metadata, app.url("/.well-known/oauth-protected-resource/mcp"));
    assert_eq!(c.scope.as_deref(), Some(format!("api://{CLIENT_ID}/access_as_user").as_str()));
    assert!(c.error_description.is_some());
    assert!(
        app.metrics.counter("m365_tokens_rejected_total", &[("reason", reason)]) >= 1,
        "metric for {reason}"
    );
}

#[tokio::test]
async fn a_valid_token_reaches_the_mcp_endpoint() {
    let app = spawn_app().await;
    let response = app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    // Accepting a token is part of the call's record, not a record per request.
    assert!(app.audit_lines().iter().all(|l| l["event"] != "token_accepted"));
}

#[tokio::test]
async fn a_request_without_a_token_gets_a_challenge_without_an_error_code() {
    let app = spawn_app().await;
    let response = app.post_mcp(None).await;
    assert_eq!(response.status(), 401);
    let c = challenge(&response);
    assert_eq!(c.error, None);
    assert_eq!(c.scope.as_deref(), Some(format!("api://{CLIENT_ID}/access_as_user").as_str()));
}

#[tokio::test]
async fn a_non_bearer_scheme_is_treated_as_no_token() {
    let app = spawn_app().await;
    let response =
        app.post_mcp_with(None, |r| r.header("authorization", "Basic dXNlcjpwYXNz")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(challenge(&response).error, None);
}

#[tokio::test]
async fn an_expired_token_is_refused_but_one_inside_the_leeway_is_accepted() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let expired = app.token_with(|c| {
        c.insert("exp".into(), json!(now - 121));
        c.insert("iat".into(), json!(now - 3600));
        c.insert("nbf".into(), json!(now - 3600));
    });
    assert_invalid_token(&app, &expired, "expired").await;
    let in_leeway = app.token_with(|c| {
        c.insert("exp".into(), json!(now - 30));
        c.insert("iat".into(), json!(now - 3600));
        c.insert("nbf".into(), json!(now - 3600));
    });
    assert_eq!(app.post_mcp(Some(&in_leeway)).await.status(), 200);
}

#[tokio::test]
async fn expiry_is_judged_by_the_injected_clock() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 200);
    app.clock.advance(Duration::from_secs(3600 + 121));
    assert_invalid_token(&app, &token, "expired").await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let t = app.token_with(|c| {
        c.insert("nbf".into(), json!(now + 600));
    });
    assert_invalid_token(&app, &t, "not_yet_valid").await;
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let t = app.token_with(|c| {
        c.insert("iat".into(), json!(now + 600));
    });
    assert_invalid_token(&app, &t, "iat").await;
}

#[tokio::test]
async fn a_string_exp_is_refused_as_malformed() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert("exp".into(), json!("9999999999"));
    });
    assert_invalid_token(&app, &t, "malformed").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert("aud".into(), json!("11111111-1111-1111-1111-111111111111"));
    });
    assert_invalid_token(&app, &t, "audience").await;
    let array = app.token_with(|c| {
        c.insert("aud".into(), json!([CLIENT_ID]));
    });
    assert_invalid_token(&app, &array, "audience").await;
    let none = app.token_with(|c| {
        c.remove("aud");
    });
    assert_invalid_token(&app, &none, "missing_claim").await;
}

#[tokio::test]
async fn the_app_id_uri_audience_is_accepted() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert("aud".into(), json!(format!("api://{CLIENT_ID}")));
    });
    assert_eq!(app.post_mcp(Some(&t)).await.status(), 200);
}

#[tokio::test]
async fn a_graph_token_is_refused() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert("aud".into(), json!("https://graph.microsoft.com"));
        c.insert("iss".into(), json!(format!("https://sts.windows.net/{CONTOSO}/")));
        c.insert("ver".into(), json!("1.0"));
    });
    assert_invalid_token(&app, &t, "v1_token").await;
    // Even shaped as v2, the Graph audience is refused.
    let v2 = app.token_with(|c| {
        c.insert("aud".into(), json!("https://graph.microsoft.com"));
    });
    assert_invalid_token(&app, &v2, "audience").await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused_with_401_while_the_keys_are_reachable() {
    let app = spawn_app().await;
    let t = sign(&app.claims(CONTOSO, ADELE), &ATTACKER, ATTACKER.kid);
    assert_invalid_token(&app, &t, "unknown_kid").await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let t = raw_token(
        &json!({"alg": "none", "typ": "JWT", "kid": PRIMARY.kid}),
        &app.claims(CONTOSO, ADELE),
        b"",
    );
    assert_invalid_token(&app, &t, "malformed").await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(PRIMARY.kid.into());
    let key = jsonwebtoken::EncodingKey::from_secret(&PRIMARY.public_material()).unwrap();
    let t = jsonwebtoken::encode(&header, &app.claims(CONTOSO, ADELE), &key).unwrap();
    assert_invalid_token(&app, &t, "algorithm").await;
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let app = spawn_app().await;
    let good = app.token(CONTOSO, FABRIKAM);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut claims = app.claims(CONTOSO, ADELE);
    claims["oid"] = json!("7897ec7d-211c-43bd-a9bd-13dc3c8fb79c");
    use base64::Engine as _;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_invalid_token(&app, &parts.join("."), "signature").await;
}

#[tokio::test]
async fn an_issuer_for_another_tenant_is_refused() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert(
            "iss".into(),
            json!(format!("{}/{FABRIKAM}/v2.0", "https://login.microsoftonline.com")),
        );
    });
    assert_invalid_token(&app, &t, "issuer").await;
    let mismatch = app.token_with(|c| {
        c.insert("tid".into(), json!(FABRIKAM));
    });
    assert_invalid_token(&app, &mismatch, "issuer").await;
    let not_guid = app.token_with(|c| {
        c.insert("tid".into(), json!("contoso"));
    });
    assert_invalid_token(&app, &not_guid, "bad_tid").await;
}

#[tokio::test]
async fn a_key_bound_to_another_tenant_cannot_sign_for_this_one() {
    let app = spawn_app_with(Options { jwks_floor_secs: 1, ..Options::default() }).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.entra.reset().await;
    // The rotated key is published with a concrete issuer: Fabrikam only.
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            PRIMARY.jwk(&format!("{}/{{tenantid}}/v2.0", app.entra.uri())),
            ROTATED.jwk(&format!("{}/{FABRIKAM}/v2.0", app.entra.uri())),
        ]})))
        .mount(&app.entra)
        .await;
    let t = sign(&app.claims(CONTOSO, ADELE), &ROTATED, ROTATED.kid);
    let response = app.post_mcp(Some(&t)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(app.metrics.counter("m365_tokens_rejected_total", &[("reason", "key_issuer")]), 1);
}

#[tokio::test]
async fn app_only_tokens_are_refused_with_403() {
    let app = spawn_app().await;
    for t in [
        app.token_with(|c| {
            c.remove("scp");
            c.insert("roles".into(), json!(["Files.Read.All"]));
        }),
        app.token_with(|c| {
            c.insert("idtyp".into(), json!("app"));
        }),
    ] {
        let response = app.post_mcp(Some(&t)).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "access_denied");
        assert!(body["error_description"].as_str().unwrap().contains("app-only"));
    }
}

#[tokio::test]
async fn a_missing_scope_gets_403_insufficient_scope() {
    let app = spawn_app().await;
    for scp in [json!("User.Read"), json!("ACCESS_AS_USER")] {
        let t = app.token_with(|c| {
            c.insert("scp".into(), scp);
        });
        let response = app.post_mcp(Some(&t)).await;
        assert_eq!(response.status(), 403);
        let c = challenge(&response);
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(c.scope.as_deref(), Some(format!("api://{CLIENT_ID}/access_as_user").as_str()));
    }
    // An ID token (no scp, no roles) is refused the same way.
    let id_token = app.token_with(|c| {
        c.remove("scp");
    });
    assert_eq!(app.post_mcp(Some(&id_token)).await.status(), 403);
}

#[tokio::test]
async fn the_consumer_tenant_is_refused_with_a_clear_message() {
    let app = spawn_app().await;
    let t = app.token(CONSUMER, ADELE);
    let response = app.post_mcp(Some(&t)).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("personal Microsoft accounts"));
}

#[tokio::test]
async fn a_tenant_not_enabled_by_policy_is_refused_and_audited() {
    let app = spawn_app().await;
    for tid in [TAILSPIN, "5dd127cb-ab5c-4cf7-8875-bd0b772b4d98"] {
        let response = app.post_mcp(Some(&app.token(tid, ADELE))).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert!(body["error_description"].as_str().unwrap().contains("not enabled"));
    }
    // Same peer, same reason: the first is recorded at once, the second is counted into the
    // aggregation window's closing record.
    let refused: Vec<Value> =
        app.audit_lines().into_iter().filter(|l| l["event"] == "token_refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["reason"], "tenant_not_enabled");
    assert_eq!(refused[0]["tenant_id"], TAILSPIN);
    assert_eq!(refused[0]["peer"], "127.0.0.1");
    assert_eq!(refused[0]["count"], 1);
    assert!(refused[0]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_v1_token_is_refused() {
    let app = spawn_app().await;
    let t = app.token_with(|c| {
        c.insert("ver".into(), json!("1.0"));
    });
    assert_invalid_token(&app, &t, "v1_token").await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_refresh_per_floor() {
    let app = spawn_app_with(Options { jwks_floor_secs: 1, ..Options::default() }).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = app.jwks_requests().await;
    let tokens: Vec<String> = (0..40)
        .map(|i| sign(&app.claims(CONTOSO, ADELE), &ATTACKER, &format!("forged-{i}")))
        .collect();
    let requests = tokens.iter().map(|t| async { app.post_mcp(Some(t)).await.status() });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, 401);
    }
    let refreshes = app.jwks_requests().await - before;
    assert_eq!(refreshes, 1, "{refreshes} JWKS fetches for a flood of unknown kids");
}

#[tokio::test]
async fn when_the_jwks_is_down_cached_keys_work_and_unknown_kids_get_503() {
    let app = spawn_app_with(Options { jwks_floor_secs: 1, ..Options::default() }).await;
    app.entra.reset().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.entra)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Cached key: still accepted.
    assert_eq!(app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await.status(), 200);
    // Unknown kid: undecidable.
    let t = sign(&app.claims(CONTOSO, ADELE), &ROTATED, ROTATED.kid);
    let response = app.post_mcp(Some(&t)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    let app = spawn_app_with(Options { jwks_floor_secs: 1, ..Options::default() }).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.entra.reset().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(jwks(&app.entra.uri(), &[&PRIMARY, &ROTATED])),
        )
        .mount(&app.entra)
        .await;
    let t = sign(&app.claims(CONTOSO, ADELE), &ROTATED, ROTATED.kid);
    assert_eq!(app.post_mcp(Some(&t)).await.status(), 200);
}

#[tokio::test]
async fn the_per_caller_rate_limit_answers_429_for_that_caller_only() {
    let app = spawn_app_with(Options { per_minute: 1, burst: 2, ..Options::default() }).await;
    let adele = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&adele)).await.status(), 200);
    assert_eq!(app.post_mcp(Some(&adele)).await.status(), 200);
    let limited = app.post_mcp(Some(&adele)).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    let other = app.token(CONTOSO, "1b0e3069-0ba6-4a90-9981-dae77a1c0ad0");
    assert_eq!(app.post_mcp(Some(&other)).await.status(), 200);
}
