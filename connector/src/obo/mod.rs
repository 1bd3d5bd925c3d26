//! On-Behalf-Of: exchanges the caller's token for a Microsoft Graph token, caches the result
//! encrypted, and maps Entra's refusals to errors the user can act on.
//!
//! * The inbound token is used only as the `assertion` sent to the tenant's token endpoint:
//!   it is never sent to Graph, never logged, never stored (`security.md` S-RO-1).
//! * Requests name explicit Graph scopes (never `.default`) and always declare the CAE
//!   capability `cp1`, merged with any claims challenge (`entra.md` §7.1, §9.3).
//! * Cache key: tenant + user + sign-in (assertion hash) + scope set. An entry is used only while
//!   `now < min(exp − renew_before, issued_at + max_reuse, inbound exp)`; `max_reuse = 0`
//!   exchanges on every call (`entra.md` §7.6). Concurrent misses for one key share one
//!   exchange, run in its own task so a cancelled caller does not cancel the others.
//!   With a shared store (`crate::shared`, `[redis]`) the exchange is also claimed across
//!   instances ([`TokenCache::claim_exchange`]): the others wait for the winner's entry.
//! * One exchange per user: with a *union* scope set configured ([`TokenProvider::with_union`],
//!   every scope the tools need), a request for scopes inside it is served by one token for the
//!   whole union, exchanged on the first miss and reused by every tool until it ages out. When
//!   Entra refuses the union for consent (the tenant granted only part of it), the provider
//!   exchanges each request's own scopes as before and remembers that refusal for the user for
//!   the reuse window, so a partly consented tenant does not pay a failing union exchange on
//!   every call. A revoked permission is seen when the union token ages out: the next union
//!   exchange is refused and the per-scope exchanges refuse exactly the tools that need it.
//!   With a shared store the refusal is shared too ([`TokenCache::share_union_refusal`]), so
//!   other instances skip the union for that user as well.
//!
//! # Layout
//! * [`cache`]: typed cache keys, the AES-256-GCM envelope with key rotation, the
//!   [`TokenCache`] trait and its moka implementation.
//! * [`error`]: [`OboError`] and the AADSTS mapping.
//! * this file: [`OboSettings`], [`TokenProvider`], the token request itself.

pub mod cache;
pub mod error;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::{
    FutureExt as _,
    future::{BoxFuture, Shared},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use cache::{
    CacheKeyError, CacheKeys, EncryptionKey, ExchangeClaim, MokaTokenCache, TokenCache,
    TokenCacheKey,
};
pub use error::{CaCondition, OboError};

use crate::{
    clock::Clock,
    domain::{Caller, ObjectId, ScopeSet, TenantId},
    metrics::{Metrics, names},
};

/// The resource prefix of Graph scopes in token requests.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com/";
/// The CAE capability every token request declares (`entra.md` §9.3).
const CP1_CLAIMS: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;
/// Bound on one token request (`security.md` §5 note 1).
const OBO_TIMEOUT: Duration = Duration::from_secs(10);
/// Token responses are a few KiB; anything far larger is not a token response.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Lifetime of a client assertion JWT.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// How the connector authenticates to Entra as a confidential client.
#[derive(Clone, Debug)]
pub enum ClientCredential {
    Secret(SecretString),
    /// `private_key_jwt`: an RS256 client assertion whose header carries the certificate's
    /// `x5t` (base64url SHA-1 thumbprint).
    Certificate {
        private_key_pem: SecretString,
        x5t: String,
    },
}

/// Settings of the On-Behalf-Of exchange; the config module builds them.
#[derive(Clone, Debug)]
pub struct OboSettings {
    /// e.g. `https://login.microsoftonline.com`; the token endpoint is
    /// `{authority}/{tid}/oauth2/v2.0/token`.
    pub authority: Url,
    pub client_id: Uuid,
    pub credential: ClientCredential,
    /// Maximum age of a cached token: bounds how long a revocation at Entra goes unseen.
    /// `Duration::ZERO` exchanges on every call.
    pub max_reuse: Duration,
    /// A cached token is renewed this long before it expires.
    pub renew_before: Duration,
    pub cache_keys: CacheKeys,
}

impl OboSettings {
    /// Settings with the default 5-minute reuse age and renewal margin and an ephemeral key.
    pub fn new(authority: Url, client_id: Uuid, credential: ClientCredential) -> Self {
        Self {
            authority,
            client_id,
            credential,
            max_reuse: Duration::from_secs(300),
            renew_before: Duration::from_secs(300),
            cache_keys: CacheKeys::ephemeral(),
        }
    }

