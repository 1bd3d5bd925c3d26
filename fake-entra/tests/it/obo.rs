use fake_entra::{BadToken, TokenSpec};
use fixtures::GrantResource;

use crate::helpers::*;

#[tokio::test]
async fn obo_issues_a_v1_graph_token_with_granted_scopes() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    let (status, body) = t
        .obo(
            CONTOSO,
            &assertion,
            "https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scope"],
        "https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read"
    );
    let token = body["access_token"].as_str().expect("token");
    assert!(segment(token, 0).get("nonce").is_some());
    let c = segment(token, 1);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{tid}/"));
    assert_eq!(c["scp"], "Mail.Read User.Read");
    assert_eq!(c["appid"], t.connector().to_string());
    assert_eq!(c["oid"], oid.to_string());
    assert_eq!(c["xms_cc"], serde_json::json!(["cp1"]));
    let life = body["expires_in"].as_i64().unwrap_or(0);
    assert!((20 * 3600..=28 * 3600).contains(&life));
    let journal = t.entra.journal();
    let last = journal.last().expect("journal");
    assert_eq!(last.grant, "on_behalf_of");
    assert_eq!(last.uti.as_deref(), c["uti"].as_str());
    assert!(last.cp1);
}

#[tokio::test]
async fn obo_with_a_token_from_the_auth_code_flow_works() {
    let t = spawn().await;
    let resp = t.sign_in("adele@contoso.com").await;
    let (status, _) =
        t.obo(CONTOSO, &resp.access_token, "https://graph.microsoft.com/Mail.Read").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn obo_refuses_bad_assertions_with_entra_codes() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let (fab, _) = t.persona("adele@fabrikam.com");
    let cases = [
        (BadToken::WrongAudience, 500131),
        (BadToken::Expired, 500133),
        (BadToken::UnknownKey, 50013),
        (BadToken::ForeignKeyKnownKid, 50013),
        (BadToken::TamperedPayload, 50013),
        (BadToken::AlgNone, 50027),
        (BadToken::Hs256WithPublicKey, 50013),
        (BadToken::MismatchedIssuer { iss_tid: fab }, 50027),
        (BadToken::AppOnly, 70000),
        (BadToken::IdToken, 240002),
    ];
    for (bad, code) in cases {
        let assertion = t.entra.mint(&TokenSpec::user(tid, oid).bad(bad.clone()));
        let (status, body) =
            t.obo(CONTOSO, &assertion, "https://graph.microsoft.com/User.Read").await;
        assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(code)), "{bad:?}: {body}");
    }
}

#[tokio::test]
async fn obo_client_authentication_failures_are_invalid_client_401() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    let connector = t.connector().to_string();
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("client_id", connector.as_str()),
        ("assertion", assertion.as_str()),
        ("scope", "https://graph.microsoft.com/User.Read"),
        ("requested_token_use", "on_behalf_of"),
    ];
    let (status, body) = t.token(CONTOSO, &form).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (401, Some(7000218)));
    form.push(("client_secret", "wrong"));
    let (status, body) = t.token(CONTOSO, &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(body["error_codes"][0], 7000215);
}

#[tokio::test]
async fn obo_checks_consent_per_scope() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, oid);
    t.entra
        .revoke_consent("contoso", t.connector(), GrantResource::Graph, &["Sites.Read.All"])
        .expect("revoke");
    let (_, body) = t.obo(CONTOSO, &assertion, "https://graph.microsoft.com/Sites.Read.All").await;
    assert_eq!(body["error_codes"][0], 65001);
    assert_eq!(body["suberror"], "consent_required");
    assert_eq!(t.obo(CONTOSO, &assertion, "https://graph.microsoft.com/Mail.Read").await.0, 200);
    t.entra.revoke_all_consent("contoso").expect("revoke all");
    assert_eq!(
        t.obo(CONTOSO, &assertion, "https://graph.microsoft.com/Mail.Read").await.1["error_codes"]
            [0],
        65001
    );
}

#[tokio::test]
async fn obo_default_scope_returns_every_granted_scope() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let (status, body) =
        t.obo(CONTOSO, &t.entra.user_token(tid, oid), "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 200);
    let scope = body["scope"].as_str().unwrap_or("");
    assert!(scope.contains("https://graph.microsoft.com/Sites.Read.All"));
    assert!(!scope.contains("offline_access"));
}

#[tokio::test]
async fn obo_enforces_assignment_and_user_state() {
    let t = spawn().await;
    let (tid, diego) = t.persona("diego@contoso.com");
    t.entra.set_assignment_required("contoso", true).expect("control");
    let (_, body) = t.obo(CONTOSO, &t.entra.user_token(tid, diego), "User.Read").await;
    assert_eq!(body["error_codes"][0], 50105);
    t.entra.assign("contoso", "diego@contoso.com").expect("assign");
    assert_eq!(t.obo(CONTOSO, &t.entra.user_token(tid, diego), "User.Read").await.0, 200);

    t.entra.set_assignment_required("contoso", false).expect("control");
    let (_, adele) = t.persona("adele@contoso.com");
    let assertion = t.entra.user_token(tid, adele);
    t.entra.revoke_sessions("contoso", "adele@contoso.com").expect("revoke");
    assert_eq!(t.obo(CONTOSO, &assertion, "User.Read").await.1["error_codes"][0], 50173);
    let fresh = t.entra.user_token(tid, adele);
    assert_eq!(t.obo(CONTOSO, &fresh, "User.Read").await.0, 200);
    t.entra.disable_user("contoso", "adele@contoso.com").expect("disable");
    assert_eq!(t.obo(CONTOSO, &fresh, "User.Read").await.1["error_codes"][0], 50057);
}

