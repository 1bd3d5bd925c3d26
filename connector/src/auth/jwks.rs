//! Entra's signing keys: fetched from the tenant-independent JWKS, cached, refreshed on a
//! schedule and on an unknown `kid` (at most once per floor interval), kept while the endpoint
//! is down (last known good) for at most [`DEFAULT_MAX_STALE`]: a key set older than that is
//! not trusted (Entra may have rolled a compromised key), so tokens get 503 until a refresh
//! succeeds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use jsonwebtoken::{DecodingKey, jwk::Jwk};
use tokio::time::Instant;

/// Longest `kid` looked up; `kid` is untrusted input.
pub const MAX_KID_LEN: usize = 128;
/// How long last-known-good keys stand in while every refresh fails.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);
/// Largest JWKS document read; the body is streamed and cut off past it.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One entry of Entra's JWKS. `Jwk` alone would drop the per-key `issuer`.
#[derive(serde::Deserialize)]
pub struct EntraJwk {
    #[serde(flatten)]
    pub jwk: Jwk,
    #[serde(default)]
    pub issuer: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct EntraJwkSet {
    pub keys: Vec<EntraJwk>,
}

/// A verification key and the issuer Entra bound it to (possibly templated with `{tenantid}`).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub key: DecodingKey,
    pub issuer: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("issuer", &self.issuer).finish()
    }
}

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The keys are known and fresh enough, and none has this `kid`: the token is invalid.
    #[error("no signing key has this kid")]
    UnknownKid,
    /// The key set could not be fetched and the `kid` is not cached, or the cached set is
    /// older than the staleness cap: the token is undecidable.
    #[error("the signing keys are unavailable")]
    Unavailable,
}

/// Where validation gets keys. A trait so tests can count refreshes or serve fixed keys.
pub trait KeyStore: Send + Sync {
    /// The key with this `kid`, refreshing the set (rate-limited) when it is unknown.
    fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<SigningKey, KeyError>>;
    /// Fetches the key set now (start-up and the scheduled refresh).
    fn refresh(&self) -> BoxFuture<'_, Result<usize, String>>;
    /// True once keys have been loaded at least once.
    fn is_ready(&self) -> bool;
}

