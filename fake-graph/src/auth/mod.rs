//! Bearer-token validation; the delegated permission table is in `perms`, Continuous Access
//! Evaluation in `cae`.
//!
//! Tokens are v1 Graph tokens minted by fake-entra (`entra.md` §3.3): RS256 only, `kid` looked
//! up in fake-entra's JWKS fetched over HTTP (cached; refetched on an unknown `kid`), audience
//! `https://graph.microsoft.com` or Graph's app id, issuer exactly `https://sts.windows.net/{tid}/`.
//! Lifetimes are checked against the shared [`fixtures::Clock`], not the system time, so a test
//! that advances the clock expires tokens. Validated claims are cached by the SHA-256 of the token
//! string (the signature check dominates the cost of a simple GET).

mod cae;
pub mod perms;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use self::{
    cae::{Cae, CaeEvent, cae_challenge},
    perms::Permission,
};
use crate::error::GraphError;

/// Graph's resource URI, the audience of its v1 tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's app id, the other accepted audience.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// How often an unknown `kid` may trigger a JWKS refetch.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_millis(200);
/// Upper bound on cached validated tokens; the cache is cleared when it is reached.
const TOKEN_CACHE_MAX: usize = 50_000;

/// The authenticated caller, from the token's claims.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tid: Uuid,
    pub oid: Uuid,
    /// `appid` of the calling client (the connector for OBO tokens).
    pub app_id: String,
    pub uti: String,
    /// The raw `scp` string (journalled as-is, like the activity log's `Scopes`).
    pub scp: String,
    pub scopes: HashSet<String>,
    /// App-only token (`roles`, no `scp`).
    pub app_only: bool,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// `xms_cc` contains `cp1`.
    pub cp1: bool,
}

impl Caller {
    pub fn has_any(&self, any_of: &[&str]) -> bool {
        any_of.iter().any(|s| self.scopes.contains(*s))
    }

