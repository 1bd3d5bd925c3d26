//! OBO exchange tests against a wiremock token endpoint.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use base64::Engine as _;
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

use super::*;
use crate::domain::UserAssertion;

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "00000000-0000-0000-0000-0000000000a1";
const CLIENT_ID: Uuid = uuid::uuid!("c0ffee00-0000-0000-0000-000000000001");
/// TEST-ONLY key of fake-entra.
const TEST_KEY_PEM: &str = include_str!("../../../fake-entra/src/test_keys/key1.pem");

struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> (Clock, Self) {
        let offset = Arc::new(AtomicI64::new(0));
        let o = offset.clone();
        let start = Utc::now();
        (
            Clock::from_fn(move || start + chrono::Duration::seconds(o.load(Ordering::SeqCst))),
            Self(offset),
        )
    }
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn assertion_with_exp(exp: i64) -> String {
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.sig-user-assertion-sentinel",
        b64(r#"{"alg":"RS256"}"#),
        b64(&format!(r#"{{"exp":{exp}}}"#))
    )
}

fn caller_for(tid: &str, oid: &str) -> Caller {
    Caller {
        tenant_id: TenantId::parse(tid).expect("tid"),
        object_id: ObjectId::parse(oid).expect("oid"),
        client_id: Uuid::nil(),
        scopes: ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        // A fixed expiry: every `caller()` is the same sign-in (the cache is keyed by the
        // assertion), however long the test runs.
        assertion: UserAssertion::new(assertion_with_exp(CALLER_TOKEN_EXP)),
    }
}

/// 2100-01-01T00:00:00Z.
const CALLER_TOKEN_EXP: i64 = 4_102_444_800;

fn caller() -> Caller {
    caller_for(TID, OID)
}

/// Mounts the tenant's token endpoint on `server`, answering `response`, and expects `calls`
/// exchanges (checked when the server drops).
async fn token_endpoint(
    server: &MockServer,
    response: impl wiremock::Respond + 'static,
    calls: impl Into<wiremock::Times>,
) {
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(response)
        .expect(calls)
        .mount(server)
        .await;
}

fn settings(server: &MockServer, credential: ClientCredential) -> OboSettings {
    OboSettings::new(Url::parse(&server.uri()).expect("url"), CLIENT_ID, credential)
}

fn secret() -> ClientCredential {
    ClientCredential::Secret(SecretString::from("test-only-client-secret".to_owned()))
}

fn provider(s: OboSettings, clock: Clock) -> TokenProvider {
    TokenProvider::new(s, http(), clock, Arc::new(Metrics::new()))
}

fn token_path(tid: &str) -> String {
    format!("/{tid}/oauth2/v2.0/token")
}

fn ok_body(token: &str, expires_in: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "token_type": "Bearer",
        "scope": "https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    }))
}

fn form(req: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&req.body).into_owned().collect()
}

fn scopes() -> ScopeSet {
    ScopeSet::from_scp("Mail.Read User.Read")
}

#[tokio::test]
async fn the_request_carries_the_assertion_explicit_scopes_cp1_and_the_secret() {
    // Arrange
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("graph-token-1", 3600), 1).await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let caller = caller();
    // Act
    let token = p.graph_token(&caller, &scopes(), None).await.expect("token");
    // Assert
    assert_eq!(token.expose(), "graph-token-1");
    assert_eq!(token.scopes, scopes());
    let reqs = server.received_requests().await.expect("recorded");
    let f = form(&reqs[0]);
    assert_eq!(f["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(f["requested_token_use"], "on_behalf_of");
    assert_eq!(f["assertion"], caller.assertion.expose());
    assert_eq!(f["client_id"], CLIENT_ID.to_string());
    assert_eq!(f["client_secret"], "test-only-client-secret");
    assert_eq!(
        f["scope"],
        "https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/User.Read"
    );
    assert!(!f["scope"].contains(".default"));
    let claims: serde_json::Value = serde_json::from_str(&f["claims"]).expect("claims json");
    assert_eq!(claims, serde_json::json!({"access_token":{"xms_cc":{"values":["cp1"]}}}));
    assert!(reqs[0].headers.get("client-request-id").is_some());
    // The user's token appears only as the assertion.
    let occurrences = reqs[0]
        .body
        .windows(20)
        .filter(|w| *w == &caller.assertion.expose().as_bytes()[..20])
        .count();
    assert_eq!(occurrences, 1);
}

#[tokio::test]
async fn a_certificate_credential_sends_a_verifiable_client_assertion() {
    use rsa::{pkcs8::DecodePrivateKey, traits::PublicKeyParts};
    // Arrange
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), ..).await;
    let credential = ClientCredential::Certificate {
        private_key_pem: SecretString::from(TEST_KEY_PEM.to_owned()),
        x5t: "thumbprint-b64url".into(),
    };
    let (clock, _) = TestClock::new();
    let s = settings(&server, credential);
    let endpoint = s.token_endpoint(TenantId::parse(TID).expect("tid"));
    let p = provider(s, clock);
    // Act
    p.graph_token(&caller(), &scopes(), None).await.expect("token");
    // Assert
    let reqs = server.received_requests().await.expect("recorded");
    let f = form(&reqs[0]);
    assert!(!f.contains_key("client_secret"));
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let key = rsa::PrivateKey::from_pkcs8_pem(TEST_KEY_PEM).expect("test key");
    let public = jsonwebtoken::DecodingKey::from_rsa_raw_components(&key.n_bytes(), &key.e_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[endpoint.as_str()]);
    validation.set_issuer(&[CLIENT_ID.to_string()]);
    let decoded =
        jsonwebtoken::decode::<serde_json::Value>(&f["client_assertion"], &public, &validation)
            .expect("assertion verifies with the public key");
    assert_eq!(decoded.header.x5t.as_deref(), Some("thumbprint-b64url"));
    assert_eq!(decoded.claims["sub"], CLIENT_ID.to_string());
    assert!(decoded.claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let lifetime = decoded.claims["exp"].as_i64().zip(decoded.claims["iat"].as_i64());
    assert_eq!(lifetime.map(|(exp, iat)| exp - iat), Some(600));
}

#[tokio::test]
async fn one_hundred_concurrent_callers_share_exactly_one_exchange() {
    // Arrange
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("shared", 3600).set_delay(Duration::from_millis(200)), 1).await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    // Act
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.graph_token(&caller(), &scopes(), None).await })
        })
        .collect();
    // Assert
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("token").expose(), "shared");
    }
    // Mock asserts on drop
}

