//! The two-level token cache of scaled-out instances: L1 in process (moka), L2 in Redis.
//!
//! * Read L1, then L2 (filling L1), then the provider exchanges; write L2, then L1.
//! * L2 holds only the sealed blob, named by a keyed digest of the cache key *and the
//!   tenant's epoch*: after a tenant's epoch is bumped, entries of the older epoch are not
//!   even found. L1 entries carry the epoch they were stored under and are misses once the
//!   tenant's epoch moves on.
//! * The L2 entry's time to live is the entry's own (`use_until − now`, from the provider),
//!   so nothing outlives its use and nothing orphans.
//! * A blob that fails to open is a miss in the provider, which removes it from both levels.
//! * The provider's memory of users whose union exchange Entra refused is shared too
//!   (`{prefix}refused:{digest}`, per tenant, user and epoch, with the refusal's own TTL), so
//!   a second instance does not pay the failing union exchange again.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;

use super::SharedStore;
use crate::{
    domain::TenantId,
    obo::{ExchangeClaim, TokenCache, TokenCacheKey},
};

type L1Value = (Arc<Vec<u8>>, u64, Duration);

struct EntryTtl;

impl moka::Expiry<TokenCacheKey, L1Value> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &TokenCacheKey,
        value: &L1Value,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.2)
    }

    fn expire_after_update(
        &self,
        _key: &TokenCacheKey,
        value: &L1Value,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.2)
    }
}

/// L1 + L2 token cache (see the module docs).
pub struct TieredTokenCache {
    l1: moka::future::Cache<TokenCacheKey, L1Value>,
    store: SharedStore,
}

impl TieredTokenCache {
    pub fn new(store: SharedStore, max_entries: u64) -> Self {
        let l1 = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(EntryTtl)
            .support_invalidation_closures()
            .build();
        Self { l1, store }
    }

    /// The Redis key of `key`'s entry under `epoch`.
    pub fn entry_name(&self, key: &TokenCacheKey, epoch: u64) -> String {
        self.store.name("tok", format!("{}#{epoch}", key.canonical()).as_bytes())
    }

    fn lock_name(&self, key: &TokenCacheKey) -> String {
        self.store.name("lock", key.canonical().as_bytes())
    }

    /// The Redis key of a user's union refusal under `epoch`: per (tenant, user), not per
    /// sign-in, as the provider's own memory.
    fn refusal_name(&self, key: &TokenCacheKey, epoch: u64) -> String {
        self.store.name("refused", format!("{}/{}#{epoch}", key.tenant, key.user).as_bytes())
    }
}

impl TokenCache for TieredTokenCache {
    fn get<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let epoch = self.store.epoch(key.tenant).await;
            if let Some((blob, stored_under, _)) = self.l1.get(key).await {
                if stored_under == epoch {
                    return Some(blob.as_ref().clone());
                }
                self.l1.invalidate(key).await;
            }
            let (blob, pttl) = self.store.get_with_ttl(&self.entry_name(key, epoch)).await?;
            let metrics = &self.store.inner.metrics;
            let Some(blob) = blob else {
                metrics.inc(super::REDIS_L2_LOOKUPS, &[("outcome", "miss")]);
                return None;
            };
            metrics.inc(super::REDIS_L2_LOOKUPS, &[("outcome", "hit")]);
            if let Ok(ms) = u64::try_from(pttl)
                && ms > 0
            {
                let value = (Arc::new(blob.clone()), epoch, Duration::from_millis(ms));
                self.l1.insert(key.clone(), value).await;
            }
            Some(blob)
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a TokenCacheKey,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let epoch = self.store.epoch(key.tenant).await;
            let _ = self.store.set_px(&self.entry_name(key, epoch), &blob, ttl).await;
            self.l1.insert(key.clone(), (Arc::new(blob), epoch, ttl)).await;
        })
    }

    fn remove(&self, key: &TokenCacheKey) {
        let owned = key.clone();
        let _ = self.l1.invalidate_entries_if(move |k, _| *k == owned);
        // `remove` is synchronous (the provider calls it from sync paths): the L2 delete runs
        // in the background; until it lands, the entry can only be found and dropped again.
        let (store, key) = (self.store.clone(), key.clone());
        tokio::spawn(async move {
            let epoch = store.epoch(key.tenant).await;
            let name = store.name("tok", format!("{}#{epoch}", key.canonical()).as_bytes());
            let _ = store.del(&name).await;
        });
    }

    fn purge_tenant(&self, tenant: TenantId) {
        let _ = self.l1.invalidate_entries_if(move |k, _| k.tenant == tenant);
        let store = self.store.clone();
        tokio::spawn(async move {
            if store.bump_epoch(tenant).await.is_none() {
                tracing::warn!(
                    "Redis unavailable: other instances drop this tenant's tokens only at their own policy reload"
                );
            }
        });
    }

    fn snapshot(&self) -> Vec<Vec<u8>> {
        self.l1.iter().map(|(_, (blob, _, _))| blob.as_ref().clone()).collect()
    }

    fn claim_exchange<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, ExchangeClaim> {
        Box::pin(async move {
            match self.store.try_lock(&self.lock_name(key)).await {
                Some(Some(token)) => ExchangeClaim::Held(token),
                Some(None) => ExchangeClaim::Busy(self.store.config().lock_wait),
                None => ExchangeClaim::Local,
            }
        })
    }

    fn share_union_refusal<'a>(
        &'a self,
        union_key: &'a TokenCacheKey,
        refusal: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let epoch = self.store.epoch(union_key.tenant).await;
            let name = self.refusal_name(union_key, epoch);
            let _ = self.store.set_px(&name, refusal.as_bytes(), ttl).await;
        })
    }

    fn shared_union_refusal<'a>(
        &'a self,
        union_key: &'a TokenCacheKey,
    ) -> BoxFuture<'a, Option<(String, Duration)>> {
        Box::pin(async move {
            // The union token in L1 (the steady state) means no refusal to look for.
            if self.l1.contains_key(union_key) {
                return None;
            }
            let epoch = self.store.epoch(union_key.tenant).await;
            let (value, pttl) =
                self.store.get_with_ttl(&self.refusal_name(union_key, epoch)).await?;
            let left = Duration::from_millis(u64::try_from(pttl).ok().filter(|ms| *ms > 0)?);
            Some((String::from_utf8(value?).ok()?, left))
        })
    }

    fn release_exchange<'a>(
        &'a self,
        key: &'a TokenCacheKey,
        claim: ExchangeClaim,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let ExchangeClaim::Held(token) = claim {
                self.store.unlock(&self.lock_name(key), &token).await;
            }
        })
    }
}
