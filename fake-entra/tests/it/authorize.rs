use crate::helpers::*;

fn base_params<'a>(
    client: &'a str,
    scope: &'a str,
    challenge: &'a str,
    hint: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", client),
        ("response_type", "code"),
        ("redirect_uri", "http://localhost:53100/callback"),
        ("scope", scope),
        ("state", "xyz"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("login_hint", hint),
    ]
}

#[tokio::test]
async fn sign_in_helper_issues_connector_refresh_and_id_tokens() {
    let t = spawn().await;
    let resp = t.sign_in("adele@contoso.com").await;
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.scope, t.connector_scope());
    assert!(resp.refresh_token.is_some());
    let claims = t.validate_v2(&resp.access_token).await.expect("valid");
    assert_eq!(claims["preferred_username"], "adele@contoso.com");
    let id = segment(resp.id_token.as_deref().expect("id token"), 1);
    assert_eq!(id["aud"], t.client().to_string());
    assert!(id.get("scp").is_none());
}

#[tokio::test]
async fn login_hint_redirects_with_code_and_state_on_any_loopback_port() {
    let t = spawn().await;
    let (_, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let (status, params, _) =
        t.authorize(CONTOSO, &base_params(&client, &scope, &challenge, "adele@contoso.com")).await;
    assert_eq!(status, 302);
    assert!(params.contains_key("code"));
    assert_eq!(params["state"], "xyz");
}

async fn redeem(t: &TestEntra, verifier: &str, code: &str) -> (u16, serde_json::Value) {
    let client = t.client().to_string();
    t.token(
        CONTOSO,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", code),
            ("redirect_uri", "http://localhost:53100/callback"),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test]
async fn code_redemption_checks_verifier_and_is_single_use() {
    let t = spawn().await;
    let (verifier, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let (_, params, _) =
        t.authorize(CONTOSO, &base_params(&client, &scope, &challenge, "adele@contoso.com")).await;
    let code = params["code"].clone();
    // A wrong verifier consumes the code (single use) and is refused.
    let (status, body) = redeem(&t, "wrong-verifier-wrong-verifier-wrong-verifier", &code).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(501481)));
    let (_, body) = redeem(&t, &verifier, &code).await;
    assert_eq!(body["error_codes"][0], 54005);
    // A fresh code with the right verifier works once.
    let (_, params, _) =
        t.authorize(CONTOSO, &base_params(&client, &scope, &challenge, "adele@contoso.com")).await;
    let code = params["code"].clone();
    let (status, body) = redeem(&t, &verifier, &code).await;
    assert_eq!(status, 200, "{body}");
    let (_, again) = redeem(&t, &verifier, &code).await;
    assert_eq!(again["error_codes"][0], 54005);
}

#[tokio::test]
async fn plain_pkce_is_accepted_and_is_the_default_method() {
    let t = spawn().await;
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let verifier = "p".repeat(50);
    let mut params = base_params(&client, &scope, &verifier, "adele@contoso.com");
    params.retain(|(k, _)| *k != "code_challenge_method");
    let (_, q, _) = t.authorize(CONTOSO, &params).await;
    let (status, _) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client),
                ("code", &q["code"]),
                ("redirect_uri", "http://localhost:53100/callback"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn code_expires_after_ten_minutes() {
    let t = spawn().await;
    let (verifier, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let (_, q, _) =
        t.authorize(CONTOSO, &base_params(&client, &scope, &challenge, "adele@contoso.com")).await;
    t.entra.advance_clock(std::time::Duration::from_secs(11 * 60));
    let (status, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client),
                ("code", &q["code"]),
                ("redirect_uri", "http://localhost:53100/callback"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(70008)));
}

#[tokio::test]
async fn unregistered_redirect_uri_is_shown_not_redirected() {
    let t = spawn().await;
    let (_, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let mut params = base_params(&client, &scope, &challenge, "adele@contoso.com");
    params[2] = ("redirect_uri", "https://evil.example/callback");
    let (status, _, body) = t.authorize(CONTOSO, &params).await;
    assert_eq!(status, 400);
    assert!(body.contains("AADSTS50011"));
}

#[tokio::test]
async fn without_login_hint_a_persona_page_is_shown() {
    let t = spawn().await;
    let (_, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let mut params = base_params(&client, &scope, &challenge, "");
    params.pop();
    let (status, _, body) = t.authorize(CONTOSO, &params).await;
    assert_eq!(status, 200);
    assert!(body.contains("adele@contoso.com"));
    assert!(body.contains("login_hint=adele%40contoso.com"));
    assert!(!body.contains("nancy@northwind.com"));
}

async fn authorize_error(
    t: &TestEntra,
    tenant: &str,
    upn: &str,
    extra: &[(&str, &str)],
) -> (String, u64) {
    let (_, challenge) = pkce();
    let client = t.client().to_string();
    let scope = t.connector_scope();
    let mut params = base_params(&client, &scope, &challenge, upn);
    params.extend_from_slice(extra);
    let (_, q, _) = t.authorize(tenant, &params).await;
    (
        q.get("error").cloned().unwrap_or_default(),
        q.get("error_codes").and_then(|c| c.parse().ok()).unwrap_or(0),
    )
}

#[tokio::test]
async fn disabled_user_is_refused_with_50057() {
    let t = spawn().await;
    assert_eq!(authorize_error(&t, CONTOSO, "lynne@contoso.com", &[]).await.1, 50057);
}

#[tokio::test]
async fn never_consented_tenant_gets_consent_required_65001() {
    let t = spawn().await;
    let (error, code) = authorize_error(&t, "northwind.com", "nancy@northwind.com", &[]).await;
    assert_eq!((error.as_str(), code), ("consent_required", 65001));
}

#[tokio::test]
async fn assignment_required_refuses_users_outside_the_pilot() {
    let t = spawn().await;
    t.entra.set_assignment_required("contoso", true).expect("control");
    assert_eq!(authorize_error(&t, CONTOSO, "diego@contoso.com", &[]).await.1, 50105);
    assert_eq!(authorize_error(&t, CONTOSO, "alex@contoso.com", &[]).await.1, 0);
}

#[tokio::test]
async fn mfa_policy_needs_mfa_and_fake_mfa_or_claims_satisfy_it() {
    let t = spawn().await;
    let (error, code) = authorize_error(&t, CONTOSO, "isaiah@contoso.com", &[]).await;
    assert_eq!((error.as_str(), code), ("interaction_required", 50076));
    assert_eq!(
        authorize_error(&t, CONTOSO, "isaiah@contoso.com", &[("fake_mfa", "true")]).await.1,
        0
    );
    let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["c3c1b68a-e56c-4d97-b1fe-d2c04a2e8718"]}}}"#;
    assert_eq!(
        authorize_error(&t, CONTOSO, "isaiah@contoso.com", &[("claims", claims)]).await.1,
        0
    );
}

#[tokio::test]
async fn device_and_ip_policies_block_until_overridden() {
    let t = spawn().await;
    assert_eq!(authorize_error(&t, CONTOSO, "nestor@contoso.com", &[]).await.1, 53000);
    assert_eq!(
        authorize_error(&t, CONTOSO, "nestor@contoso.com", &[("fake_device_compliant", "true")])
            .await
            .1,
        0
    );
    assert_eq!(authorize_error(&t, CONTOSO, "joni@contoso.com", &[]).await.1, 53003);
    assert_eq!(
        authorize_error(&t, CONTOSO, "joni@contoso.com", &[("fake_ip", "10.20.3.4")]).await.1,
        0
    );
}

#[tokio::test]
async fn consumer_users_sign_in_via_consumers_and_common_only() {
    let t = spawn().await;
    let (tid, _) = t.persona("pat@outlook.com");
    assert_eq!(tid.to_string(), "9188040d-6c67-4c5b-b112-36a304b66dad");
    assert_eq!(authorize_error(&t, "consumers", "pat@outlook.com", &[]).await.1, 0);
    assert_eq!(authorize_error(&t, "common", "pat@outlook.com", &[]).await.1, 0);
    assert_eq!(authorize_error(&t, "organizations", "pat@outlook.com", &[]).await.1, 50020);
}
