//! Entra's signing keys: fetched from the tenant-independent JWKS, cached, refreshed on a
//! schedule and on an unknown `kid` (at most once per floor interval), kept while the endpoint
//! is down (last known good).

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
    /// The key set could not be fetched and the `kid` is not cached: the token is undecidable.
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
    /// When the last fetch was attempted (successful or not); bounds on-demand refreshes.
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

/// The production [`KeyStore`]: HTTP fetch of `jwks_url`.
pub struct JwksKeyStore {
    http: reqwest::Client,
    url: String,
    floor: Duration,
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
            cache: Mutex::new(Cache {
                keys: HashMap::new(),
                loaded: false,
                last_attempt: None,
                last_attempt_failed: false,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: &str) -> Option<SigningKey> {
        self.lock().keys.get(kid).cloned()
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
        let bytes = response.bytes().await.map_err(|e| format!("JWKS body unreadable: {e}"))?;
        if bytes.len() > 1024 * 1024 {
            return Err("JWKS document larger than 1 MiB".into());
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
