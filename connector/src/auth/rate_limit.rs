//! Per-caller token buckets keyed by the validated `(tid, oid)`: never by a raw token or an
//! unverified header, so an attacker cannot mint fresh keys.
//!
//! With `[redis]`, the budget is shared by every instance: a GCRA script on Redis' clock
//! (per (tenant, user), and per tenant when configured) decides, and the local bucket stays
//! in front as a pre-filter (a caller over budget here is refused without a round trip) and
//! as the fallback while Redis is unavailable (then each instance enforces the budget alone).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tokio::time::Instant;

use crate::{
    domain::{ObjectId, TenantId},
    shared::{Budget, SharedStore},
};

/// Buckets beyond this count trigger a sweep of full (idle) buckets, bounding memory.
const SWEEP_THRESHOLD: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per caller: `burst` capacity, refilled at `per_minute / 60` per second.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<(TenantId, ObjectId), Bucket>>,
    shared: Option<(SharedStore, Budget)>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Shares the budget across instances through `store` (see the module docs).
    pub fn with_shared(mut self, store: Option<SharedStore>) -> Self {
        let Some(store) = store else { return self };
        let budget = Budget {
            per_minute: (self.per_second * 60.0).round() as u32,
            burst: self.burst as u32,
        };
        self.shared = Some((store, budget));
        self
    }

    /// Takes one token, or says how long until one is available.
    pub async fn check(&self, tid: TenantId, oid: ObjectId) -> Result<(), Duration> {
        self.check_local(tid, oid)?;
        if let Some((store, budget)) = &self.shared
            && let Some(shared) = store.rate_check(tid, oid, *budget).await
        {
            return shared;
        }
        Ok(())
    }

    /// The local bucket alone.
    pub fn check_local(&self, tid: TenantId, oid: ObjectId) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_THRESHOLD {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket =
            buckets.entry((tid, oid)).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[tokio::test(start_paused = true)]
    async fn a_caller_gets_the_burst_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(60, 2);
        let t = TenantId::from(Uuid::from_u128(1));
        let (a, b) = (ObjectId::from(Uuid::from_u128(2)), ObjectId::from(Uuid::from_u128(3)));
        assert!(limiter.check(t, a).await.is_ok());
        assert!(limiter.check(t, a).await.is_ok());
        let wait = limiter.check(t, a).await.unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.check(t, b).await.is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.check(t, a).await.is_ok());
    }
}