    fn base(&self) -> &str {
        self.authority.as_str().trim_end_matches('/')
    }

    /// The tenant's token endpoint (never `common`).
    pub fn token_endpoint(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base())
    }

    /// Where a tenant administrator grants consent to the connector.
    pub fn admin_consent_url(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/adminconsent?client_id={}", self.base(), self.client_id)
    }
}

/// A Graph access token obtained On-Behalf-Of the caller.
#[derive(Clone)]
pub struct GraphToken {
    access_token: SecretString,
    /// The scopes Entra granted (from the response's `scope`), without the resource prefix.
    pub scopes: ScopeSet,
    pub expires_at: DateTime<Utc>,
}

impl GraphToken {
    pub fn new(access_token: SecretString, scopes: ScopeSet, expires_at: DateTime<Utc>) -> Self {
        Self { access_token, scopes, expires_at }
    }

    /// # Security
    /// Goes only into the `Authorization` header of requests to the configured Graph base.
    pub fn expose(&self) -> &str {
        self.access_token.expose_secret()
    }

    /// The access token alone, for the Graph client's `Authorization` header.
    pub fn into_access_token(self) -> SecretString {
        self.access_token
    }
}

impl fmt::Debug for GraphToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphToken")
            .field("access_token", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One `graph_token` outcome, for the audit log. Carries no token.
#[derive(Clone, Debug)]
pub struct OboEvent {
    pub tenant: TenantId,
    pub user: ObjectId,
    pub scopes: ScopeSet,
    /// Served from the cache without an exchange.
    pub from_cache: bool,
    /// Served by an exchange another caller started (single flight).
    pub coalesced: bool,
    /// `None` on success, else [`OboError::code`].
    pub error_code: Option<String>,
}

type Observer = Arc<dyn Fn(&OboEvent) + Send + Sync>;
type Inflight = Shared<BoxFuture<'static, Result<GraphToken, OboError>>>;

/// Obtains Graph tokens On-Behalf-Of callers. Cheap to clone.
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OboSettings,
    http: reqwest::Client,
    clock: Clock,
    metrics: Arc<Metrics>,
    cache: Arc<dyn TokenCache>,
    inflight: Mutex<HashMap<TokenCacheKey, Inflight>>,
    observer: Option<Observer>,
    /// Bounds exchanges in flight at Entra (see [`MAX_CONCURRENT_EXCHANGES`]).
    exchanges: Arc<tokio::sync::Semaphore>,
    /// The scope set exchanged once for every request inside it (see the module docs).
    union: Option<ScopeSet>,
    /// Users whose union exchange Entra refused for consent: until when (connector clock,
    /// Unix seconds) their requests go straight to per-scope exchanges, and the refusal.
    refused: moka::future::Cache<(TenantId, ObjectId), Arc<(i64, OboError)>>,
    /// Users Entra rate-limited (429, AADSTS50196 request loop; not a 503 outage): until when (connector clock, Unix
    /// seconds) their exchanges are answered with the throttling error without asking Entra
    /// again, and that error. Asking during the cool-down only prolongs the throttling.
    throttled: moka::future::Cache<(TenantId, ObjectId), Arc<(i64, OboError)>>,
}

/// Cool-down after a throttling answer without `Retry-After`.
const DEFAULT_THROTTLE_COOLDOWN: Duration = Duration::from_secs(5);
/// Longest cool-down honoured, whatever `Retry-After` says.
const MAX_THROTTLE_COOLDOWN: Duration = Duration::from_secs(600);