#[tokio::test]
async fn a_token_stored_between_the_miss_and_the_won_lock_is_used_not_exchanged_again() {
    // Arrange: one exchange stores the token; then the reads miss until the lock is won.
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("stored-by-the-holder", 3600), 1).await;
    let (clock, _) = TestClock::new();
    let store = Arc::new(SharedStore::default());
    let p = provider(settings(&server, secret()), clock).with_cache(store.clone());
    p.graph_token(&caller(), &scopes(), None).await.expect("first exchange");
    // The next call's lookups miss (the holder stored its token just after them), until this
    // instance wins the claim (`Held`).
    store.hidden_until_claim.store(true, Ordering::SeqCst);
    // Act
    let token = p.graph_token(&caller(), &scopes(), None).await.expect("token");
    // Assert: the stored token, and the mock's expect(1) on drop: no second exchange.
    assert_eq!(token.expose(), "stored-by-the-holder");
}

#[tokio::test]
async fn failed_exchanges_are_shared_by_waiters_and_not_cached() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({"error":"invalid_grant","error_codes":[50105]}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(2)
        .mount(&server)
        .await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.graph_token(&caller(), &scopes(), None).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").err(), Some(OboError::NotAssigned));
    }
    // Not cached: the next call asks Entra again.
    assert_eq!(p.graph_token(&caller(), &scopes(), None).await.err(), Some(OboError::NotAssigned));
}

#[tokio::test]
async fn max_reuse_zero_exchanges_on_every_call() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), 3).await;
    let (clock, _) = TestClock::new();
    let mut s = settings(&server, secret());
    s.max_reuse = Duration::ZERO;
    let p = provider(s, clock);
    for _ in 0..3 {
        p.graph_token(&caller(), &scopes(), None).await.expect("token");
    }
}

#[tokio::test]
async fn tokens_are_renewed_before_expiry_and_after_the_maximum_reuse_age() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 600), 2).await;
    let (clock, time) = TestClock::new();
    let mut s = settings(&server, secret());
    s.max_reuse = Duration::from_secs(3600);
    s.renew_before = Duration::from_secs(300);
    let p = provider(s, clock);
    let c = caller();
    p.graph_token(&c, &scopes(), None).await.expect("first exchange");
    time.advance(290);
    p.graph_token(&c, &scopes(), None).await.expect("cached");
    time.advance(11); // 301 s: inside the 5-minute renewal window of a 600 s token
    p.graph_token(&c, &scopes(), None).await.expect("renewed");

    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 86_400), 2).await;
    let (clock, time) = TestClock::new();
    let mut s = settings(&server, secret());
    s.max_reuse = Duration::from_secs(60);
    let p = provider(s, clock);
    p.graph_token(&c, &scopes(), None).await.expect("first exchange");
    time.advance(59);
    p.graph_token(&c, &scopes(), None).await.expect("cached");
    time.advance(2);
    p.graph_token(&c, &scopes(), None).await.expect("older than max_reuse: exchanged again");
}

#[tokio::test]
async fn cache_entries_are_separate_per_tenant_user_and_scope_set_and_can_be_evicted() {
    const OTHER_TID: &str = "11111111-2222-3333-4444-555555555555";
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), 4).await;
    Mock::given(method("POST"))
        .and(path(token_path(OTHER_TID)))
        .respond_with(ok_body("t", 3600))
        .expect(2)
        .mount(&server)
        .await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let a = caller();
    let b = caller_for(TID, "00000000-0000-0000-0000-0000000000b2");
    let other = caller_for(OTHER_TID, OID);
    for c in [&a, &b, &other, &a, &b, &other] {
        p.graph_token(c, &scopes(), None).await.expect("token");
    }
    p.graph_token(&a, &ScopeSet::from_scp("Files.Read"), None).await.expect("other scopes");
    p.evict(&a, &scopes());
    p.graph_token(&a, &scopes(), None).await.expect("after evict");
    p.purge_tenant(other.tenant_id);
    p.graph_token(&other, &scopes(), None).await.expect("after purge");
    p.graph_token(&b, &scopes(), None).await.expect("b still cached");
}