struct Cache {
    keys: HashMap<String, SigningKey>,
    loaded: bool,
    /// When the keys were last fetched successfully.
    loaded_at: Option<Instant>,
    /// When the last fetch was attempted (successful or not); bounds on-demand refreshes.
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

/// The production [`KeyStore`]: HTTP fetch of `jwks_url`.
pub struct JwksKeyStore {
    http: reqwest::Client,
    url: String,
    floor: Duration,
    max_stale: Duration,
    cache: Mutex<Cache>,
    /// Serialises fetches so a burst of unknown `kid`s makes one request, not many.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksKeyStore {
    pub fn new(http: reqwest::Client, url: String, floor: Duration) -> Self {
        Self {
            http,
            url,
            floor,
            max_stale: DEFAULT_MAX_STALE,
            cache: Mutex::new(Cache {
                keys: HashMap::new(),
                loaded: false,
                loaded_at: None,
                last_attempt: None,
                last_attempt_failed: false,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// How long last-known-good keys may be used while refreshes fail.
    pub fn with_max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// The cached key, unless the whole set has gone stale.
    fn cached(&self, kid: &str) -> Option<SigningKey> {
        let cache = self.lock();
        let fresh = cache.loaded_at.is_some_and(|t| t.elapsed() <= self.max_stale);
        if fresh { cache.keys.get(kid).cloned() } else { None }
    }

    fn is_stale(&self) -> bool {
        self.lock().loaded_at.is_none_or(|t| t.elapsed() > self.max_stale)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self) -> Result<usize, String> {
        self.lock().last_attempt = Some(Instant::now());
        let result = self.download().await;
        let mut cache = self.lock();
        match result {
            Ok(keys) => {
                let n = keys.len();
                cache.keys = keys;
                cache.loaded = true;
                cache.loaded_at = Some(Instant::now());
                cache.last_attempt_failed = false;
                Ok(n)
            }
            Err(e) => {
                // Keep the last known good keys: a JWKS outage must not log everyone out.
                cache.last_attempt_failed = true;
                Err(e)
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, SigningKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        let too_large = || "JWKS document larger than 1 MiB".to_owned();
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(too_large());
        }
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("JWKS body unreadable: {e}"))?
        {
            if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let set: EntraJwkSet =
            serde_json::from_slice(&bytes).map_err(|e| format!("JWKS is not valid JSON: {e}"))?;
        let mut keys = HashMap::new();
        for entry in set.keys {
            let Some(kid) = entry.jwk.common.key_id.clone() else { continue };
            // Only RSA signing keys: Entra signs access tokens with RS256.
            if !matches!(entry.jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(&entry.jwk) {
                keys.insert(kid.clone(), SigningKey { kid, key, issuer: entry.issuer });
            }
        }
        if keys.is_empty() {
            return Err("JWKS holds no usable RSA keys".into());
        }
        Ok(keys)
    }
}

impl KeyStore for JwksKeyStore {
    fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<SigningKey, KeyError>> {
        Box::pin(async move {
            if let Some(k) = self.cached(kid) {
                return Ok(k);
            }
            if kid.len() > MAX_KID_LEN {
                return Err(KeyError::UnknownKid);
            }
            let _guard = self.fetching.lock().await;
            // Another task may have refreshed while this one waited.
            if let Some(k) = self.cached(kid) {
                return Ok(k);
            }
            let may_refresh = self.lock().last_attempt.is_none_or(|t| t.elapsed() >= self.floor);
            if may_refresh && let Err(e) = self.fetch().await {
                tracing::warn!(error = %e, "Could not refresh the signing keys");
            }
            if let Some(k) = self.cached(kid) {
                return Ok(k);
            }
            if self.is_stale() {
                return Err(KeyError::Unavailable);
            }
            let cache = self.lock();
            if !cache.loaded || cache.last_attempt_failed {
                Err(KeyError::Unavailable)
            } else {
                Err(KeyError::UnknownKid)
            }
        })
    }

    fn refresh(&self) -> BoxFuture<'_, Result<usize, String>> {
        Box::pin(async move {
            let _guard = self.fetching.lock().await;
            self.fetch().await
        })
    }

    fn is_ready(&self) -> bool {
        self.lock().loaded
    }
}

/// Runs the scheduled refresh every `every` until `stop` fires; retries sooner (every 30 s)
/// while the keys have never loaded so readiness comes as soon as Entra answers.
pub async fn refresh_periodically(
    store: Arc<dyn KeyStore>,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let wait = if store.is_ready() { every } else { Duration::from_secs(30).min(every) };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = store.refresh().await {
            tracing::warn!(error = %e, "Scheduled signing-key refresh failed; keeping the cached keys");
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use rsa::{pkcs8::DecodePrivateKey, traits::PublicKeyParts};
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

    use super::*;
    use crate::http::raw_server::{chunked, raw_server};

    /// The documented cap, written out so a changed constant cannot move the tests with it.
    const ONE_MIB: usize = 1024 * 1024;

    const TEST_KEY_PEM: &str = include_str!("../../../fake-entra/src/test_keys/key1.pem");

    fn jwks(kid: &str) -> serde_json::Value {
        let key = rsa::PrivateKey::from_pkcs8_pem(TEST_KEY_PEM).expect("test key");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64(&key.n_bytes()), "e": b64(&key.e_bytes()),
        }]})
    }

    /// A key endpoint that serves `k1` once, then answers 500.
    async fn keys_once_then_failing() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k1")))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
        server
    }

    async fn store_over(server: &MockServer, max_stale: Duration) -> JwksKeyStore {
        crate::server::install_crypto();
        JwksKeyStore::new(reqwest::Client::new(), format!("{}/keys", server.uri()), Duration::ZERO)
            .with_max_stale(max_stale)
    }

    #[tokio::test]
    async fn last_known_good_keys_stand_in_only_up_to_the_staleness_cap() {
        let server = keys_once_then_failing().await;
        let store = store_over(&server, Duration::from_millis(300)).await;
        store.refresh().await.expect("first load");
        // Entra's JWKS is down from now on: the cached key still works for a while...
        assert!(store.refresh().await.is_err());
        assert!(store.key("k1").await.is_ok());
        // ...and not once the set is older than the cap.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.key("k1").await.err(), Some(KeyError::Unavailable));
        assert_eq!(store.key("k2").await.err(), Some(KeyError::Unavailable));
    }

    /// A JWKS document of exactly `size` bytes (the key plus a padding member).
    fn jwks_of_size(kid: &str, size: usize) -> Vec<u8> {
        let mut doc = jwks(kid);
        doc["padding"] = serde_json::json!("");
        let bare = serde_json::to_vec(&doc).expect("json").len();
        doc["padding"] = serde_json::json!("x".repeat(size - bare));
        let bytes = serde_json::to_vec(&doc).expect("json");
        assert_eq!(bytes.len(), size);
        bytes
    }

    fn store_at(url: String, floor: Duration) -> JwksKeyStore {
        crate::server::install_crypto();
        JwksKeyStore::new(reqwest::Client::new(), url, floor)
    }

    #[tokio::test]
    async fn a_jwks_of_exactly_the_cap_loads_whether_or_not_its_length_is_announced() {
        let doc = jwks_of_size("k1", ONE_MIB);
        // With a Content-Length of exactly the cap.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(doc.clone(), "application/json"))
            .mount(&server)
            .await;
        let store = store_over(&server, DEFAULT_MAX_STALE).await;
        assert_eq!(store.refresh().await, Ok(1));
        assert!(store.is_ready());
        // Streamed in two halves without a length.
        let (head, body) = chunked(&[&doc[..ONE_MIB / 2], &doc[ONE_MIB / 2..]]);
        let store = store_at(format!("{}/keys", raw_server(head, body).await), Duration::ZERO);
        assert_eq!(store.refresh().await, Ok(1));
        assert!(store.key("k1").await.is_ok());
    }

    #[tokio::test]
    async fn a_streamed_jwks_one_byte_over_the_cap_is_refused() {
        let doc = jwks_of_size("k1", ONE_MIB + 1);
        let (head, body) = chunked(&[&doc[..ONE_MIB / 2], &doc[ONE_MIB / 2..]]);
        let store = store_at(format!("{}/keys", raw_server(head, body).await), Duration::ZERO);
        let error = store.refresh().await.expect_err("refused");
        assert!(error.contains("larger than 1 MiB"), "{error}");
        assert!(!store.is_ready());
    }

    #[tokio::test]
    async fn an_announced_oversized_length_is_refused_before_the_body_is_read() {
        // The body never arrives in full: only the announced length can refuse it as too
        // large (reading it would fail as unreadable instead).
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            2 * ONE_MIB
        );
        let store = store_at(
            format!("{}/keys", raw_server(head, vec![b"{\"keys\": [".to_vec()]).await),
            Duration::ZERO,
        );
        let error = store.refresh().await.expect_err("refused");
        assert!(error.contains("larger than 1 MiB"), "{error}");
    }