/// Users remembered as refused the union at once; beyond it the oldest are forgotten (and pay
/// one more failing union exchange).
const MAX_REFUSED_USERS: u64 = 100_000;

fn refused_cache() -> moka::future::Cache<(TenantId, ObjectId), Arc<(i64, OboError)>> {
    moka::future::Cache::builder()
        .max_capacity(MAX_REFUSED_USERS)
        .support_invalidation_closures()
        .build()
}

/// Exchanges sent to Entra at once. A burst of first calls (a thousand users signing in
/// together) otherwise opens a connection per exchange and waits in Entra's own queue, where
/// each request's HTTP timeout runs; here they wait in a fair (FIFO) queue instead, whose wait
/// the request timeout bounds, with one connection per slot.
pub const MAX_CONCURRENT_EXCHANGES: usize = 64;

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("authority", &self.inner.settings.authority.as_str())
            .finish()
    }
}

/// The plaintext of a cache entry; zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Entry {
    token: String,
    scope: String,
    expires_at: i64,
    /// Unix seconds after which the entry is not used (see the module docs).
    use_until: i64,
}

impl TokenProvider {
    pub fn new(
        settings: OboSettings,
        http: reqwest::Client,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let inner = Inner {
            settings,
            http,
            clock,
            metrics,
            cache: Arc::new(MokaTokenCache::default()),
            inflight: Mutex::new(HashMap::new()),
            observer: None,
            exchanges: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXCHANGES)),
            union: None,
            refused: refused_cache(),
            throttled: refused_cache(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Replaces the in-memory cache, e.g. with a shared store. Call before first use.
    pub fn with_cache(self, cache: Arc<dyn TokenCache>) -> Self {
        self.rebuild(|inner| inner.cache = cache)
    }

    /// Registers the audit hook called after every `graph_token` outcome.
    pub fn with_observer(self, observer: Arc<dyn Fn(&OboEvent) + Send + Sync>) -> Self {
        self.rebuild(|inner| inner.observer = Some(observer))
    }

    /// Serves every request for scopes inside `union` with one token for all of `union` (see
    /// the module docs). Call before first use.
    pub fn with_union(self, union: ScopeSet) -> Self {
        let union = (!union.is_empty() && check_scopes(&union).is_ok()).then_some(union);
        self.rebuild(|inner| inner.union = union)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let old = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                settings: shared.settings.clone(),
                http: shared.http.clone(),
                clock: shared.clock.clone(),
                metrics: shared.metrics.clone(),
                cache: shared.cache.clone(),
                inflight: Mutex::new(HashMap::new()),
                observer: shared.observer.clone(),
                exchanges: shared.exchanges.clone(),
                union: shared.union.clone(),
                refused: refused_cache(),
                throttled: refused_cache(),
            },
        };
        let mut inner = old;
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The scope set one token per user is exchanged for, when configured.
    pub fn union(&self) -> Option<&ScopeSet> {
        self.inner.union.as_ref()
    }

    pub fn settings(&self) -> &OboSettings {
        &self.inner.settings
    }

    /// A Graph token for `caller` with `scopes` (short names such as `Mail.Read`).
    /// `claims`: a claims challenge to satisfy (base64 from Graph's `WWW-Authenticate`, or raw
    /// JSON); it forces a fresh exchange.
    pub async fn graph_token(
        &self,
        caller: &Caller,
        scopes: &ScopeSet,
        claims: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let key = TokenCacheKey::for_caller(caller, scopes.clone());
        let (result, from_cache, coalesced) = match self.union_for(scopes) {
            Some(union) => self.via_union(&key, union, caller, claims).await,
            None => self.obtain(&key, caller, claims).await,
        };
        let event = OboEvent {
            tenant: key.tenant,
            user: key.user,
            scopes: key.scopes,
            from_cache,
            coalesced,
            error_code: result.as_ref().err().map(OboError::code),
        };
        if from_cache {
            self.inner.metrics.inc(names::OBO_CACHE_HITS, &[]);
        }
        if let Some(observer) = &self.inner.observer {
            observer(&event);
        }
        result
    }