#[tokio::test]
async fn a_cached_token_serves_only_the_sign_in_that_obtained_it() {
    // Sign-in A and sign-in B of the same user: Entra evaluates Conditional Access for each
    // at the OBO step, so B must not ride on A's Graph token; each sign-in still makes one
    // exchange however many calls it serves, and concurrent first calls of one sign-in share it.
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600).set_delay(std::time::Duration::from_millis(50)), 2)
        .await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let sign_in_a = caller();
    let sign_in_b = Caller {
        assertion: UserAssertion::new(assertion_with_exp(Utc::now().timestamp() + 7_200)),
        ..caller()
    };
    assert_ne!(sign_in_a.assertion.expose(), sign_in_b.assertion.expose());
    let wanted = scopes();
    let calls =
        [&sign_in_a, &sign_in_b, &sign_in_a, &sign_in_b].map(|c| p.graph_token(c, &wanted, None));
    for token in futures::future::join_all(calls).await {
        token.expect("token");
    }
    for c in [&sign_in_a, &sign_in_b] {
        p.graph_token(c, &scopes(), None).await.expect("cached");
    }
    let reqs = server.received_requests().await.expect("recorded");
    let mut assertions: Vec<String> = reqs.iter().map(|r| form(r)["assertion"].clone()).collect();
    assertions.sort();
    let mut expected =
        vec![sign_in_a.assertion.expose().to_owned(), sign_in_b.assertion.expose().to_owned()];
    expected.sort();
    assert_eq!(assertions, expected, "one exchange per sign-in, each with its own assertion");
}

/// A store that keeps every blob, to look at what is at rest.
#[derive(Default)]
struct Recording(Mutex<HashMap<TokenCacheKey, Vec<u8>>>);

impl TokenCache for Recording {
    fn get<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { self.0.lock().expect("lock").get(key).cloned() })
    }
    fn put<'a>(
        &'a self,
        key: &'a TokenCacheKey,
        blob: Vec<u8>,
        _ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0.lock().expect("lock").insert(key.clone(), blob);
        })
    }
    fn remove(&self, key: &TokenCacheKey) {
        self.0.lock().expect("lock").remove(key);
    }
    fn purge_tenant(&self, tenant: TenantId) {
        self.0.lock().expect("lock").retain(|k, _| k.tenant != tenant);
    }
}

#[tokio::test]
async fn the_store_holds_no_plaintext_token_and_a_swapped_blob_is_a_miss() {
    let server = MockServer::start().await;
    let token = "eyJ0eXAiOiJKV1QiLCJub25jZSI6InNlbnRpbmVsLWdyYXBoLXRva2VuIn0.payload.sig";
    token_endpoint(&server, ok_body(token, 3600), 3).await;
    let (clock, _) = TestClock::new();
    let store = Arc::new(Recording::default());
    let p = provider(settings(&server, secret()), clock).with_cache(store.clone());
    let (a, b) = (caller(), caller_for(TID, "00000000-0000-0000-0000-0000000000b2"));
    p.graph_token(&a, &scopes(), None).await.expect("token");
    p.graph_token(&b, &scopes(), None).await.expect("token");
    {
        let blobs = store.0.lock().expect("lock");
        for blob in blobs.values() {
            assert!(!blob.windows(16).any(|w| token.as_bytes().windows(16).any(|t| t == w)));
            assert!(!blob.windows(3).any(|w| w == b"eyJ"));
        }
    }
    // Move a's blob under b's key: it must not open, so b exchanges again.
    let key = |c: &Caller| TokenCacheKey::for_caller(c, scopes());
    let blob_a = store.0.lock().expect("lock")[&key(&a)].clone();
    store.0.lock().expect("lock").insert(key(&b), blob_a);
    p.graph_token(&b, &scopes(), None).await.expect("exchanged again");
}

#[tokio::test]
async fn challenge_claims_are_merged_with_cp1_and_force_an_exchange() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), 2).await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    p.graph_token(&caller(), &scopes(), None).await.expect("token");
    let challenge =
        "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcyNjI1ODEyMiJ9fX0";
    p.graph_token(&caller(), &scopes(), Some(challenge)).await.expect("token");
    let reqs = server.received_requests().await.expect("recorded");
    let claims: serde_json::Value = serde_json::from_str(&form(&reqs[1])["claims"]).expect("json");
    assert_eq!(
        claims,
        serde_json::json!({"access_token":{"xms_cc":{"values":["cp1"]},"nbf":{"essential":true,"value":"1726258122"}}})
    );
}

