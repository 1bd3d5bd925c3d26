use crate::helpers::*;

#[tokio::test]
async fn tenant_discovery_has_the_tenant_issuer_and_entra_shape() {
    // Arrange
    let t = spawn().await;
    // Act
    let (status, doc) =
        t.get_json(&format!("/{CONTOSO}/v2.0/.well-known/openid-configuration")).await;
    // Assert
    assert_eq!(status, 200);
    let uri = t.entra.uri();
    assert_eq!(doc["issuer"], format!("{uri}/{CONTOSO}/v2.0"));
    assert_eq!(doc["jwks_uri"], format!("{uri}/{CONTOSO}/discovery/v2.0/keys"));
    assert_eq!(doc["token_endpoint"], format!("{uri}/{CONTOSO}/oauth2/v2.0/token"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    // Entra omits this although PKCE works (reference/entra.md §2.1).
    assert!(doc.get("code_challenge_methods_supported").is_none());
}

#[tokio::test]
async fn discovery_by_verified_domain_names_the_tenant_guid() {
    let t = spawn().await;
    let (status, doc) = t.get_json("/contoso.com/v2.0/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], format!("{}/{CONTOSO}/v2.0", t.entra.uri()));
}

#[tokio::test]
async fn common_and_organizations_discovery_use_the_templated_issuer() {
    let t = spawn().await;
    for seg in ["common", "organizations"] {
        let (status, doc) =
            t.get_json(&format!("/{seg}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(status, 200);
        assert_eq!(doc["issuer"], format!("{}/{{tenantid}}/v2.0", t.entra.uri()));
        assert_eq!(doc["jwks_uri"], format!("{}/{seg}/discovery/v2.0/keys", t.entra.uri()));
    }
}

#[tokio::test]
async fn v1_discovery_uses_the_sts_issuer_with_trailing_slash() {
    let t = spawn().await;
    let (status, doc) = t.get_json(&format!("/{CONTOSO}/.well-known/openid-configuration")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], format!("https://sts.windows.net/{CONTOSO}/"));
}

#[tokio::test]
async fn discovery_headers_match_entra() {
    let t = spawn().await;
    let r = t
        .http
        .get(format!("{}/common/v2.0/.well-known/openid-configuration", t.entra.uri()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["cache-control"], "max-age=86400, private");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers().contains_key("x-ms-request-id"));
}

#[tokio::test]
async fn jwks_lists_several_rsa_keys_with_per_key_issuer() {
    let t = spawn().await;
    let (_, common) = t.get_json("/common/discovery/v2.0/keys").await;
    let keys = common["keys"].as_array().expect("keys");
    assert!(keys.len() >= 2);
    for k in keys {
        for field in ["kid", "x5t", "n", "e", "kty", "use", "issuer"] {
            assert!(k.get(field).is_some(), "missing {field}");
        }
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["issuer"], format!("{}/{{tenantid}}/v2.0", t.entra.uri()));
    }
    let (_, tenant) = t.get_json(&format!("/{CONTOSO}/discovery/v2.0/keys")).await;
    assert_eq!(tenant["keys"][0]["issuer"], format!("{}/{CONTOSO}/v2.0", t.entra.uri()));
}

#[tokio::test]
async fn unknown_tenant_gets_aadsts90002() {
    let t = spawn().await;
    let (status, body) = t.get_json("/nowhere.example/v2.0/.well-known/openid-configuration").await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"][0], 90002);
}

#[tokio::test]
async fn pkce_methods_can_be_advertised_on_request() {
    let entra = fake_entra::FakeEntra::builder()
        .advertise_pkce(true)
        .start()
        .await
        .expect("fake-entra starts");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build().expect("client");
    let doc: serde_json::Value = http
        .get(format!("{}/common/v2.0/.well-known/openid-configuration", entra.uri()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["plain", "S256"]));
}
