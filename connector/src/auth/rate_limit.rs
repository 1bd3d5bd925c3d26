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
    /// The configured integers, kept as given (after the floor of 1) for the shared budget,
    /// so it never depends on a float round trip through `per_second`.
    budget: Budget,
    buckets: Mutex<HashMap<(TenantId, ObjectId), Bucket>>,
    shared: Option<SharedStore>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let budget = Budget { per_minute: per_minute.max(1), burst: burst.max(1) };
        Self {
            burst: f64::from(budget.burst),
            per_second: f64::from(budget.per_minute) / 60.0,
            budget,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Shares the budget across instances through `store` (see the module docs).
    pub fn with_shared(mut self, store: Option<SharedStore>) -> Self {
        self.shared = store;
        self
    }

    /// Takes one token, or says how long until one is available.
    pub async fn check(&self, tid: TenantId, oid: ObjectId) -> Result<(), Duration> {
        self.check_local(tid, oid)?;
        if let Some(store) = &self.shared
            && let Some(shared) = store.rate_check(tid, oid, self.budget).await
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

    fn caller(n: u128) -> (TenantId, ObjectId) {
        (TenantId::from(Uuid::from_u128(1)), ObjectId::from(Uuid::from_u128(n)))
    }

    fn take(limiter: &RateLimiter, n: u128) -> Result<(), Duration> {
        let (tid, oid) = caller(n);
        limiter.check_local(tid, oid)
    }

    fn bucket_count(limiter: &RateLimiter) -> usize {
        limiter.buckets.lock().unwrap().len()
    }

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

    /// 120 a minute is one token every 500 ms; every figure below is exact in `f64`.
    #[tokio::test(start_paused = true)]
    async fn the_burst_is_admitted_exactly_and_the_wait_is_the_time_to_the_next_token() {
        let limiter = RateLimiter::new(120, 3);
        for _ in 0..3 {
            assert_eq!(take(&limiter, 2), Ok(()));
        }
        assert_eq!(take(&limiter, 2), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(take(&limiter, 2), Err(Duration::from_millis(250)), "half a token refilled");
        tokio::time::advance(Duration::from_millis(249)).await;
        assert!(take(&limiter, 2).is_err(), "one millisecond before the interval");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(take(&limiter, 2), Ok(()), "a token exactly one interval after the last");
        assert_eq!(take(&limiter, 2), Err(Duration::from_millis(500)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_caller_refills_to_the_burst_and_no_further() {
        let limiter = RateLimiter::new(120, 3);
        for _ in 0..3 {
            assert_eq!(take(&limiter, 2), Ok(()));
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(take(&limiter, 2), Ok(()));
        }
        assert_eq!(take(&limiter, 2), Err(Duration::from_millis(500)));
    }

    #[test]
    fn the_shared_budget_is_the_configured_one_with_a_floor_of_one() {
        let budget = RateLimiter::new(90, 7).budget;
        assert_eq!((budget.per_minute, budget.burst), (90, 7));
        let floor = RateLimiter::new(0, 0).budget;
        assert_eq!((floor.per_minute, floor.burst), (1, 1));
    }

    /// The sweep runs only past the threshold and drops exactly the buckets that have
    /// refilled to the burst (their callers would start from a full bucket anyway).
    #[tokio::test(start_paused = true)]
    async fn past_the_threshold_full_buckets_are_swept_and_partial_ones_kept() {
        // 120 a minute, burst 4: one call leaves 3 tokens; 500 ms later the bucket is full.
        let limiter = RateLimiter::new(120, 4);
        let threshold = SWEEP_THRESHOLD as u128;
        for n in 0..threshold {
            assert_eq!(take(&limiter, 10 + n), Ok(()));
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(take(&limiter, 2), Ok(()));
        assert_eq!(bucket_count(&limiter), SWEEP_THRESHOLD + 1, "no sweep at the threshold");
        assert_eq!(take(&limiter, 3), Ok(()));
        assert_eq!(bucket_count(&limiter), 2, "the refilled buckets go, caller 2's stays");
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_threshold_full_buckets_are_kept() {
        let limiter = RateLimiter::new(120, 4);
        assert_eq!(take(&limiter, 2), Ok(()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(take(&limiter, 3), Ok(()));
        assert_eq!(bucket_count(&limiter), 2);
    }
}