#[tokio::test]
async fn entra_errors_reach_the_caller_mapped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error":"invalid_grant","error_codes":[65001],"suberror":"consent_required",
            "error_description":"AADSTS65001: The user or administrator has not consented"})))
        .mount(&server)
        .await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let err = p.graph_token(&caller(), &scopes(), None).await.expect_err("consent");
    let OboError::ConsentRequired { consent_url, .. } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(consent_url, &format!("{}/{TID}/adminconsent?client_id={CLIENT_ID}", server.uri()));
    assert!(!err.user_message().contains("AADSTS65001: The user"));

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "60")
                .set_body_json(serde_json::json!({"error":"Server overload"})),
        )
        .mount(&server)
        .await;
    let (clock, _) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let err = p.graph_token(&caller(), &scopes(), None).await.expect_err("throttled");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn after_entra_throttles_a_user_it_is_not_asked_again_until_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .set_body_json(serde_json::json!({"error":"Server overload"})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint(&server, ok_body("after the cool-down", 3600), 2).await;
    let (clock, time) = TestClock::new();
    let p = provider(settings(&server, secret()), clock);
    let (joni, other) = (caller(), caller_for(TID, "00000000-0000-0000-0000-0000000000b2"));
    p.graph_token(&joni, &scopes(), None).await.expect_err("throttled");
    time.advance(10);
    // Within Retry-After: answered locally, with the time left.
    let err = p.graph_token(&joni, &scopes(), None).await.expect_err("cooling down");
    assert!(matches!(err, OboError::Throttled { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
    // Other users are not held back; after Retry-After the user's exchange goes to Entra.
    p.graph_token(&other, &scopes(), None).await.expect("another user");
    time.advance(21);
    p.graph_token(&joni, &scopes(), None).await.expect("after Retry-After");
}

#[tokio::test]
async fn an_unreachable_entra_is_reported_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let s = OboSettings::new(
        Url::parse(&format!("http://127.0.0.1:{port}")).expect("url"),
        CLIENT_ID,
        secret(),
    );
    let (clock, _) = TestClock::new();
    let p = provider(s, clock);
    assert_eq!(p.graph_token(&caller(), &scopes(), None).await.err(), Some(OboError::Unreachable));
}

#[tokio::test]
async fn the_observer_sees_exchanges_cache_hits_and_failures_without_tokens() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), ..).await;
    let (clock, _) = TestClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let p = provider(settings(&server, secret()), clock)
        .with_observer(Arc::new(move |e: &OboEvent| sink.lock().expect("lock").push(e.clone())));
    p.graph_token(&caller(), &scopes(), None).await.expect("token");
    p.graph_token(&caller(), &scopes(), None).await.expect("token");
    let _ = p.graph_token(&caller(), &ScopeSet::from_scp(".default"), None).await;
    let events = events.lock().expect("lock");
    assert_eq!(events.len(), 3);
    assert!(!events[0].from_cache && events[0].error_code.is_none());
    assert!(events[1].from_cache);
    assert_eq!(events[2].error_code.as_deref(), Some("internal"));
    assert!(!format!("{events:?}").contains("sentinel"));
}

#[test]
fn token_endpoint_and_consent_url_follow_the_authority() {
    let s = OboSettings::new(
        Url::parse("https://login.microsoftonline.com/").expect("url"),
        CLIENT_ID,
        secret(),
    );
    let t = TenantId::parse(TID).expect("tid");
    assert_eq!(
        s.token_endpoint(t),
        format!("https://login.microsoftonline.com/{TID}/oauth2/v2.0/token")
    );
    assert_eq!(
        s.admin_consent_url(t),
        format!("https://login.microsoftonline.com/{TID}/adminconsent?client_id={CLIENT_ID}")
    );
    assert!(!format!("{s:?}").contains("test-only-client-secret"));
}

/// A token endpoint that grants any request without `Chat.Read` and refuses the others for
/// consent, recording each request's scopes.
async fn partly_consented(server: &MockServer) {
    let consent = ResponseTemplate::new(400).set_body_json(serde_json::json!({
        "error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"}));
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .and(wiremock::matchers::body_string_contains("Chat.Read"))
        .respond_with(consent)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(|req: &Request| {
            let scope = form(req).get("scope").cloned().unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer", "scope": scope, "expires_in": 3600,
                "access_token": format!("token-for-{}", scope.len())}))
        })
        .mount(server)
        .await;
}

async fn requested(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.iter().map(|r| form(r).get("scope").cloned().unwrap_or_default()).collect()
}

#[tokio::test]
async fn scopes_inside_the_union_are_served_by_one_union_token_and_evicted_with_it() {
    // Arrange
    let server = MockServer::start().await;
    partly_consented(&server).await;
    let (clock, _t) = TestClock::new();
    let p = provider(settings(&server, secret()), clock)
        .with_union(ScopeSet::from_scp("Mail.Read User.Read Files.Read.All"));
    // Act
    let mail = p.graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None).await;
    let user = p.graph_token(&caller(), &ScopeSet::from_scp("user.read"), None).await;
    let outside = p.graph_token(&caller(), &ScopeSet::from_scp("Calendars.Read"), None).await;
    p.evict(&caller(), &ScopeSet::from_scp("Mail.Read"));
    let again = p.graph_token(&caller(), &ScopeSet::from_scp("Files.Read.All"), None).await;
    // Assert
    assert_eq!(mail.expect("mail").expose(), user.expect("user").expose());
    assert!(outside.is_ok() && again.is_ok());
    let seen = requested(&server).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].contains("Files.Read.All") && seen[0].contains("Mail.Read"), "{seen:?}");
    assert_eq!(seen[1], "https://graph.microsoft.com/Calendars.Read");
    assert_eq!(seen[2], seen[0], "the evicted union is exchanged again");
}