    /// The union that serves `scopes`, when one is configured, tokens are reused at all, and
    /// `scopes` lies inside it.
    fn union_for(&self, scopes: &ScopeSet) -> Option<&ScopeSet> {
        let union = self.inner.union.as_ref()?;
        let reused = !self.inner.settings.max_reuse.is_zero();
        (reused && !scopes.is_empty() && scopes.iter().all(|s| union.contains(s))).then_some(union)
    }

    /// `key.scopes` served by the union token; per-scope exchange when the union is refused.
    /// The flags say whether any exchange ran for this call (both steps count).
    async fn via_union(
        &self,
        key: &TokenCacheKey,
        union: &ScopeSet,
        caller: &Caller,
        claims: Option<&str>,
    ) -> (Result<GraphToken, OboError>, bool, bool) {
        let user = (key.tenant, key.user);
        let now = self.inner.clock.unix_seconds();
        let union_key = TokenCacheKey { scopes: union.clone(), ..key.clone() };
        if let Some(refusal) = self.union_refusal(&union_key, claims, now).await {
            if key.scopes == *union {
                // Asking again within the window would be refused again: answer as Entra did.
                return (Err(refusal.1.clone()), true, false);
            }
            return self.obtain(key, caller, claims).await;
        }
        let (result, from_cache, coalesced) = self.obtain(&union_key, caller, claims).await;
        let first = (from_cache, coalesced);
        match result {
            Ok(token) if key.scopes.iter().all(|s| token.scopes.contains(s)) => {
                (Ok(token), from_cache, coalesced)
            }
            // Granted, but without some of these scopes: ask for them on their own.
            Ok(_) => both_steps(first, self.obtain(key, caller, claims).await),
            Err(error) if refuses_scopes(&error) => {
                let until = now.saturating_add(secs(self.inner.settings.max_reuse));
                self.inner.refused.insert(user, Arc::new((until, error.clone()))).await;
                if let Some(code) = refusal_code(&error) {
                    let ttl = self.inner.settings.max_reuse;
                    self.inner.cache.share_union_refusal(&union_key, &code, ttl).await;
                }
                if key.scopes == *union {
                    return (Err(error), from_cache, coalesced);
                }
                both_steps(first, self.obtain(key, caller, claims).await)
            }
            Err(error) => (Err(error), from_cache, coalesced),
        }
    }

    /// The remembered union refusal of `union_key`'s user: this instance's, else one another
    /// instance shared (the cache asks only when it does not hold the union token), which is
    /// then remembered here for the time it still holds.
    async fn union_refusal(
        &self,
        union_key: &TokenCacheKey,
        claims: Option<&str>,
        now: i64,
    ) -> Option<Arc<(i64, OboError)>> {
        let user = (union_key.tenant, union_key.user);
        if let Some(refusal) = self.inner.refused.get(&user).await.filter(|r| now < r.0) {
            return Some(refusal);
        }
        if claims.is_some() {
            return None;
        }
        let (code, left) = self.inner.cache.shared_union_refusal(union_key).await?;
        let error = refusal_from_code(&code, &self.inner.settings, union_key)?;
        let until = now.saturating_add(secs(left).max(1));
        let refusal = Arc::new((until, error));
        self.inner.refused.insert(user, refusal.clone()).await;
        Some(refusal)
    }

