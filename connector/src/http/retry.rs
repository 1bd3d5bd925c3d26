//! `Retry-After` parsing and exponential backoff with full jitter (`graph.md` §4).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// No single wait is longer than a day, whatever the header says; the retry budget decides
/// whether even that is acceptable.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// First backoff step and the cap of one step when Graph gives no `Retry-After`.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(16);

/// Parses `Retry-After` as seconds (integer or fractional, as Graph documents `2.128`) or as an
/// HTTP-date relative to `now`. Dates in the past mean "now". Garbage, negative and non-finite
/// values are `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is the form every modern server sends.
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Full-jitter backoff for retry number `retry` (1-based): uniform in `[0, min(cap, base·2^(retry−1))]`.
pub fn backoff(retry: u32) -> Duration {
    let ceiling =
        BACKOFF_BASE.saturating_mul(1 << retry.saturating_sub(1).min(10)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z").expect("date").with_timezone(&Utc)
    }

    #[test]
    fn integer_fractional_and_http_date_forms_parse() {
        assert_eq!(parse_retry_after("5", now()), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 2.128 ", now()), Some(Duration::from_millis(2128)));
        assert_eq!(
            parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999999", now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn zero_means_now_and_an_overflowing_number_is_refused() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("0.0", now()), Some(Duration::ZERO));
        // 400 digits parse to an infinite f64: not a wait.
        assert_eq!(parse_retry_after(&format!("1{}", "0".repeat(400)), now()), None);
    }

    #[test]
    fn backoff_spreads_over_the_whole_exponential_ceiling() {
        // Uniform in [0, ceiling]: over 200 draws the largest lies in the top half with
        // probability 1 − 2⁻²⁰⁰.
        for (retry, ceiling) in [(1, BACKOFF_BASE), (3, 4 * BACKOFF_BASE), (5, BACKOFF_CAP)] {
            let largest = (0..200).map(|_| backoff(retry)).max().expect("draws");
            assert!(largest > ceiling / 2 && largest <= ceiling, "retry {retry}: {largest:?}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "soon", "-1", "1e3", "NaN", "inf", "1.2.3", "."] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_ceiling() {
        for retry in 1..20 {
            let ceiling = BACKOFF_BASE.saturating_mul(1 << (retry - 1).min(10)).min(BACKOFF_CAP);
            assert!(backoff(retry) <= ceiling);
        }
    }

    proptest! {
        #[test]
        fn any_input_parses_to_a_bounded_wait_or_none(s in "\\PC{0,40}") {
            if let Some(d) = parse_retry_after(&s, now()) {
                prop_assert!(d <= MAX_RETRY_AFTER);
            }
        }

        #[test]
        fn whole_and_fractional_seconds_round_trip(ms in 0u64..10_000_000) {
            let text = format!("{}.{:03}", ms / 1000, ms % 1000);
            prop_assert_eq!(parse_retry_after(&text, now()), Some(Duration::from_millis(ms)));
            prop_assert_eq!(parse_retry_after(&(ms / 1000).to_string(), now()), Some(Duration::from_secs(ms / 1000)));
        }

        #[test]
        fn http_dates_give_the_distance_from_now(secs in 0i64..86_400) {
            let at = now() + chrono::Duration::seconds(secs);
            let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            prop_assert_eq!(parse_retry_after(&text, now()), Some(Duration::from_secs(secs as u64)));
        }
    }
}
