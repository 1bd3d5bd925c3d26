//! One exchange with its cache entry: the cross-instance claim, the throttling cool-down, and
//! sealing (and opening) the encrypted entry whose use is bounded by the token's expiry, the
//! reuse age and the inbound token's expiry.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use chrono::DateTime;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{ExchangeClaim, GraphToken, Inner, OboError, TokenCacheKey, secs};
use crate::{
    domain::{Caller, ScopeSet},
    metrics::names,
};

/// Cool-down after a throttling answer without `Retry-After`.
const DEFAULT_THROTTLE_COOLDOWN: Duration = Duration::from_secs(5);
/// Longest cool-down honoured, whatever `Retry-After` says.
const MAX_THROTTLE_COOLDOWN: Duration = Duration::from_secs(600);

/// How often an instance that lost the cross-instance exchange claim looks for the winner's
/// entry.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// The plaintext of a cache entry; zeroized when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct Entry {
    token: String,
    scope: String,
    expires_at: i64,
    /// Unix seconds after which the entry is not used (see the module docs).
    use_until: i64,
}

impl Inner {
    /// One exchange for `key` across instances sharing a store: the claim's holder exchanges;
    /// the others wait (bounded) for its entry and exchange themselves if it does not come.
    pub(super) async fn exchange_across_instances(
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

    pub(super) async fn cached(&self, key: &TokenCacheKey) -> Option<GraphToken> {
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

    pub(super) async fn exchange_and_store(
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