    async fn obtain(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
        claims: Option<&str>,
    ) -> (Result<GraphToken, OboError>, bool, bool) {
        if let Err(e) = check_scopes(&key.scopes) {
            return (Err(e), false, false);
        }
        if claims.is_some() || self.inner.settings.max_reuse.is_zero() {
            let claims = claims.map(str::to_owned);
            return (
                self.inner.exchange_and_store(key, caller, claims.as_deref()).await,
                false,
                false,
            );
        }
        if let Some(token) = self.inner.cached(key).await {
            return (Ok(token), true, false);
        }
        let (flight, coalesced) = {
            let mut inflight = self.inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let inner = self.inner.clone();
                    let (task_key, task_caller) = (key.clone(), caller.clone());
                    let handle = tokio::spawn(async move {
                        // A previous flight may have finished between our miss and our lock.
                        let result = match inner.cached(&task_key).await {
                            Some(token) => Ok(token),
                            None => inner.exchange_across_instances(&task_key, &task_caller).await,
                        };
                        inner.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&task_key);
                        result
                    });
                    let flight = async move {
                        handle
                            .await
                            .unwrap_or(Err(OboError::Internal("token exchange task failed")))
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key.clone(), flight.clone());
                    (flight, false)
                }
            }
        };
        (flight.await, false, coalesced)
    }

    /// Drops the cached token of `caller` for `scopes` (after a Graph 401 or claims challenge).
    pub fn evict(&self, caller: &Caller, scopes: &ScopeSet) {
        let key = TokenCacheKey::for_caller(caller, scopes.clone());
        if let Some(union) = self.union_for(scopes) {
            // The union token may be the one that served these scopes.
            self.inner.cache.remove(&TokenCacheKey { scopes: union.clone(), ..key.clone() });
        }
        self.inner.cache.remove(&key);
    }

    /// The cache's entries as stored at rest (sealed blobs, never plaintext): a test-only
    /// inspection hook for conformance T07. Holds no key material and opens nothing.
    pub fn cache_snapshot_for_tests(&self) -> Vec<Vec<u8>> {
        self.inner.cache.snapshot()
    }

    /// Drops every cached token of a tenant (tenant disabled by policy).
    pub fn purge_tenant(&self, tenant: TenantId) {
        self.inner.cache.purge_tenant(tenant);
        let _ = self.inner.refused.invalidate_entries_if(move |user, _| user.0 == tenant);
        let _ = self.inner.throttled.invalidate_entries_if(move |user, _| user.0 == tenant);
    }
}

/// The flags of a call served in two steps (the union, then the request's own scopes): an
/// exchange in either step is an exchange, else a coalesced step is coalesced, else a hit.
fn both_steps(
    first: (bool, bool),
    (result, from_cache, coalesced): (Result<GraphToken, OboError>, bool, bool),
) -> (Result<GraphToken, OboError>, bool, bool) {
    let exchanged = |(from_cache, coalesced): (bool, bool)| !from_cache && !coalesced;
    if exchanged(first) || exchanged((from_cache, coalesced)) {
        (result, false, false)
    } else {
        (result, from_cache && first.0, coalesced || first.1)
    }
}

/// A union refusal as the short code other instances read back ([`refusal_from_code`]);
/// `None` for errors that are not refusals of the scopes.
fn refusal_code(error: &OboError) -> Option<String> {
    let code = |c: &Option<u32>| c.map_or_else(String::new, |c| c.to_string());
    match error {
        OboError::ConsentRequired { code, .. } => Some(format!("consent:{code}")),
        OboError::Misconfigured { error, code: c } if error == "invalid_scope" => {
            Some(format!("misconfigured:{}", code(c)))
        }
        OboError::Rejected { error, code: c } if error == "invalid_scope" => {
            Some(format!("rejected:{}", code(c)))
        }
        _ => None,
    }
}

/// The refusal a [`refusal_code`] stands for, as this instance's exchange would have mapped
/// it; `None` for a code it does not know (then the union is simply asked for).
fn refusal_from_code(
    code: &str,
    settings: &OboSettings,
    union_key: &TokenCacheKey,
) -> Option<OboError> {
    let (kind, number) = code.split_once(':')?;
    let number = if number.is_empty() { None } else { Some(number.parse::<u32>().ok()?) };
    let invalid_scope = "invalid_scope".to_owned();
    match kind {
        "consent" => Some(OboError::ConsentRequired {
            code: number?,
            consent_url: settings.admin_consent_url(union_key.tenant),
            scopes: union_key.scopes.to_scope_param(),
        }),
        "misconfigured" => Some(OboError::Misconfigured { error: invalid_scope, code: number }),
        "rejected" => Some(OboError::Rejected { error: invalid_scope, code: number }),
        _ => None,
    }
}

