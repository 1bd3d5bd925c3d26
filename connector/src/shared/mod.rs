//! State shared by N connector instances through Redis (the optional `[redis]` section), so
//! that N instances behind a load balancer behave as one: one OBO exchange per sign-in, one
//! rate-limit budget per user, a tenant disabled on one instance refused by all.
//!
//! Redis is an accelerator, never a dependency of a call: every operation has a short
//! timeout, failures open a circuit breaker, and a failed or skipped operation answers "not
//! available" so callers fall back to what a single instance does (L1 cache, direct
//! exchange, the local rate limiter).
//!
//! What goes to Redis, and under which names:
//! * sealed token blobs only (AES-256-GCM, the keys never leave the process), named
//!   `{prefix}tok:{digest}`;
//! * cross-instance exchange locks `{prefix}lock:{digest}` holding a random token;
//! * per-tenant epochs `{prefix}epoch:{digest}` (bumped when a tenant is disabled);
//! * GCRA state `{prefix}rl:{digest}` per (tenant, user) and per tenant;
//! * union refusals `{prefix}refused:{digest}` per (tenant, user) (a short error code).
//!
//! Every digest is an HMAC keyed by the configured cache key ([`CacheKeys::name_digest`]),
//! so no Redis key names a tenant or a user and names cannot be confirmed by guessing ids.
//!
//! # Layout
//! * `config`: [`RedisConfig`], the client it describes and the `check-config` probe.
//! * this file: [`SharedStore`] (connection, breaker, names, epochs, scripts).
//! * [`tiered`]: [`tiered::TieredTokenCache`], the L1 (moka) + L2 (Redis) token cache.

mod config;
pub mod tiered;

use config::client;
pub use config::{RedisConfig, SharedStoreError, check};

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands as _, aio::ConnectionManager};
use tokio::time::Instant;

use crate::{
    domain::{ObjectId, TenantId},
    metrics::Metrics,
    obo::CacheKeys,
};

/// Metric: Redis operations that failed or timed out, by operation.
pub const REDIS_ERRORS: &str = "m365_redis_errors_total";
/// Metric: Redis operations skipped because the circuit breaker was open, by operation.
pub const REDIS_SKIPPED: &str = "m365_redis_skipped_total";
/// Metric: L2 token cache lookups, by outcome (`hit`, `miss`).
pub const REDIS_L2_LOOKUPS: &str = "m365_redis_l2_lookups_total";

/// Consecutive failures that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an observed tenant epoch is trusted without asking Redis again.
const EPOCH_FRESHNESS: Duration = Duration::from_secs(1);

/// Re-reads the policy file after a tenant epoch changed, under the poll's settling rule
/// compressed to `gap`: the content must read the same twice, `gap` apart, before it is
/// applied, so a file caught mid-write is left to the regular poll. Returns what the last
/// read did (`Unchanged` when the file was already in force or did not settle).
pub async fn reload_policy_settled(
    policy: &crate::policy::PolicyStore,
    gap: Duration,
) -> Result<crate::policy::Reload, crate::policy::PolicyError> {
    use crate::policy::Reload;
    if policy.path().as_os_str().is_empty() {
        return Ok(Reload::Unchanged); // a fixed policy: nothing to read
    }
    match policy.reload_if_changed()? {
        applied @ Reload::Applied { .. } => Ok(applied),
        Reload::Unchanged => {
            tokio::time::sleep(gap).await;
            policy.reload_if_changed()
        }
    }
}

/// Opens after [`BREAKER_THRESHOLD`] consecutive failures for `cooldown`; after it, one
/// failure re-opens it at once (half-open), one success closes it.
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    origin: Instant,
    cooldown: Duration,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn allows(&self) -> bool {
        self.now_ms() >= self.open_until_ms.load(Ordering::Relaxed)
    }
    fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
    fn failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures >= BREAKER_THRESHOLD {
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX));
            self.open_until_ms.store(until, Ordering::Relaxed);
        }
    }
}

type EpochListener = Arc<dyn Fn(TenantId) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The connection to Redis and everything built on it. Cheap to clone.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    manager: ConnectionManager,
    config: RedisConfig,
    names: CacheKeys,
    metrics: Arc<Metrics>,
    breaker: Breaker,
    /// Last epoch seen per tenant and when it was read.
    epochs: Mutex<HashMap<TenantId, (u64, Instant)>>,
    epoch_listeners: Mutex<Vec<EpochListener>>,
    unlock: redis::Script,
    gcra: redis::Script,
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore").field("config", &self.inner.config).finish()
    }
}

/// Deletes the lock only if it still holds our token (another instance may own it now).
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// GCRA over every key but the last (pairs of ARGV: emission interval and tolerance, in µs),
/// on Redis' own clock (`TIME`), so instances need no clock agreement. A request is admitted
/// only if every key admits it, and then consumes from all of them. The last key is the
/// tenant's epoch, returned in the same round trip.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS - 1
local wait = 0
local next_tat = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local over = tat - now - tolerance
  if over > wait then wait = over end
  next_tat[i] = tat + interval
