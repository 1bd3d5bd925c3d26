//! Entra's per-user request-loop protection at the token endpoint: when one user's token
//! requests exceed a configured rate, Entra stops answering them with tokens and returns
//! AADSTS50196 ("the server terminated an operation because it encountered a loop") with
//! HTTP 429 and `Retry-After` (reference/entra.md §8.3, MSAL.NET "client and server
//! throttling"), until the user's rate falls back under the limit.
//!
//! The window slides on the fake's clock; only admitted requests count, so a client that
//! honours `Retry-After` gets tokens again, one that keeps hammering stays refused.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AadError;

/// At most `max_requests` token requests per user within any `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRateLimit {
    pub max_requests: u32,
    pub window_seconds: u64,
}

impl UserRateLimit {
    /// `max_requests` per `window_seconds`.
    pub fn new(max_requests: u32, window_seconds: u64) -> Self {
        Self { max_requests, window_seconds }
    }
}

/// Admitted token requests per user `(tid, oid)`, oldest first.
pub(crate) type RequestLog = HashMap<(Uuid, Uuid), VecDeque<DateTime<Utc>>>;

/// Admits one more token request of `(tid, oid)` at `now`, or refuses it with AADSTS50196.
pub(crate) fn admit(
    limit: Option<UserRateLimit>,
    log: &mut RequestLog,
    user: (Uuid, Uuid),
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    let Some(limit) = limit else { return Ok(()) };
    let window = chrono::Duration::seconds(i64::try_from(limit.window_seconds).unwrap_or(i64::MAX));
    let seen = log.entry(user).or_default();
    while seen.front().is_some_and(|t| *t + window <= now) {
        seen.pop_front();
    }
    if seen.len() < limit.max_requests as usize {
        seen.push_back(now);
        return Ok(());
    }
    // Room again once the oldest admitted request leaves the window (a limit of zero never
    // has room: it asks for a whole window).
    let free_at = seen.front().map_or(now + window, |t| *t + window);
    let wait_ms = (free_at - now).num_milliseconds().max(0);
    let retry_after = u64::try_from(wait_ms).map_or(1, |ms| ms.div_ceil(1000)).max(1);
    let mut e = request_loop();
    e.retry_after = Some(retry_after);
    Err(e)
}

/// AADSTS50196 as Entra sends it for a user-facing loop: `invalid_grant` (MSAL.NET surfaces it
/// as `MsalUiRequiredException`), here with HTTP 429 and `Retry-After`.
pub(crate) fn request_loop() -> AadError {
    AadError::new(
        "invalid_grant",
        50196,
        "The server terminated an operation because it encountered a loop while processing a request.",
    )
    .status(StatusCode::TOO_MANY_REQUESTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + ms).unwrap_or_default()
    }

    const ADELE: (Uuid, Uuid) = (Uuid::from_u128(1), Uuid::from_u128(2));
    const MEGAN: (Uuid, Uuid) = (Uuid::from_u128(1), Uuid::from_u128(3));

    #[test]
    fn no_limit_admits_everything() {
        let mut log = RequestLog::new();
        for i in 0..1000 {
            assert!(admit(None, &mut log, ADELE, at(i)).is_ok());
        }
    }

    #[test]
    fn the_request_over_the_limit_gets_50196_with_429_and_retry_after() {
        let limit = Some(UserRateLimit::new(3, 10));
        let mut log = RequestLog::new();
        for i in 0..3 {
            assert!(admit(limit, &mut log, ADELE, at(i * 1000)).is_ok(), "request {i}");
        }
        let e = admit(limit, &mut log, ADELE, at(2500)).expect_err("the fourth is refused");
        assert_eq!((e.error.as_str(), e.code, e.status.as_u16()), ("invalid_grant", 50196, 429));
        // The first request (t=0) leaves the 10 s window at t=10 s: 7.5 s → 8.
        assert_eq!(e.retry_after, Some(8));
    }

    #[test]
    fn users_are_counted_apart_and_the_window_slides() {
        let limit = Some(UserRateLimit::new(1, 5));
        let mut log = RequestLog::new();
        assert!(admit(limit, &mut log, ADELE, at(0)).is_ok());
        assert!(admit(limit, &mut log, MEGAN, at(10)).is_ok(), "another user is not throttled");
        assert!(admit(limit, &mut log, ADELE, at(4999)).is_err());
        assert!(admit(limit, &mut log, ADELE, at(5000)).is_ok(), "room once the window passed");
    }

    #[test]
    fn a_zero_limit_refuses_everything_for_a_whole_window() {
        let mut log = RequestLog::new();
        let e = admit(Some(UserRateLimit::new(0, 30)), &mut log, ADELE, at(0)).expect_err("no");
        assert_eq!(e.retry_after, Some(30));
    }

    #[test]
    fn refused_requests_do_not_extend_the_window() {
        let limit = Some(UserRateLimit::new(1, 5));
        let mut log = RequestLog::new();
        assert!(admit(limit, &mut log, ADELE, at(0)).is_ok());
        for ms in [1000, 2000, 3000, 4000] {
            let e = admit(limit, &mut log, ADELE, at(ms)).expect_err("refused");
            assert_eq!(e.retry_after, Some(u64::try_from((5000 - ms) / 1000).unwrap_or(0)));
        }
        assert!(admit(limit, &mut log, ADELE, at(5000)).is_ok());
    }
}