#[tokio::test]
async fn a_refused_union_falls_back_per_scope_set_and_is_retried_after_the_reuse_window() {
    // Arrange
    let server = MockServer::start().await;
    partly_consented(&server).await;
    let (clock, t) = TestClock::new();
    let union = ScopeSet::from_scp("Mail.Read User.Read Chat.Read");
    let p = provider(settings(&server, secret()), clock).with_union(union.clone());
    let mail = ScopeSet::from_scp("Mail.Read");
    // Act
    let first = p.graph_token(&caller(), &mail, None).await;
    let chat = p.graph_token(&caller(), &ScopeSet::from_scp("Chat.Read"), None).await;
    let whole = p.graph_token(&caller(), &union, None).await;
    let cached = p.graph_token(&caller(), &mail, None).await;
    let within = requested(&server).await.len();
    t.advance(301);
    let later = p.graph_token(&caller(), &mail, None).await;
    // Assert
    assert!(first.is_ok() && cached.is_ok() && later.is_ok());
    assert!(matches!(chat, Err(OboError::ConsentRequired { .. })), "{chat:?}");
    // The whole union is answered with the remembered refusal, without asking again.
    assert!(matches!(whole, Err(OboError::ConsentRequired { .. })), "{whole:?}");
    let seen = requested(&server).await;
    // union (refused), Mail.Read, Chat.Read (refused); then, after the window: the union
    // (refused again) and Mail.Read anew (its token also aged out).
    assert_eq!(within, 3, "{seen:?}");
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[3], seen[0]);
}

/// A call served in two steps, where the union was exchanged (partly granted) and the
/// request's own scopes came from the cache, ran an exchange: its event must say so (the
/// audit record would otherwise read `cache_hit` and the exchange would have no record).
#[tokio::test]
async fn a_call_whose_union_step_exchanged_is_not_reported_as_a_cache_hit() {
    // Arrange: the union is granted without Chat.Read; Chat.Read alone is granted.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .respond_with(|req: &Request| {
            let asked = form(req).get("scope").cloned().unwrap_or_default();
            let granted: Vec<&str> = if asked.split(' ').count() > 1 {
                asked.split(' ').filter(|s| !s.ends_with("/Chat.Read")).collect()
            } else {
                asked.split(' ').collect()
            };
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({
                    "token_type": "Bearer", "scope": granted.join(" "), "expires_in": 3600,
                    "access_token": format!("token-for-{}", asked.len())}))
                .set_delay(Duration::from_millis(50))
        })
        .mount(&server)
        .await;
    let (clock, t) = TestClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let p = provider(settings(&server, secret()), clock)
        .with_union(ScopeSet::from_scp("Mail.Read User.Read Chat.Read"))
        .with_observer(Arc::new(move |e: &OboEvent| sink.lock().expect("lock").push(e.clone())));
    let chat = ScopeSet::from_scp("Chat.Read");
    // Act: the union at 0 s, Chat.Read on its own at 100 s; at 301 s the union has aged out
    // but the Chat.Read token has not.
    p.graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None).await.expect("mail");
    t.advance(100);
    p.graph_token(&caller(), &chat, None).await.expect("chat");
    t.advance(201);
    // Two calls at once: one exchanges the union, the other waits for that exchange
    // (coalesced); both take Chat.Read from the cache.
    let joni = caller();
    let (again, coalesced) =
        tokio::join!(p.graph_token(&joni, &chat, None), p.graph_token(&joni, &chat, None));
    again.expect("chat again");
    coalesced.expect("chat again, coalesced");
    p.graph_token(&caller(), &chat, None).await.expect("chat from the cache");
    // Assert
    let seen = requested(&server).await;
    assert_eq!(seen.len(), 3, "union, Chat.Read, union again: {seen:?}");
    let events = events.lock().expect("lock");
    let mut flags: Vec<(bool, bool)> = events.iter().map(|e| (e.from_cache, e.coalesced)).collect();
    flags[2..4].sort_unstable();
    let expected = [(false, false), (false, false), (false, false), (false, true), (true, false)];
    assert_eq!(flags, expected);
}

// ---- the shared store's claim and union refusals, the scope rules, reading Entra's answer ----

/// A shared store as one instance sees it: blobs in memory (the next `hidden_reads` reads
/// miss, as when another instance stores while this one waits; with `hidden_until_claim`,
/// every read misses until the next claim, as when the lock's last holder stored its token
/// just after this instance looked), the claim it answers, and the union refusals instances
/// shared through it.
#[derive(Default)]
struct SharedStore {
    store: MokaTokenCache,
    hidden_reads: std::sync::atomic::AtomicUsize,
    hidden_until_claim: std::sync::atomic::AtomicBool,
    busy_for: Mutex<Option<Duration>>,
    /// The time to live of every `put`, in order.
    ttls: Mutex<Vec<Duration>>,
    refusals: Mutex<HashMap<ObjectId, (String, Duration)>>,
}

impl TokenCache for SharedStore {
    fn get<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>> {
        let hidden = self.hidden_until_claim.load(Ordering::SeqCst)
            || self
                .hidden_reads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        Box::pin(async move { if hidden { None } else { self.store.get(key).await } })
    }
    fn put<'a>(
        &'a self,
        key: &'a TokenCacheKey,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        self.ttls.lock().unwrap().push(ttl);
        self.store.put(key, blob, ttl)
    }
    fn remove(&self, key: &TokenCacheKey) {
        self.store.remove(key);
    }
    fn purge_tenant(&self, tenant: TenantId) {
        self.store.purge_tenant(tenant);
    }
    fn claim_exchange<'a>(&'a self, _key: &'a TokenCacheKey) -> BoxFuture<'a, ExchangeClaim> {
        self.hidden_until_claim.store(false, Ordering::SeqCst);
        let busy = *self.busy_for.lock().unwrap();
        Box::pin(
            async move { busy.map_or(ExchangeClaim::Held("lock".into()), ExchangeClaim::Busy) },
        )
    }
    fn share_union_refusal<'a>(
        &'a self,
        union_key: &'a TokenCacheKey,
        refusal: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        self.refusals.lock().unwrap().insert(union_key.user, (refusal.to_owned(), ttl));
        Box::pin(async {})
    }
    fn shared_union_refusal<'a>(
        &'a self,
        union_key: &'a TokenCacheKey,
    ) -> BoxFuture<'a, Option<(String, Duration)>> {
        let shared = self.refusals.lock().unwrap().get(&union_key.user).cloned();
        Box::pin(async move { shared })
    }
}