end
if wait <= 0 then
  for i = 1, n do
    local ttl = math.ceil((next_tat[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%d', next_tat[i]), 'PX', ttl)
  end
end
local epoch = redis.call('GET', KEYS[n + 1]) or '0'
if wait > 0 then
  return {0, math.ceil(wait / 1000), epoch}
end
return {1, 0, epoch}";

/// One GCRA budget: `per_minute` sustained, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub per_minute: u32,
    pub burst: u32,
}

impl Budget {
    fn args(self) -> (u64, u64) {
        let interval = 60_000_000 / u64::from(self.per_minute.max(1));
        (interval, interval * u64::from(self.burst.max(1) - 1))
    }
}

impl SharedStore {
    /// Sets up the client without connecting: the connection is made on first use and
    /// re-made after failures, so a Redis that is down at start only degrades the instance.
    /// `names` keys the digests that name entries (see the module docs).
    pub fn new(
        config: RedisConfig,
        names: CacheKeys,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SharedStoreError> {
        let client = client(&config)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| SharedStoreError(format!("{:?}", e.kind())))?;
        let breaker = Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
            cooldown: config.breaker_cooldown,
        };
        Ok(Self {
            inner: Arc::new(StoreInner {
                manager,
                config,
                names,
                metrics,
                breaker,
                epochs: Mutex::new(HashMap::new()),
                epoch_listeners: Mutex::new(Vec::new()),
                unlock: redis::Script::new(UNLOCK_SCRIPT),
                gcra: redis::Script::new(GCRA_SCRIPT),
            }),
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Whether Redis is currently being skipped or failing (for `/readyz` and tests).
    pub fn degraded(&self) -> bool {
        !self.inner.breaker.allows() || self.inner.breaker.failures.load(Ordering::Relaxed) > 0
    }

    /// Runs one Redis operation under the breaker and the operation timeout. `None`: Redis
    /// was skipped, failed or timed out (counted; the caller falls back).
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        if !inner.breaker.allows() {
            inner.metrics.inc(REDIS_SKIPPED, &[("op", op)]);
            return None;
        }
        let attempt = async {
            match f(inner.manager.clone()).await {
                // The first request after Redis came back finds the old connection dead and
                // triggers the reconnect; one immediate retry (same time budget) rides it.
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    f(inner.manager.clone()).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(inner.config.op_timeout, attempt).await {
            Ok(Ok(value)) => {
                inner.breaker.success();
                Some(value)
            }
            Ok(Err(error)) => {
                inner.breaker.failure();
                inner.metrics.inc(REDIS_ERRORS, &[("op", op)]);
                tracing::warn!(op, kind = ?error.kind(), "Redis operation failed; continuing without it");
                None
            }
            Err(_) => {
                inner.breaker.failure();
                inner.metrics.inc(REDIS_ERRORS, &[("op", op)]);
                tracing::warn!(op, "Redis operation timed out; continuing without it");
                None
            }
        }
    }

    /// `{prefix}{kind}:{hex digest of material}`.
    pub(crate) fn name(&self, kind: &str, material: &[u8]) -> String {
        use std::fmt::Write as _;
        let digest = self.inner.names.name_digest(kind, material);
        let mut name = String::with_capacity(self.inner.config.key_prefix.len() + kind.len() + 41);
        name.push_str(&self.inner.config.key_prefix);
        name.push_str(kind);
        name.push(':');
        // 160 bits: collisions are out of reach and names stay short.
        for b in &digest[..20] {
            let _ = write!(name, "{b:02x}");
        }
        name
    }

    fn epoch_name(&self, tenant: TenantId) -> String {
        self.name("epoch", tenant.to_string().as_bytes())
    }

    pub(crate) async fn get_with_ttl(&self, name: &str) -> Option<(Option<Vec<u8>>, i64)> {
        self.run("get", |mut c| async move {
            redis::pipe().get(name).pttl(name).query_async::<(Option<Vec<u8>>, i64)>(&mut c).await
        })
        .await
    }

    pub(crate) async fn set_px(&self, name: &str, value: &[u8], ttl: Duration) -> Option<()> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run("set", |mut c| async move {
            redis::cmd("SET").arg(name).arg(value).arg("PX").arg(ms).query_async::<()>(&mut c).await
        })
        .await
    }

    pub(crate) async fn del(&self, name: &str) -> Option<()> {
        self.run("del", |mut c| async move { c.del::<_, ()>(&name).await }).await
    }

    /// `SET NX PX` with a fresh random token. `Some(Some(token))`: acquired; `Some(None)`:
    /// another instance holds it; `None`: Redis unavailable.
    pub(crate) async fn try_lock(&self, name: &str) -> Option<Option<String>> {
        let token = format!("{:032x}", rand::random::<u128>());
        let value = token.as_str();
        let ms = u64::try_from(self.inner.config.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let set: Option<Option<String>> = self
            .run("lock", |mut c| async move {
                redis::cmd("SET")
                    .arg(name)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await;
        set.map(|reply| reply.map(|_| token))
    }

    /// Releases a lock only if it still holds `token`.
    pub(crate) async fn unlock(&self, name: &str, token: &str) {
        let script = &self.inner.unlock;
        let _ = self
            .run("unlock", |mut c| async move {
                script.key(name).arg(token).invoke_async::<i64>(&mut c).await
            })
            .await;
    }

    /// The tenant's current epoch: the last one seen if read within the last second,
    /// else read from Redis; while Redis is unavailable, the last one seen (0 if none).
    pub async fn epoch(&self, tenant: TenantId) -> u64 {
        let known =
            self.inner.epochs.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant).copied();
        if let Some((epoch, read_at)) = known
            && read_at.elapsed() < EPOCH_FRESHNESS
        {
            return epoch;
        }
        let name = &self.epoch_name(tenant);
        let read: Option<Option<u64>> =
            self.run("epoch", |mut c| async move { c.get(name).await }).await;
        match read {
            Some(value) => {
                let epoch = value.unwrap_or(0);
                self.observe_epoch(tenant, epoch).await;
                epoch
            }
            None => known.map_or(0, |(epoch, _)| epoch),
        }
    }

    /// Bumps the tenant's epoch: every instance treats entries of the older epoch as misses
    /// and re-reads its policy on its next call for the tenant.
    pub async fn bump_epoch(&self, tenant: TenantId) -> Option<u64> {
        let name = &self.epoch_name(tenant);
        let epoch: u64 =
            self.run("bump_epoch", |mut c| async move { c.incr(name, 1).await }).await?;
        self.observe_epoch(tenant, epoch).await;
        Some(epoch)
    }

    /// Registers a hook run when an instance sees a tenant's epoch change (or a bumped epoch
    /// for the first time), e.g. to re-read the policy file. The operation that saw the
    /// change (the call's rate check or cache read) waits for it, so the call is answered
    /// under what the hook did.
    pub fn on_epoch_change<F, Fut>(&self, hook: F)
    where
        F: Fn(TenantId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        use futures::FutureExt as _;
        let hook: EpochListener = Arc::new(move |tenant| hook(tenant).boxed());
        self.inner.epoch_listeners.lock().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    async fn observe_epoch(&self, tenant: TenantId, epoch: u64) {
        let previous = self
            .inner
            .epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant, (epoch, Instant::now()))
            .map_or(0, |(e, _)| e);
        if previous != epoch {
            let listeners =
                self.inner.epoch_listeners.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for hook in listeners {
                hook(tenant).await;
            }
        }
    }

    /// The shared GCRA check for one call of (`tenant`, `user`), which also refreshes the
    /// tenant's epoch. `None`: Redis unavailable (the local limiter's answer stands).
    pub async fn rate_check(
        &self,
        tenant: TenantId,
        user: ObjectId,
        per_user: Budget,
    ) -> Option<Result<(), Duration>> {
        let mut keys = vec![self.name("rl", format!("user/{tenant}/{user}").as_bytes())];
        let mut args = vec![per_user.args()];
        if let Some((per_minute, burst)) = self.inner.config.tenant_rate {
            keys.push(self.name("rl", format!("tenant/{tenant}").as_bytes()));
            args.push(Budget { per_minute, burst }.args());
        }
        keys.push(self.epoch_name(tenant));
        let (script, keys, args) = (&self.inner.gcra, &keys, &args);
        let (admitted, wait_ms, epoch): (i64, u64, String) = self
            .run("rate_limit", |mut c| async move {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(key);
                }
                for (interval, tolerance) in args {
                    invocation.arg(*interval).arg(*tolerance);
                }
                invocation.invoke_async(&mut c).await
            })
            .await?;
        if let Ok(epoch) = epoch.parse() {
            self.observe_epoch(tenant, epoch).await;
        }
        Some(if admitted == 1 { Ok(()) } else { Err(Duration::from_millis(wait_ms.max(1))) })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn the_breaker_opens_after_repeated_failures_and_half_opens_after_the_cooldown() {
        let breaker = Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
            cooldown: Duration::ZERO,
        };
        assert!(breaker.allows());
        breaker.failure();
        breaker.failure();
        assert!(breaker.allows());
        let long = Breaker { cooldown: Duration::from_secs(60), ..breaker };
        long.failure();
        assert!(!long.allows());
        long.success();
        assert_eq!(long.failures.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_configuration_debug_form_redacts_credentials() {
        let mut config = RedisConfig::new("redis://127.0.0.1:6379");
        config.username = Some(SecretString::from("acl-user-sentinel".to_owned()));
        config.password = Some(SecretString::from("acl-password-sentinel".to_owned()));
        let shown = format!("{config:?}");
        assert!(!shown.contains("sentinel"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn gcra_arguments_follow_the_budget() {
        assert_eq!(Budget { per_minute: 60, burst: 5 }.args(), (1_000_000, 4_000_000));
        assert_eq!(Budget { per_minute: 0, burst: 0 }.args(), (60_000_000, 0));
    }
}
