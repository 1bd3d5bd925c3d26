//! One exchange per user: the union scope set serves every request inside it, and a refusal of
//! the union (a partly consented tenant) is remembered for the reuse window, here and, with a
//! shared store, across instances (see the module docs of [`super`]).

use std::sync::Arc;

use super::{GraphToken, OboError, OboSettings, TokenCacheKey, TokenProvider, secs};
use crate::domain::{Caller, ObjectId, ScopeSet, TenantId};

/// Users remembered as refused the union at once; beyond it the oldest are forgotten (and pay
/// one more failing union exchange).
const MAX_REFUSED_USERS: u64 = 100_000;

pub(super) fn refused_cache() -> moka::future::Cache<(TenantId, ObjectId), Arc<(i64, OboError)>> {
    moka::future::Cache::builder()
        .max_capacity(MAX_REFUSED_USERS)
        .support_invalidation_closures()
        .build()
}

impl TokenProvider {
    /// The union that serves `scopes`, when one is configured, tokens are reused at all, and
    /// `scopes` lies inside it.
    pub(super) fn union_for(&self, scopes: &ScopeSet) -> Option<&ScopeSet> {
        let union = self.inner.union.as_ref()?;
        let reused = !self.inner.settings.max_reuse.is_zero();
        (reused && !scopes.is_empty() && scopes.iter().all(|s| union.contains(s))).then_some(union)
    }

    /// `key.scopes` served by the union token; per-scope exchange when the union is refused.
    /// The flags say whether any exchange ran for this call (both steps count).
    pub(super) async fn via_union(
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
