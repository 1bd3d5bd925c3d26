//! On-Behalf-Of through the public API: the provider against a wiremock Entra.

use std::sync::Arc;

use connector::{
    clock::Clock,
    domain::{Caller, ObjectId, ScopeSet, TenantId, UserAssertion},
    metrics::{Metrics, names},
    obo::{ClientCredential, OboError, OboSettings, TokenProvider},
};
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_string_contains, method, path},
};

pub const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

pub fn caller() -> Caller {
    Caller {
        tenant_id: TenantId::parse(TID).expect("tid"),
        object_id: ObjectId::parse("00000000-0000-0000-0000-0000000000a1").expect("oid"),
        client_id: Uuid::nil(),
        scopes: ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        assertion: UserAssertion::new("inbound.user.token-sentinel".into()),
    }
}

pub fn provider(entra: &MockServer, metrics: Arc<Metrics>) -> TokenProvider {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = OboSettings::new(
        Url::parse(&entra.uri()).expect("url"),
        Uuid::from_u128(7),
        ClientCredential::Secret(SecretString::from("test-only-secret".to_owned())),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    TokenProvider::new(settings, http, Clock::system(), metrics)
}

pub fn token_response(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type":"Bearer","scope":"https://graph.microsoft.com/Mail.Read","expires_in":"3599","access_token":token}))
}

#[tokio::test]
async fn a_cached_token_is_reused_and_counted_as_a_cache_hit() {
    // Arrange
    let entra = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TID}/oauth2/v2.0/token")))
        .and(body_string_contains("requested_token_use=on_behalf_of"))
        .respond_with(token_response("graph-1"))
        .expect(1)
        .mount(&entra)
        .await;
    let metrics = Arc::new(Metrics::new());
    let p = provider(&entra, metrics.clone());
    let scopes = ScopeSet::from_scp("Mail.Read");
    // Act
    let first = p.graph_token(&caller(), &scopes, None).await.expect("exchange");
    let second = p.graph_token(&caller(), &scopes, None).await.expect("cached");
    // Assert
    assert_eq!(first.expose(), second.expose());
    assert_eq!(metrics.counter(names::OBO_CACHE_HITS, &[]), 1);
    assert_eq!(metrics.counter(names::OBO_EXCHANGES, &[("outcome", "ok")]), 1);
    assert!(!format!("{first:?}").contains("graph-1"));
}

#[tokio::test]
async fn an_mfa_challenge_from_entra_is_surfaced_as_base64_claims() {
    let entra = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error":"interaction_required","error_codes":[50079],
            "claims":"{\"access_token\":{\"polids\":{\"essential\":true,\"values\":[\"9ab03e19\"]}}}"})))
        .mount(&entra)
        .await;
    let p = provider(&entra, Arc::new(Metrics::new()));
    let err = p
        .graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None)
        .await
        .expect_err("challenge");
    assert!(matches!(err, OboError::ClaimsChallenge { code: Some(50079), .. }));
    assert_eq!(
        err.claims_challenge().as_deref(),
        Some(
            "eyJhY2Nlc3NfdG9rZW4iOnsicG9saWRzIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWVzIjpbIjlhYjAzZTE5Il19fX0="
        )
    );
}