#[tokio::test]
async fn a_claimed_exchange_is_awaited_from_the_holder_and_done_here_when_none_comes() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("exchanged", 3600), 2).await;
    let (clock, _) = TestClock::new();
    let store = Arc::new(SharedStore::default());
    let p = provider(settings(&server, secret()), clock).with_cache(store.clone());
    p.graph_token(&caller(), &scopes(), None).await.expect("first exchange");
    // Another instance holds the claim; its token lands while this one waits (the call's own
    // two reads miss, the first poll finds it): no second exchange, no waiting out the claim.
    *store.busy_for.lock().unwrap() = Some(Duration::from_secs(30));
    store.hidden_reads.store(2, Ordering::SeqCst);
    let waited = std::time::Instant::now();
    p.graph_token(&caller(), &scopes(), None).await.expect("the holder's token");
    assert!(waited.elapsed() < Duration::from_secs(10));
    // The holder never stores: after the claim's wait this instance exchanges itself.
    *store.busy_for.lock().unwrap() = Some(Duration::from_millis(100));
    store.hidden_reads.store(usize::MAX, Ordering::SeqCst);
    assert_eq!(
        p.graph_token(&caller(), &scopes(), None).await.expect("token").expose(),
        "exchanged"
    );
}

/// A token endpoint that refuses every request holding `Chat.Read` with `refusal` and grants
/// the others.
async fn refusing_chat(server: &MockServer, refusal: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .and(wiremock::matchers::body_string_contains("Chat.Read"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refusal))
        .with_priority(1)
        .mount(server)
        .await;
    token_endpoint(server, ok_body("granted", 3600), ..).await;
}

fn chat_union() -> ScopeSet {
    ScopeSet::from_scp("Mail.Read User.Read Chat.Read")
}

/// Two instances sharing `store`, with the union that holds `Chat.Read`.
fn instances(server: &MockServer, store: &Arc<SharedStore>) -> (TokenProvider, TokenProvider) {
    let instance = || {
        provider(settings(server, secret()), TestClock::new().0)
            .with_cache(store.clone())
            .with_union(chat_union())
    };
    (instance(), instance())
}

#[tokio::test]
async fn a_refusal_of_the_union_scopes_is_shared_and_other_refusals_are_not() {
    let consent = serde_json::json!({
        "error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"});
    let invalid_scope = serde_json::json!({"error": "invalid_scope", "error_codes": [70011]});
    for (refusal, code) in [(consent, "consent:65001"), (invalid_scope, "misconfigured:70011")] {
        let server = MockServer::start().await;
        refusing_chat(&server, refusal).await;
        let store = Arc::new(SharedStore::default());
        let (a, b) = instances(&server, &store);
        let refused = a.graph_token(&caller(), &chat_union(), None).await.expect_err("refused");
        let shared = store.refusals.lock().unwrap().get(&caller().object_id).cloned();
        assert_eq!(shared, Some((code.to_owned(), Duration::from_secs(300))));
        // The other instance answers the union as Entra did, without asking, and serves a
        // request inside it on its own.
        assert_eq!(b.graph_token(&caller(), &chat_union(), None).await.err(), Some(refused));
        b.graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None).await.expect("mail");
        let seen = requested(&server).await;
        assert_eq!(seen, [seen[0].clone(), "https://graph.microsoft.com/Mail.Read".to_owned()]);
    }
    // A refusal that is not about the scopes is neither remembered nor shared.
    let server = MockServer::start().await;
    refusing_chat(&server, serde_json::json!({"error": "temporarily_broken"})).await;
    let store = Arc::new(SharedStore::default());
    let (a, _) = instances(&server, &store);
    for _ in 0..2 {
        let refused = a.graph_token(&caller(), &chat_union(), None).await.err();
        assert!(matches!(refused, Some(OboError::Rejected { .. })), "{refused:?}");
    }
    assert_eq!(requested(&server).await.len(), 2);
    assert!(store.refusals.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_shared_refusal_code_stands_for_the_refusal_another_instance_met() {
    let server = MockServer::start().await;
    refusing_chat(&server, serde_json::json!({"error": "invalid_scope"})).await;
    let invalid_scope = "invalid_scope".to_owned();
    let cases = [
        (
            "rejected:70011",
            Some(OboError::Rejected { error: invalid_scope.clone(), code: Some(70011) }),
        ),
        ("misconfigured:", Some(OboError::Misconfigured { error: invalid_scope, code: None })),
        ("consent:", None),
        ("consent:x", None),
        ("unknown:1", None),
    ];
    for (code, remembered) in cases {
        let store = Arc::new(SharedStore::default());
        store
            .refusals
            .lock()
            .unwrap()
            .insert(caller().object_id, (code.to_owned(), Duration::from_secs(60)));
        let (p, _) = instances(&server, &store);
        let before = requested(&server).await.len();
        let answer = p.graph_token(&caller(), &chat_union(), None).await.err();
        let asked = requested(&server).await.len() > before;
        match remembered {
            Some(error) => assert_eq!((answer, asked), (Some(error), false), "{code}"),
            // An unreadable code: the union is simply asked for.
            None => assert!(asked, "{code}"),
        }
    }
}

#[test]
fn only_explicit_delegated_scope_names_are_requested() {
    let check = |scopes: &[&str]| check_scopes(&scopes.iter().copied().collect());
    assert_eq!(check(&["Mail.Read", "Files.Read.All", "Sites_Read-2"]), Ok(()));
    let refused = Err(OboError::Internal("invalid scope request"));
    assert_eq!(check(&[]), refused);
    for bad in [
        "",
        ".DEFAULT",
        "Offline_Access",
        "https://graph.microsoft.com/Mail.Read",
        "Mail$Read",
        "Maïl.Read",
    ] {
        assert_eq!(check(&["Mail.Read", bad]), refused, "{bad:?}");
    }
    // A union with a scope that may not be requested is no union.
    let (clock, _) = TestClock::new();
    let base = || {
        TokenProvider::new(
            OboSettings::new(Url::parse("https://login.example").unwrap(), CLIENT_ID, secret()),
            http(),
            clock.clone(),
            Arc::new(Metrics::new()),
        )
    };
    assert_eq!(base().with_union(scopes()).union(), Some(&scopes()));
    assert_eq!(base().with_union(ScopeSet::from_scp("Mail.Read .default")).union(), None);
    assert_eq!(base().with_union(ScopeSet::default()).union(), None);
}

/// One exchange answered with `body`.
async fn answered_with(body: ResponseTemplate) -> Result<GraphToken, OboError> {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path(token_path(TID))).respond_with(body).mount(&server).await;
    let (clock, _) = TestClock::new();
    provider(settings(&server, secret()), clock).graph_token(&caller(), &scopes(), None).await
}