/// Whether Entra refused the requested scopes themselves (some not granted, or one unknown),
/// so that a smaller request may still succeed.
fn refuses_scopes(error: &OboError) -> bool {
    match error {
        OboError::ConsentRequired { .. } => true,
        OboError::Misconfigured { error, .. } | OboError::Rejected { error, .. } => {
            error == "invalid_scope"
        }
        _ => false,
    }
}

/// Only explicit, delegated Graph scope names are requested (`security.md` S-RO-3).
fn check_scopes(scopes: &ScopeSet) -> Result<(), OboError> {
    let bad = |s: &str| {
        s.is_empty()
            || s.eq_ignore_ascii_case(".default")
            || s.eq_ignore_ascii_case("offline_access")
            || s.contains('/')
            || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    };
    if scopes.is_empty() || scopes.iter().any(bad) {
        return Err(OboError::Internal("invalid scope request"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    scope: Option<String>,
    expires_in: Seconds,
}

/// How often an instance that lost the cross-instance exchange claim looks for the winner's
/// entry.
const CLAIM_POLL: Duration = Duration::from_millis(20);

impl Inner {
    /// One exchange for `key` across instances sharing a store: the claim's holder exchanges;
    /// the others wait (bounded) for its entry and exchange themselves if it does not come.
    async fn exchange_across_instances(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
    ) -> Result<GraphToken, OboError> {
        match self.cache.claim_exchange(key).await {
            ExchangeClaim::Busy(wait) => {
                let deadline = tokio::time::Instant::now() + wait;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(CLAIM_POLL).await;
                    if let Some(token) = self.cached(key).await {
                        return Ok(token);
                    }
                }
                self.exchange_and_store(key, caller, None).await
            }
            claim => {
                // The instance that held the lock before us may have stored its token between
                // our miss and our claim: then that token is the answer, not a second exchange.
                let stored = match claim {
                    ExchangeClaim::Held(_) => self.cached(key).await,
                    _ => None,
                };
                let result = match stored {
                    Some(token) => Ok(token),
                    None => self.exchange_and_store(key, caller, None).await,
                };
                self.cache.release_exchange(key, claim).await;
                result
            }
        }
    }

    async fn cached(&self, key: &TokenCacheKey) -> Option<GraphToken> {
        let blob = self.cache.get(key).await?;
        let Ok(plain) = self.settings.cache_keys.open(key, &blob) else {
            // Tampered, truncated or sealed by a retired key: a miss, never an error.
            tracing::warn!(tenant = %key.tenant, "unreadable token cache entry dropped");
            self.cache.remove(key);
            return None;
        };
        let entry: Entry = serde_json::from_slice(&plain).ok()?;
        if self.clock.unix_seconds() >= entry.use_until {
            return None;
        }
        Some(GraphToken {
            access_token: SecretString::from(entry.token.clone()),
            scopes: ScopeSet::from_scp(&entry.scope),
            expires_at: DateTime::from_timestamp(entry.expires_at, 0)?,
        })
    }

    async fn exchange_and_store(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
        claims: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let issued_at = self.clock.unix_seconds();
        let user = (key.tenant, key.user);
        if let Some(cooling) = self.throttled.get(&user).await.filter(|t| issued_at < t.0) {
            let OboError::Throttled { code, rate_limited, .. } = &cooling.1 else {
                return Err(cooling.1.clone());
            };
            let left = u64::try_from(cooling.0 - issued_at).unwrap_or(1);
            self.metrics.inc(names::OBO_EXCHANGES, &[("outcome", "throttled_cooldown")]);
            return Err(OboError::Throttled {
                code: *code,
                rate_limited: *rate_limited,
                retry_after: Some(Duration::from_secs(left)),
            });
        }
        let result = self.exchange(key, caller, claims).await;
        if let Err(error @ OboError::Throttled { retry_after, rate_limited: true, .. }) = &result {
            let wait = retry_after.unwrap_or(DEFAULT_THROTTLE_COOLDOWN).min(MAX_THROTTLE_COOLDOWN);
            let until = self.clock.unix_seconds().saturating_add(secs(wait).max(1));
            self.throttled.insert(user, Arc::new((until, error.clone()))).await;
        }
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().split(':').next().unwrap_or("error").to_owned(),
        };
        self.metrics.inc(names::OBO_EXCHANGES, &[("outcome", &outcome)]);
        let token = result?;
        if !self.settings.max_reuse.is_zero() {
            self.store(key, caller, &token, issued_at).await;
        }
        Ok(token)
    }

    async fn store(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
        token: &GraphToken,
        issued_at: i64,
    ) {
        let s = &self.settings;
        let mut use_until = token.expires_at.timestamp().saturating_sub(secs(s.renew_before));
        use_until = use_until.min(issued_at.saturating_add(secs(s.max_reuse)));
        if let Some(exp) = assertion_expiry(caller.assertion.expose()) {
            // Never use an OBO token after the inbound token it came from has expired.
            use_until = use_until.min(exp);
        }
        let now = self.clock.unix_seconds();
        if use_until <= now {
            return;
        }
        let entry = Entry {
            token: token.expose().to_owned(),
            scope: token.scopes.to_scope_param(),
            expires_at: token.expires_at.timestamp(),
            use_until,
        };
        let Ok(plain) = serde_json::to_vec(&entry).map(Zeroizing::new) else { return };
        match s.cache_keys.seal(key, &plain) {
            Ok(blob) => {
                let ttl = Duration::from_secs(u64::try_from(use_until - now).unwrap_or(0));
                self.cache.put(key, blob, ttl).await;
            }
            Err(_) => tracing::warn!("token cache entry could not be sealed"),
        }
    }

    async fn exchange(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
        claims: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let s = &self.settings;
        let endpoint = s.token_endpoint(key.tenant);
        let scope_param = key
            .scopes
            .iter()
            .map(|sc| format!("{GRAPH_RESOURCE}{sc}"))
            .collect::<Vec<_>>()
            .join(" ");
        let claims = merge_claims(claims)?;
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned().into()),
            ("client_id", s.client_id.to_string().into()),
            ("assertion", caller.assertion.expose().to_owned().into()),
            ("scope", scope_param.into()),
            ("requested_token_use", "on_behalf_of".to_owned().into()),
            ("claims", claims.into()),
        ];
        match &s.credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret().to_owned().into()));
            }
            ClientCredential::Certificate { private_key_pem, x5t } => {
                let jwt = client_assertion(
                    private_key_pem.expose_secret(),
                    x5t,
                    s.client_id,
                    &endpoint,
                    self.clock.unix_seconds(),
                )?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned().into(),
                ));
                form.push(("client_assertion", jwt.into()));
            }
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request_id = Uuid::new_v4();
        // Never closed, so `acquire` cannot fail; without a permit the exchange still runs.
        let slot = self.exchanges.acquire().await.ok();
        let response = self
            .http
            .post(&endpoint)
            .header("client-request-id", request_id.to_string())
            .header("return-client-request-id", "true")
            .timeout(OBO_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|_| OboError::Unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::http::retry::parse_retry_after(v, Utc::now()));
        let body = read_capped(response).await?;
        drop(slot);
        if (200..300).contains(&status) {
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| OboError::Internal("unreadable token response"))?;
            let lifetime = match &parsed.expires_in {
                Seconds::Number(n) => *n,
                Seconds::Text(t) => {
                    t.trim().parse().map_err(|_| OboError::Internal("unreadable token lifetime"))?
                }
            };
            let expires_at =
                DateTime::from_timestamp(self.clock.unix_seconds().saturating_add(lifetime), 0)
                    .ok_or(OboError::Internal("unreadable token lifetime"))?;
            let scopes = match parsed.scope.as_deref() {
                Some(scope) => granted_scopes(scope),
                None => key.scopes.clone(),
            };
            return Ok(GraphToken {
                access_token: SecretString::from(parsed.access_token),
                scopes,
                expires_at,
            });
        }
        let body: error::EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        tracing::warn!(
            tenant = %key.tenant,
            status,
            error = %body.error.chars().take(64).collect::<String>(),
            error_codes = ?body.error_codes,
            suberror = ?body.suberror,
            trace_id = ?body.trace_id,
            correlation_id = ?body.correlation_id,
            client_request_id = %request_id,
            "on-behalf-of exchange refused"
        );
        let consent_url = s.admin_consent_url(key.tenant);
        let scopes = key.scopes.to_scope_param();
        let ctx = error::ErrorContext { consent_url: &consent_url, scopes: &scopes };
        Err(error::map_entra_error(status, retry_after, &body, &ctx))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, OboError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| OboError::Unreachable)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(OboError::Internal("oversized token response"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Graph answers `scope` with or without the resource prefix; keep the short names.
fn granted_scopes(scope: &str) -> ScopeSet {
    ScopeSet::from_iter(scope.split(' ').filter(|s| !s.is_empty()).map(|s| {
        if s.len() > GRAPH_RESOURCE.len()
            && s[..GRAPH_RESOURCE.len()].eq_ignore_ascii_case(GRAPH_RESOURCE)
        {
            s[GRAPH_RESOURCE.len()..].to_owned()
        } else {
            s.to_owned()
        }
    }))
}

/// The `claims` parameter: `cp1` always, merged with a challenge's claims as siblings under
/// the same top-level objects (`entra.md` §9.3). The challenge may be base64 (standard or
/// url-safe, padded or not) as Graph sends it, or raw JSON as Entra sends it.
pub fn merge_claims(challenge: Option<&str>) -> Result<String, OboError> {
    let mut merged: serde_json::Value =
        serde_json::from_str(CP1_CLAIMS).map_err(|_| OboError::Internal("claims"))?;
    let Some(challenge) = challenge.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(merged.to_string());
    };
    let json = if challenge.starts_with('{') {
        challenge.as_bytes().to_vec()
    } else {
        crate::http::decode_base64_any(challenge)
            .ok_or(OboError::Internal("claims challenge is not base64"))?
    };
    let serde_json::Value::Object(extra) = serde_json::from_slice(&json)
        .map_err(|_| OboError::Internal("claims challenge is not JSON"))?
    else {
        return Err(OboError::Internal("claims challenge is not a JSON object"));
    };
    let Some(target) = merged.as_object_mut() else { return Err(OboError::Internal("claims")) };
    for (token_kind, requested) in extra {
        match (target.get_mut(&token_kind), requested) {
            (Some(serde_json::Value::Object(have)), serde_json::Value::Object(add)) => {
                for (claim, rule) in add {
                    if claim == "xms_cc" {
                        continue; // our capability declaration stays as is
                    }
                    have.insert(claim, rule);
                }
            }
            (_, requested) => {
                target.insert(token_kind, requested);
            }
        }
    }
    Ok(merged.to_string())
}

/// The inbound token's `exp`. Only read to bound cache reuse: the auth layer has already
/// validated the token, and nothing else of it is read here.
fn assertion_expiry(assertion: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: i64,
    }
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Exp>(&bytes).ok().map(|e| e.exp)
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// A `private_key_jwt` client assertion (RS256, `x5t` header, aud = the token endpoint).
fn client_assertion(
    pem: &str,
    x5t: &str,
    client_id: Uuid,
    endpoint: &str,
    now: i64,
) -> Result<String, OboError> {
    let misconfigured =
        || OboError::Misconfigured { error: "client_certificate".into(), code: None };
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| misconfigured())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(x5t.to_owned());
    let claims = AssertionClaims {
        aud: endpoint,
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        jti: Uuid::new_v4().to_string(),
        nbf: now,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &key).map_err(|_| misconfigured())
}

#[cfg(test)]
mod tests;