    #[tokio::test]
    async fn an_unknown_kid_refreshes_at_most_once_per_floor_and_then_is_unknown() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k1")))
            .mount(&server)
            .await;
        let url = format!("{}/keys", server.uri());
        let fetches = || async { server.received_requests().await.expect("recorded").len() };
        let store = store_at(url.clone(), Duration::from_secs(3600));
        store.refresh().await.expect("first load");
        // Known and fresh: an unknown kid is invalid, and the floor holds off a refetch.
        assert_eq!(store.key("k2").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fetches().await, 1);
        // Without a floor, each unknown kid refetches.
        let store = store_at(url, Duration::ZERO);
        store.refresh().await.expect("first load");
        assert_eq!(store.key("k2").await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fetches().await, 3);
        // A kid longer than any Entra uses is refused without a fetch.
        let long = "k".repeat(MAX_KID_LEN + 1);
        assert_eq!(store.key(&long).await.err(), Some(KeyError::UnknownKid));
        assert_eq!(fetches().await, 3);
    }

    #[tokio::test]
    async fn a_key_rolled_in_after_the_last_fetch_is_found_by_refreshing() {
        let longest = "k".repeat(MAX_KID_LEN);
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k1")))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&longest)))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k3")))
            .mount(&server)
            .await;
        let store = store_over(&server, DEFAULT_MAX_STALE).await;
        store.refresh().await.expect("first load");
        assert_eq!(store.key(&longest).await.expect("rolled in").kid, longest);
        assert_eq!(store.key("k3").await.expect("rolled in").kid, "k3");
    }

    #[tokio::test]
    async fn an_unknown_kid_while_the_endpoint_fails_is_undecidable_not_invalid() {
        let server = keys_once_then_failing().await;
        let store = store_over(&server, DEFAULT_MAX_STALE).await;
        store.refresh().await.expect("first load");
        assert_eq!(store.key("k2").await.err(), Some(KeyError::Unavailable));
        assert!(store.key("k1").await.is_ok());
    }

    #[tokio::test]
    async fn a_stale_set_is_unavailable_even_when_the_floor_forbids_a_refetch() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k1")))
            .mount(&server)
            .await;
        let store = store_at(format!("{}/keys", server.uri()), Duration::from_secs(3600))
            .with_max_stale(Duration::from_millis(200));
        store.refresh().await.expect("first load");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(store.key("k1").await.err(), Some(KeyError::Unavailable));
        assert_eq!(store.key("k2").await.err(), Some(KeyError::Unavailable));
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_exactly_as_old_as_the_cap_is_still_trusted() {
        // The clock is paused, so the set is read exactly `max_stale` (zero) after its fetch:
        // at the cap, not past it, it still decides (known kid found, unknown kid invalid).
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("k1")))
            .mount(&server)
            .await;
        let store = store_at(format!("{}/keys", server.uri()), Duration::from_secs(3600))
            .with_max_stale(Duration::ZERO);
        store.refresh().await.expect("first load");
        assert!(store.key("k1").await.is_ok());
        assert_eq!(store.key("k2").await.err(), Some(KeyError::UnknownKid));
    }

    #[test]
    fn a_signing_key_debugs_as_its_kid_and_issuer_only() {
        let key = DecodingKey::from_rsa_components("AQAB", "AQAB").expect("key");
        let key = SigningKey { kid: "k1".into(), key, issuer: Some("https://iss".into()) };
        assert_eq!(format!("{key:?}"), r#"SigningKey { kid: "k1", issuer: Some("https://iss") }"#);
    }

    /// Counts scheduled refreshes; never ready, so the loop uses its short retry wait.
    struct CountingStore(std::sync::atomic::AtomicUsize);

    impl KeyStore for CountingStore {
        fn key<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<SigningKey, KeyError>> {
            Box::pin(async { Err(KeyError::Unavailable) })
        }
        fn refresh(&self) -> BoxFuture<'_, Result<usize, String>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err("down".into()) })
        }
        fn is_ready(&self) -> bool {
            false
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_scheduled_refresh_runs_every_interval_until_stopped() {
        let store = Arc::new(CountingStore(Default::default()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(refresh_periodically(
            store.clone(),
            Duration::from_secs(10),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(store.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        stop.cancel();
        task.await.expect("the loop ends when stopped");
    }

    #[tokio::test]
    async fn an_oversized_jwks_is_refused_even_without_a_content_length() {
        let server = MockServer::start().await;
        let mut big = jwks("k1");
        big["padding"] = serde_json::json!("x".repeat(MAX_JWKS_BYTES));
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(big))
            .mount(&server)
            .await;
        let store = store_over(&server, DEFAULT_MAX_STALE).await;
        let error = store.refresh().await.expect_err("refused");
        assert!(error.contains("larger than 1 MiB"), "{error}");
        assert!(!store.is_ready());
    }
}