#[tokio::test]
async fn granted_scopes_are_read_with_or_without_the_resource_prefix() {
    let granted = "https://graph.microsoft.com/Mail.Read  User.Read HTTPS://GRAPH.MICROSOFT.COM/Files.Read https://graph.microsoft.com/";
    let body = serde_json::json!({"access_token": "t", "expires_in": 3600, "scope": granted});
    let token = answered_with(ResponseTemplate::new(200).set_body_json(body)).await.expect("token");
    assert_eq!(
        token.scopes,
        ScopeSet::from_scp("Mail.Read User.Read Files.Read https://graph.microsoft.com/")
    );
}

#[tokio::test]
async fn a_token_response_up_to_256_kib_is_read_and_a_larger_one_refused() {
    const CAP: usize = 256 * 1024;
    let sized = |len: usize| {
        let head = r#"{"access_token":"t","expires_in":3600,"pad":""#;
        let body = format!("{head}{}\"}}", "x".repeat(len - head.len() - 2));
        assert_eq!(body.len(), len);
        ResponseTemplate::new(200).set_body_raw(body, "application/json")
    };
    assert_eq!(answered_with(sized(CAP)).await.expect("at the cap").expose(), "t");
    assert_eq!(
        answered_with(sized(CAP + 1)).await.err(),
        Some(OboError::Internal("oversized token response"))
    );
}

/// The token requests Entra has seen after each call: the first, one after purging another
/// tenant, one after purging the caller's tenant.
async fn requests_around_purges(
    server: &MockServer,
    p: &TokenProvider,
    asked: &ScopeSet,
) -> Vec<usize> {
    let another = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
    let mut seen = vec![];
    for purged in [None, Some(another), Some(caller().tenant_id)] {
        if let Some(tenant) = purged {
            p.purge_tenant(tenant);
        }
        let _ = p.graph_token(&caller(), asked, None).await;
        seen.push(requested(server).await.len());
    }
    seen
}

#[tokio::test]
async fn purging_a_tenant_forgets_its_users_union_refusals_and_cool_downs() {
    let consent = serde_json::json!({
        "error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"});
    let server = MockServer::start().await;
    refusing_chat(&server, consent).await;
    let p = provider(settings(&server, secret()), TestClock::new().0).with_union(chat_union());
    assert_eq!(requests_around_purges(&server, &p, &chat_union()).await, [1, 1, 2]);

    let server = MockServer::start().await;
    let throttled = ResponseTemplate::new(429).insert_header("Retry-After", "60");
    token_endpoint(&server, throttled, ..).await;
    let p = provider(settings(&server, secret()), TestClock::new().0);
    assert_eq!(requests_around_purges(&server, &p, &scopes()).await, [1, 1, 2]);
}

#[test]
fn debug_output_names_scopes_expiry_and_authority_but_never_a_token() {
    let expires_at = DateTime::from_timestamp(CALLER_TOKEN_EXP, 0).expect("time");
    let token =
        GraphToken::new(SecretString::from("graph-sentinel".to_owned()), scopes(), expires_at);
    let shown = format!("{token:?}");
    assert!(shown.contains("[redacted]") && shown.contains("Mail.Read"), "{shown}");
    assert!(shown.contains("2100-01-01") && !shown.contains("graph-sentinel"), "{shown}");
    assert_eq!(token.into_access_token().expose_secret(), "graph-sentinel");
    let authority = Url::parse("https://login.example/").expect("url");
    let p = provider(OboSettings::new(authority, CLIENT_ID, secret()), TestClock::new().0);
    assert!(format!("{p:?}").contains("https://login.example/"), "{p:?}");
}