#[tokio::test]
async fn obo_conditional_access_mfa_gives_a_claims_challenge_satisfied_by_step_up() {
    let t = spawn().await;
    let (tid, isaiah) = t.persona("isaiah@contoso.com");
    let (status, body) = t.obo(CONTOSO, &t.entra.user_token(tid, isaiah), "User.Read").await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"][0], 50076);
    assert_eq!(body["suberror"], "basic_action");
    let claims: serde_json::Value =
        serde_json::from_str(body["claims"].as_str().expect("claims string")).expect("json");
    assert!(claims["access_token"]["capolids"]["values"].is_array());
    // Step-up: sign in again passing the claims challenge; the new token's session has MFA.
    let scope = t.connector_scope();
    let stepped = t
        .entra
        .sign_in_with(
            "isaiah@contoso.com",
            t.client(),
            &[scope.as_str()],
            &[("claims", body["claims"].as_str().unwrap_or(""))],
        )
        .await
        .expect("step-up sign-in");
    assert_eq!(t.obo(CONTOSO, &stepped.access_token, "User.Read").await.0, 200);
}

#[tokio::test]
async fn obo_mfa_for_unregistered_user_is_50079_and_device_and_ip_block() {
    let t = spawn().await;
    let (tid, nestor) = t.persona("nestor@contoso.com");
    assert_eq!(
        t.obo(CONTOSO, &t.entra.user_token(tid, nestor), "User.Read").await.1["error_codes"][0],
        53000
    );
    let (_, joni) = t.persona("joni@contoso.com");
    assert_eq!(
        t.obo(CONTOSO, &t.entra.user_token(tid, joni), "User.Read").await.1["error_codes"][0],
        53003
    );
    let inside = t.entra.mint(&TokenSpec::user(tid, joni).ip("10.20.0.9"));
    assert_eq!(t.obo(CONTOSO, &inside, "User.Read").await.0, 200);
    // An MFA policy on everyone: Lynne is disabled, so use a user without MFA registration.
    let (_, adele) = t.persona("adele@contoso.com");
    t.entra
        .add_ca_policy(
            "contoso",
            fixtures::CaPolicy {
                id: uuid::Uuid::new_v4(),
                display_name: "MFA for Adele".into(),
                enabled: true,
                applies_to: fixtures::CaScope::Users { users: vec!["adele@contoso.com".into()] },
                control: fixtures::CaControl::RequireMfa,
            },
        )
        .expect("policy");
    assert_eq!(
        t.obo(CONTOSO, &t.entra.user_token(tid, adele), "User.Read").await.1["error_codes"][0],
        50076
    );
    t.entra.remove_ca_policy("contoso", "MFA for Adele").expect("remove");
    assert_eq!(t.obo(CONTOSO, &t.entra.user_token(tid, adele), "User.Read").await.0, 200);
}

#[tokio::test]
async fn obo_accepts_a_private_key_jwt_client_assertion() {
    // Arrange: a world whose connector has a certificate (the second TEST-ONLY key).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut world = (*fixtures::standard_world()).clone();
    let pem = include_str!("../../src/test_keys/key2.pem");
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, jsonwebtoken::Algorithm::RS256)
        .expect("jwk");
    let (n, e) = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(r) => (r.n.clone(), r.e.clone()),
        _ => unreachable!("rsa"),
    };
    let public_pem = rsa_public_pem(&n, &e);
    world
        .apps
        .connector
        .certificates
        .push(fixtures::Certificate { x5t: "cert-1".into(), public_key_pem: public_pem });
    let entra = fake_entra::FakeEntra::builder()
        .world(std::sync::Arc::new(world))
        .start()
        .await
        .expect("fake-entra starts");
    let http = reqwest::Client::builder().build().expect("client");
    let (tid, oid) = entra.persona("adele@contoso.com").expect("adele");
    let connector = entra.connector_id().to_string();
    let now = entra.clock().now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some("cert-1".into());
    let claims = serde_json::json!({
        "aud": entra.token_endpoint(&tid.to_string()), "iss": connector, "sub": connector,
        "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "exp": now + 600,
    });
    let client_assertion = jsonwebtoken::encode(&header, &claims, &enc).expect("sign");
    // Act
    let assertion = entra.user_token(tid, oid);
    let resp = http
        .post(entra.token_endpoint(&tid.to_string()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("client_id", connector.as_str()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", client_assertion.as_str()),
            ("assertion", assertion.as_str()),
            ("scope", "https://graph.microsoft.com/User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ])
        .send()
        .await
        .expect("send");
    // Assert
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(segment(body["access_token"].as_str().unwrap_or(""), 1)["appidacr"], "2");
}

/// SPKI PEM of an RSA public key from its JWK components.
fn rsa_public_pem(n: &str, e: &str) -> String {
    use base64::Engine;
    use rsa::pkcs8::EncodePublicKey;
    let dec = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("b64");
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&dec(n)),
        rsa::BoxedUint::from_be_slice_vartime(&dec(e)),
    )
    .expect("public key");
    key.to_public_key_pem(rsa::pkcs8::LineEnding::LF).expect("pem")
}