    /// Checks a permission-table row; 403 in the row's service wording when missing.
    pub fn require(&self, perm: &Permission) -> Result<(), GraphError> {
        if self.has_any(perm.any_of) {
            Ok(())
        } else {
            Err(GraphError::forbidden(perm.service, perm.any_of, &self.scp))
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    uti: Option<String>,
    #[serde(default)]
    scp: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    xms_cc: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

struct KeyCache {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

/// Validates bearer tokens and runs CAE checks.
pub struct Auth {
    jwks_url: String,
    events_url: String,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    fetch_lock: tokio::sync::Mutex<()>,
    tokens: RwLock<HashMap<[u8; 32], Arc<Caller>>>,
    pub cae: Cae,
}

impl Auth {
    pub fn new(entra: &str) -> anyhow::Result<Self> {
        let base = entra.trim_end_matches('/');
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build()?;
        Ok(Self {
            jwks_url: format!("{base}/common/discovery/v2.0/keys"),
            events_url: format!("{base}/_fake/events"),
            http,
            keys: RwLock::new(KeyCache { keys: HashMap::new(), fetched_at: None }),
            fetch_lock: tokio::sync::Mutex::new(()),
            tokens: RwLock::new(HashMap::new()),
            cae: Cae::default(),
        })
    }

    /// Authenticates the `Authorization` header value at `now`.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Caller>, GraphError> {
        let token = match header {
            None => return Err(GraphError::unauthenticated("Access token is empty.")),
            Some(h) => match h.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    token.trim()
                }
                _ => return Err(GraphError::unauthenticated("Access token is empty.")),
            },
        };
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.tokens.read().unwrap_or_else(|e| e.into_inner()).get(&hash).cloned();
        let caller = match cached {
            Some(c) => c,
            None => {
                let c = Arc::new(self.validate(token).await?);
                let mut cache = self.tokens.write().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= TOKEN_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(hash, c.clone());
                c
            }
        };
        let ts = now.timestamp();
        if caller.exp <= ts {
            return Err(GraphError::unauthenticated(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        if caller.nbf > ts {
            return Err(GraphError::unauthenticated(
                "Access token has expired or is not yet valid.",
            ));
        }
        Ok(caller)
    }

    async fn validate(&self, token: &str) -> Result<Caller, GraphError> {
        let malformed =
            || GraphError::unauthenticated("CompactToken parsing failed with error code: 80049217");
        if token.split('.').count() != 3 {
            return Err(malformed());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| malformed())?;
        if header.alg != Algorithm::RS256 {
            return Err(GraphError::unauthenticated(
                "Access token validation failure. Invalid signature algorithm.",
            ));
        }
        let kid = header.kid.ok_or_else(|| {
            GraphError::unauthenticated("Access token validation failure. Signing key not found.")
        })?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(|_| {
                GraphError::unauthenticated("Access token validation failure. Invalid signature.")
            })?;
        let aud_ok = match data.claims.get("aud") {
            Some(serde_json::Value::String(a)) => a == GRAPH_AUDIENCE || a == GRAPH_APP_ID,
            _ => false,
        };
        if !aud_ok {
            return Err(GraphError::unauthenticated(
                "Access token validation failure. Invalid audience.",
            ));
        }
        let claims: Claims = serde_json::from_value(data.claims).map_err(|_| malformed())?;
        let tid =
            claims.tid.as_deref().and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(malformed)?;
        if claims.iss != format!("https://sts.windows.net/{tid}/") {
            return Err(GraphError::unauthenticated(
                "Access token validation failure. Invalid issuer.",
            ));
        }
        let oid =
            claims.oid.as_deref().and_then(|t| Uuid::parse_str(t).ok()).ok_or_else(malformed)?;
        let (exp, iat) = match (claims.exp, claims.iat) {
            (Some(exp), Some(iat)) => (exp, iat),
            _ => return Err(malformed()),
        };
        let cp1 = match &claims.xms_cc {
            Some(serde_json::Value::Array(v)) => v.iter().any(|x| x.as_str() == Some("cp1")),
            Some(serde_json::Value::String(s)) => s == "cp1",
            _ => false,
        };
        let (scp, app_only) = match (&claims.scp, &claims.roles) {
            (Some(scp), _) => (scp.clone(), false),
            (None, Some(roles)) => (roles.join(" "), true),
            (None, None) => (String::new(), false),
        };
        Ok(Caller {
            tid,
            oid,
            app_id: claims.appid.or(claims.azp).unwrap_or_default(),
            uti: claims.uti.unwrap_or_default(),
            scopes: scp.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            scp,
            app_only,
            iat,
            nbf: claims.nbf.unwrap_or(iat),
            exp,
            cp1,
        })
    }

    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, GraphError> {
        if let Some(k) = self.keys.read().unwrap_or_else(|e| e.into_inner()).keys.get(kid) {
            return Ok(k.clone());
        }
        let _guard = self.fetch_lock.lock().await;
        let recently = {
            let cache = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = cache.keys.get(kid) {
                return Ok(k.clone());
            }
            cache.fetched_at.is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL)
        };
        if !recently {
            self.refresh_keys().await;
        }
        self.keys.read().unwrap_or_else(|e| e.into_inner()).keys.get(kid).cloned().ok_or_else(
            || {
                GraphError::unauthenticated(
                    "Access token validation failure. Signing key not found.",
                )
            },
        )
    }

    /// GETs `url` from fake-entra as JSON; any failure (down, non-2xx, bad body) is `None`,
    /// and the caller keeps what it had.
    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Option<T> {
        let response = self.http.get(url).send().await.ok()?.error_for_status().ok()?;
        response.json().await.ok()
    }

    async fn refresh_keys(&self) {
        let fetched: Option<Jwks> = self.fetch_json(&self.jwks_url).await;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        cache.fetched_at = Some(Instant::now());
        match fetched {
            Some(jwks) => {
                for k in jwks.keys {
                    if let (Some(kid), Some("RSA"), Some(n), Some(e)) =
                        (k.kid, k.kty.as_deref(), k.n, k.e)
                        && let Ok(key) = DecodingKey::from_rsa_components(&n, &e)
                    {
                        cache.keys.insert(kid, Arc::new(key));
                    }
                }
            }
            None => tracing::warn!(jwks.url = %self.jwks_url, "could not fetch fake-entra's JWKS"),
        }
    }
}