#[tokio::test(start_paused = true)]
async fn a_claimed_exchange_is_waited_for_no_longer_than_the_claim_says() {
    // Entra unreachable (a closed local port): only the waiting is observed, by the store's
    // reads: the call's own two, then one poll every 20 ms of the 40 ms claim.
    let authority = Url::parse("http://127.0.0.1:9/").expect("url");
    let store = Arc::new(SharedStore::default());
    *store.busy_for.lock().unwrap() = Some(Duration::from_millis(40));
    store.hidden_reads.store(usize::MAX, Ordering::SeqCst);
    let p = provider(OboSettings::new(authority, CLIENT_ID, secret()), TestClock::new().0)
        .with_cache(store.clone());
    let answer = p.graph_token(&caller(), &scopes(), None).await;
    assert_eq!(answer.err(), Some(OboError::Unreachable));
    assert_eq!(usize::MAX - store.hidden_reads.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_cache_entry_lives_no_longer_than_the_reuse_age_or_the_inbound_token() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), 3).await;
    let (clock, time) = TestClock::new();
    let store = Arc::new(SharedStore::default());
    let p = provider(settings(&server, secret()), clock.clone()).with_cache(store.clone());
    let short_lived = Caller {
        assertion: UserAssertion::new(assertion_with_exp(clock.unix_seconds() + 100)),
        ..caller()
    };
    p.graph_token(&caller(), &scopes(), None).await.expect("token");
    p.graph_token(&short_lived, &scopes(), None).await.expect("token");
    let secs = |s| Duration::from_secs(s);
    assert_eq!(*store.ttls.lock().unwrap(), [secs(300), secs(100)]);
    // The short-lived sign-in's token is reused until its inbound token expires, not after.
    time.advance(99);
    p.graph_token(&short_lived, &scopes(), None).await.expect("cached");
    time.advance(1);
    p.graph_token(&short_lived, &scopes(), None).await.expect("exchanged again");
}

#[tokio::test]
async fn without_token_reuse_a_request_inside_the_union_asks_for_its_own_scopes() {
    let server = MockServer::start().await;
    token_endpoint(&server, ok_body("t", 3600), ..).await;
    let mut s = settings(&server, secret());
    s.max_reuse = Duration::ZERO;
    let p = provider(s, TestClock::new().0).with_union(chat_union());
    p.graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None).await.expect("token");
    assert_eq!(requested(&server).await, ["https://graph.microsoft.com/Mail.Read"]);
}

#[tokio::test]
async fn a_union_refusal_is_remembered_for_exactly_the_reuse_age() {
    let server = MockServer::start().await;
    refusing_chat(&server, serde_json::json!({"error": "invalid_scope"})).await;
    let (clock, time) = TestClock::new();
    let p = provider(settings(&server, secret()), clock).with_union(chat_union());
    let mut seen = vec![];
    for wait in [0, 299, 1] {
        time.advance(wait);
        p.graph_token(&caller(), &chat_union(), None).await.expect_err("refused");
        seen.push(requested(&server).await.len());
    }
    assert_eq!(seen, [1, 1, 2]);
}

/// A call whose union step exchanged and whose own step joined another call's exchange ran an
/// exchange: its event must say so, not `coalesced`; one that ran none says `coalesced`.
#[tokio::test]
async fn a_call_that_exchanged_the_union_and_joined_another_exchange_reports_the_exchange() {
    // The union is granted without Chat.Read; Chat.Read alone is granted after 500 ms.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(token_path(TID)))
        .and(wiremock::matchers::body_string_contains("Mail.Read"))
        .respond_with(ok_body("union", 3600))
        .with_priority(1)
        .mount(&server)
        .await;
    token_endpoint(&server, ok_body("chat", 3600).set_delay(Duration::from_millis(500)), ..).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let p = provider(settings(&server, secret()), TestClock::new().0)
        .with_union(chat_union())
        .with_observer(Arc::new(move |e: &OboEvent| sink.lock().unwrap().push(e.clone())));
    let chat = ScopeSet::from_scp("Chat.Read");
    p.graph_token(&caller(), &ScopeSet::from_scp("Mail.Read"), None).await.expect("union");
    // The first call takes the union from the cache and exchanges Chat.Read (slowly); the union
    // is evicted meanwhile, so the second call exchanges it again, then joins that exchange.
    let first = tokio::spawn({
        let (p, chat) = (p.clone(), chat.clone());
        async move { p.graph_token(&caller(), &chat, None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Meanwhile a call that takes the union from the cache and joins that exchange ran none.
    let joined = tokio::spawn({
        let (p, chat) = (p.clone(), chat.clone());
        async move { p.graph_token(&caller(), &chat, None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    p.evict(&caller(), &ScopeSet::from_scp("Mail.Read"));
    p.graph_token(&caller(), &chat, None).await.expect("second");
    first.await.expect("task").expect("first");
    joined.await.expect("task").expect("joined");
    let mut flags: Vec<(bool, bool)> =
        events.lock().unwrap().iter().map(|e| (e.from_cache, e.coalesced)).collect();
    flags.sort_unstable();
    assert_eq!(flags, [(false, false), (false, false), (false, false), (false, true)]);
}
