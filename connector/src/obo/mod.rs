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
//! * `settings`: [`OboSettings`] and the client credential.
//! * this file: [`TokenProvider`]'s API, the cache lookup and the single flight per key.
//! * `union`: the union scope set and the memory of its refusals (this instance's and shared).
//! * `exchange`: one exchange with its cache entry: the cross-instance claim, the throttling
//!   cool-down, sealing and opening entries.
//! * `request`: the token request itself (form, client assertion, `claims`, response).

pub mod cache;
pub mod error;
mod exchange;
mod request;
mod settings;
mod union;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::{
    FutureExt as _,
    future::{BoxFuture, Shared},
};
use secrecy::{ExposeSecret, SecretString};

pub use cache::{
    CacheKeyError, CacheKeys, EncryptionKey, ExchangeClaim, MokaTokenCache, TokenCache,
    TokenCacheKey,
};
pub use error::{CaCondition, OboError};
pub use request::merge_claims;
pub use settings::{ClientCredential, OboSettings};
use union::refused_cache;

use crate::{
    clock::Clock,
    domain::{Caller, ObjectId, ScopeSet, TenantId},
    metrics::{Metrics, names},
};

/// The resource prefix of Graph scopes in token requests.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com/";

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

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
