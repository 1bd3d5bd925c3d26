//! Graph sessions through the public API: CAE challenges re-exchange once, then surface.

use std::sync::Arc;

use connector::{
    domain::ScopeSet,
    graph::{GraphClient, GraphError, GraphPath, GraphRequest, GraphSettings},
    metrics::Metrics,
    obo::OboError,
    tools::session::{Session, SessionError},
};
use url::Url;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_string_contains, header, method, path},
};

use crate::obo::{TID, caller, provider, token_response};

const CLAIMS: &str =
    "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcyNjI1ODEyMiJ9fX0=";

fn challenge() -> ResponseTemplate {
    ResponseTemplate::new(401)
        .insert_header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="", error_description="Continuous access evaluation resulted in challenge", error="insufficient_claims", claims="{CLAIMS}""#)
                .as_str(),
        )
        .set_body_json(serde_json::json!({"error":{"code":"InvalidAuthenticationToken","message":"Continuous access evaluation resulted in challenge"}}))
}

async fn session(entra: &MockServer, graph: &MockServer) -> Session {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::new());
    let settings = GraphSettings::new(Url::parse(&format!("{}/v1.0", graph.uri())).expect("url"));
    let http = connector::graph::http_client(&settings).expect("http");
    let client = GraphClient::new(settings, http, metrics.clone());
    Session::new(provider(entra, metrics), client, caller(), ScopeSet::from_scp("Mail.Read"))
}

async fn entra_with_two_tokens() -> MockServer {
    let entra = MockServer::start().await;
    // The re-exchange carries the challenge (nbf) next to cp1.
    Mock::given(method("POST"))
        .and(path(format!("/{TID}/oauth2/v2.0/token")))
        .and(body_string_contains("nbf"))
        .respond_with(token_response("fresh-token"))
        .expect(1)
        .mount(&entra)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{TID}/oauth2/v2.0/token")))
        .respond_with(token_response("revoked-token"))
        .expect(1)
        .mount(&entra)
        .await;
    entra
}

#[tokio::test]
async fn a_cae_challenge_evicts_and_re_exchanges_with_the_claims() {
    // Arrange
    let entra = entra_with_two_tokens().await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .and(header("authorization", "Bearer revoked-token"))
        .respond_with(challenge())
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .and(header("authorization", "Bearer fresh-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id":"me"})))
        .expect(1)
        .mount(&graph)
        .await;
    let s = session(&entra, &graph).await;
    // Act
    let me: connector::graph::GraphResponse<serde_json::Value> = s
        .get_json(&GraphRequest::get(GraphPath::fixed("/me")))
        .await
        .expect("second attempt succeeds");
    // Assert
    assert_eq!(me.body["id"], "me");
    // The user's token never reached Graph.
    for r in graph.received_requests().await.expect("recorded") {
        assert!(
            !r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .contains("sentinel")
        );
    }
}

#[tokio::test]
async fn a_second_challenge_is_surfaced_with_its_claims() {
    let entra = entra_with_two_tokens().await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(challenge())
        .expect(2)
        .mount(&graph)
        .await;
    let s = session(&entra, &graph).await;
    let err = s
        .get_json::<serde_json::Value>(&GraphRequest::get(GraphPath::fixed("/me")))
        .await
        .expect_err("challenge");
    assert!(
        matches!(&err, SessionError::Graph(f) if f.error == GraphError::ClaimsChallenge { claims: CLAIMS.into() }),
        "{err:?}"
    );
    assert_eq!(err.claims_challenge().as_deref(), Some(CLAIMS));
    insta::assert_snapshot!(err.user_message(), @"Your session must be renewed (for example after a password change or a policy change). Sign in again to continue.");
}

#[tokio::test]
async fn a_re_exchange_that_needs_interaction_is_surfaced_as_a_token_error() {
    let entra = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("nbf"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error":"interaction_required","error_codes":[50076],"claims":"{\"access_token\":{\"capolids\":{\"essential\":true}}}"})))
        .expect(1)
        .mount(&entra)
        .await;
    Mock::given(method("POST"))
        .respond_with(token_response("revoked-token"))
        .expect(1)
        .mount(&entra)
        .await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(challenge())
        .expect(1)
        .mount(&graph)
        .await;
    let s = session(&entra, &graph).await;
    let err = s
        .get_json::<serde_json::Value>(&GraphRequest::get(GraphPath::fixed("/me")))
        .await
        .expect_err("interaction");
    assert!(matches!(err, SessionError::Token(OboError::ClaimsChallenge { .. })), "{err:?}");
    assert!(err.claims_challenge().is_some());
}

#[tokio::test]
async fn a_plain_401_is_retried_once_after_a_fresh_exchange() {
    let entra = MockServer::start().await;
    Mock::given(method("POST")).respond_with(token_response("t")).expect(2).mount(&entra).await;
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&graph)
        .await;
    let s = session(&entra, &graph).await;
    let err = s
        .get_json::<serde_json::Value>(&GraphRequest::get(GraphPath::fixed("/me")))
        .await
        .expect_err("401");
    assert!(
        matches!(&err, SessionError::Graph(f) if f.error == GraphError::Unauthorized),
        "{err:?}"
    );
}
