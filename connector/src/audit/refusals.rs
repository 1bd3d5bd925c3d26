//! Refusals without an accepted token, counted per peer and aggregated, so that a flood of
//! garbage bearers costs neither fsyncs nor disk.
//!
//! * **Aggregation**: per (subject, reason) an aggregation window opens with the first refusal,
//!   which is recorded at once with `count: 1`. Later refusals in the window are only counted;
//!   when the window closes, one record carries their count (and the first one's request id)
//!   and opens the next window. So a subject gets at most one record per interval whatever the
//!   rate, and no refusal goes uncounted.
//! * **Budget**: a peer (IPv6: its /64) that has been refused `per_peer` times in a window gets
//!   429 with `Retry-After` until the window ends, before any work on its token beyond
//!   reading the header.
//! * Per-caller 429s (the authenticated rate limit) aggregate the same way, per caller.

use std::{collections::HashMap, net::IpAddr, sync::Mutex, time::Duration};

use tokio::time::Instant;

use super::AuditEvent;
use crate::domain::{ObjectId, TenantId};

/// Subjects tracked at most; beyond it new ones share one overflow window (memory stays
/// bounded under address spraying).
const MAX_TRACKED: usize = 100_000;

/// The reason recorded for requests answered 429 by the per-peer budget.
pub const PEER_OVER_BUDGET: &str = "peer_rate_limited";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Peer(Option<IpAddr>),
    Caller(TenantId, ObjectId),
    Overflow,
}

struct Window {
    started: Instant,
    suppressed: u64,
    first_suppressed: Option<String>,
    /// The peer of the latest refusal (a caller's 429s may come from several addresses).
    peer: Option<IpAddr>,
}

struct Budget {
    started: Instant,
    refused: u32,
}

#[derive(Default)]
struct State {
    windows: HashMap<(Subject, &'static str), Window>,
    budgets: HashMap<Option<IpAddr>, Budget>,
}

/// The aggregation and budget state of one connector.
pub struct Refusals {
    interval: Duration,
    per_peer: u32,
    state: Mutex<State>,
}

impl std::fmt::Debug for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusals")
            .field("interval", &self.interval)
            .field("per_peer", &self.per_peer)
            .finish_non_exhaustive()
    }
}

/// The budget key of an address: IPv6 hosts get a /64 each, so one host cannot rotate
/// addresses inside its prefix to escape it.
fn budget_key(peer: Option<IpAddr>) -> Option<IpAddr> {
    match peer {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            Some(IpAddr::V6(bits.into()))
        }
        Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4),
        other => other,
    }
}

impl Refusals {
    pub fn new(interval: Duration, per_peer: u32) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(10)),
            per_peer: per_peer.max(1),
            state: Mutex::new(State::default()),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long `peer` must wait when it has used its refusal budget for this window.
    pub fn peer_over_budget(&self, peer: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let budget = state.budgets.get(&budget_key(peer))?;
        let ends = budget.started + self.interval;
        (budget.refused >= self.per_peer && now < ends).then(|| ends - now)
    }

    /// A refused token from `peer`. `charge` says whether it counts against the peer's budget
    /// (not when the connector itself cannot check tokens). Returns the record to write now
    /// when this refusal opens a window.
    pub fn token_refused(
        &self,
        peer: Option<IpAddr>,
        reason: &'static str,
        request_id: &str,
        who: Option<(TenantId, Option<ObjectId>)>,
        charge: bool,
    ) -> Option<AuditEvent> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if charge {
            let interval = self.interval;
            let tracked = state.budgets.len();
            let key = budget_key(peer);
            if tracked >= MAX_TRACKED && !state.budgets.contains_key(&key) {
                state.budgets.retain(|_, b| now < b.started + interval);
            }
            if state.budgets.len() < MAX_TRACKED || state.budgets.contains_key(&key) {
                let budget =
                    state.budgets.entry(key).or_insert(Budget { started: now, refused: 0 });
                if now >= budget.started + interval {
                    *budget = Budget { started: now, refused: 0 };
                }
                budget.refused = budget.refused.saturating_add(1);
            }
        }
        let opened = Self::note(&mut state, Subject::Peer(peer), reason, peer, request_id, now);
        opened.then(|| AuditEvent::TokenRefused {
            reason,
            peer,
            request_id: request_id.to_owned(),
            count: 1,
            tenant_id: who.map(|(t, _)| t),
            user_id: who.and_then(|(_, o)| o),
        })
    }

    /// A per-caller 429. Returns the record to write now when this opens a window.
    pub fn rate_limited(
        &self,
        tenant_id: TenantId,
        user_id: ObjectId,
        peer: Option<IpAddr>,
        request_id: &str,
    ) -> Option<AuditEvent> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let subject = Subject::Caller(tenant_id, user_id);
        Self::note(&mut state, subject, "rate_limited", peer, request_id, now).then(|| {
            AuditEvent::RateLimited {
                tenant_id,
                user_id,
                peer,
                request_id: request_id.to_owned(),
                count: 1,
            }
        })
    }

    /// Counts one refusal; true when it opened a window (record it now).
    fn note(
        state: &mut State,
        subject: Subject,
        reason: &'static str,
        peer: Option<IpAddr>,
        request_id: &str,
        now: Instant,
    ) -> bool {
        let mut key = (subject, reason);
        if state.windows.len() >= MAX_TRACKED && !state.windows.contains_key(&key) {
            key = (Subject::Overflow, reason);
        }
        match state.windows.get_mut(&key) {
            Some(w) => {
                w.suppressed += 1;
                w.peer = peer;
                if w.first_suppressed.is_none() {
                    w.first_suppressed = Some(request_id.to_owned());
                }
                false
            }
            None => {
                state.windows.insert(
                    key,
                    Window { started: now, suppressed: 0, first_suppressed: None, peer },
                );
                true
            }
        }
    }

    /// The records of windows that have closed (of every window when `all`, at shutdown).
    /// A closed window with counted refusals opens the next one; an idle one is forgotten.
    pub fn flush(&self, all: bool) -> Vec<AuditEvent> {
        let now = Instant::now();
        let interval = self.interval;
        let mut out = Vec::new();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.windows.retain(|(subject, reason), w| {
            if !all && now < w.started + interval {
                return true;
            }
            if w.suppressed == 0 {
                return false;
            }
            let request_id = w.first_suppressed.take().unwrap_or_default();
            out.push(match *subject {
                Subject::Caller(tenant_id, user_id) => AuditEvent::RateLimited {
                    tenant_id,
                    user_id,
                    peer: w.peer,
                    request_id,
                    count: w.suppressed,
                },
                Subject::Peer(peer) => AuditEvent::TokenRefused {
                    reason,
                    peer,
                    request_id,
                    count: w.suppressed,
                    tenant_id: None,
                    user_id: None,
                },
                Subject::Overflow => AuditEvent::TokenRefused {
                    reason,
                    peer: None,
                    request_id,
                    count: w.suppressed,
                    tenant_id: None,
                    user_id: None,
                },
            });
            w.started = now;
            w.suppressed = 0;
            !all
        });
        state.budgets.retain(|_, b| now < b.started + interval);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(events: &[AuditEvent]) -> u64 {
        events
            .iter()
            .map(|e| match e {
                AuditEvent::TokenRefused { count, .. } | AuditEvent::RateLimited { count, .. } => {
                    *count
                }
                _ => 0,
            })
            .sum()
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_makes_one_record_per_window_and_loses_no_count() {
        let refusals = Refusals::new(Duration::from_secs(10), 1_000_000);
        let peer = Some("198.51.100.7".parse().unwrap());
        let mut records = Vec::new();
        for i in 0..3_000 {
            if i % 1_000 == 0 {
                tokio::time::advance(Duration::from_secs(5)).await;
                records.extend(refusals.flush(false));
            }
            records.extend(refusals.token_refused(peer, "malformed", &i.to_string(), None, true));
        }
        records.extend(refusals.flush(true));
        assert_eq!(count(&records), 3_000);
        // 15 s of flood with a 10 s window: the opening record, one closing record, the rest
        // at shutdown.
        assert!(records.len() <= 3, "{} records", records.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_over_its_budget_waits_for_the_window_to_end() {
        let refusals = Refusals::new(Duration::from_secs(60), 3);
        let peer = Some("2001:db8::1".parse().unwrap());
        let neighbour = Some("2001:db8::2".parse().unwrap());
        let other = Some("2001:db9::1".parse().unwrap());
        for i in 0..3 {
            assert!(refusals.peer_over_budget(peer).is_none());
            refusals.token_refused(peer, "malformed", &i.to_string(), None, true);
        }
        assert!(refusals.peer_over_budget(peer).unwrap() <= Duration::from_secs(60));
        assert!(refusals.peer_over_budget(neighbour).is_some(), "same /64");
        assert!(refusals.peer_over_budget(other).is_none());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(refusals.peer_over_budget(peer).is_none());
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// Peer `n` of a block of distinct IPv4 addresses.
    fn nth_peer(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4((0x0a00_0000 + n).into()))
    }

    #[test]
    fn an_ipv6_peer_is_its_64_and_an_ipv4_mapped_one_its_ipv4_address() {
        assert_eq!(budget_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(budget_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(budget_key(ip("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(budget_key(None), None);
        let refusals = Refusals::new(Duration::ZERO, 0);
        assert_eq!(refusals.interval(), Duration::from_millis(10), "the interval's floor");
        assert_eq!(format!("{refusals:?}"), "Refusals { interval: 10ms, per_peer: 1, .. }");
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_wait_runs_to_the_end_of_the_window_exactly() {
        let refusals = Refusals::new(Duration::from_secs(60), 2);
        let peer = ip("198.51.100.7");
        for i in 0..2 {
            refusals.token_refused(peer, "malformed", &i.to_string(), None, true);
        }
        assert_eq!(refusals.peer_over_budget(peer), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(refusals.flush(false).is_empty());
        assert_eq!(refusals.peer_over_budget(peer), Some(Duration::from_secs(40)), "kept by flush");
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(refusals.peer_over_budget(peer), None, "the window has ended");
        // A new window starts from zero.
        refusals.token_refused(peer, "malformed", "2", None, true);
        assert_eq!(refusals.peer_over_budget(peer), None);
        refusals.token_refused(peer, "malformed", "3", None, false);
        assert_eq!(refusals.peer_over_budget(peer), None, "an uncharged refusal does not count");
    }

    /// At `MAX_TRACKED` budgets, a new peer is charged only once expired budgets make room,
    /// and the sweep keeps the budgets still running.
    #[tokio::test(start_paused = true)]
    async fn at_capacity_expired_budgets_make_room_and_running_ones_stay() {
        let refusals = Refusals::new(Duration::from_secs(60), 1);
        let capacity = MAX_TRACKED as u32;
        for n in 0..capacity - 1 {
            refusals.token_refused(nth_peer(n), "malformed", "x", None, true);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let (running, late) = (ip("2001:db8::1"), ip("2001:db9::1"));
        refusals.token_refused(running, "malformed", "x", None, true);
        refusals.token_refused(late, "malformed", "x", None, true);
        assert_eq!(refusals.peer_over_budget(late), None, "no room: not tracked");
        tokio::time::advance(Duration::from_secs(30)).await;
        refusals.token_refused(late, "malformed", "x", None, true);
        assert!(refusals.peer_over_budget(late).is_some(), "room made by expired budgets");
        assert_eq!(refusals.peer_over_budget(running), Some(Duration::from_secs(30)));
    }

    /// A flush forgets the budgets whose window has ended, at its end exactly, so the table
    /// holds only the peers refused within the last interval.
    #[tokio::test(start_paused = true)]
    async fn a_flush_forgets_budgets_exactly_at_the_end_of_their_window() {
        let refusals = Refusals::new(Duration::from_secs(60), 2);
        let budgets = || refusals.state.lock().unwrap().budgets.len();
        refusals.token_refused(ip("198.51.100.7"), "malformed", "0", None, true);
        tokio::time::advance(Duration::from_secs(59)).await;
        refusals.flush(false);
        assert_eq!(budgets(), 1, "still running");
        tokio::time::advance(Duration::from_secs(1)).await;
        refusals.flush(false);
        assert_eq!(budgets(), 0, "ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_closes_exactly_after_its_interval_with_the_refusals_it_counted() {
        let refusals = Refusals::new(Duration::from_secs(10), 100);
        let (peer, idle_peer) = (ip("198.51.100.7"), ip("198.51.100.8"));
        assert!(refusals.token_refused(peer, "malformed", "0", None, true).is_some());
        assert!(refusals.token_refused(idle_peer, "expired", "9", None, true).is_some());
        assert!(refusals.token_refused(peer, "malformed", "1", None, true).is_none());
        refusals.token_refused(peer, "malformed", "2", None, true);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(refusals.flush(false).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let closed = refusals.flush(false);
        assert!(
            matches!(&closed[..], [AuditEvent::TokenRefused { reason: "malformed", count: 2, request_id, .. }] if request_id == "1"),
            "{closed:?}"
        );
        // The closed window opened the next one: a refusal in it is only counted. The idle
        // window of the other peer was forgotten: its next refusal is recorded at once.
        assert!(refusals.token_refused(peer, "malformed", "3", None, true).is_none());
        assert!(refusals.token_refused(idle_peer, "expired", "10", None, true).is_some());
        assert_eq!(count(&refusals.flush(true)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_callers_429s_aggregate_like_refusals() {
        let refusals = Refusals::new(Duration::from_secs(10), 1);
        let (tenant, user) =
            (TenantId::from(uuid::Uuid::from_u128(1)), ObjectId::from(uuid::Uuid::from_u128(2)));
        let first = refusals.rate_limited(tenant, user, ip("198.51.100.7"), "0");
        assert!(matches!(first, Some(AuditEvent::RateLimited { count: 1, .. })), "{first:?}");
        assert!(refusals.rate_limited(tenant, user, ip("198.51.100.8"), "1").is_none());
        let closed = refusals.flush(true);
        assert!(
            matches!(&closed[..], [AuditEvent::RateLimited { count: 1, peer, .. }] if *peer == ip("198.51.100.8")),
            "{closed:?}"
        );
    }

    /// At `MAX_TRACKED` windows, new subjects share one overflow window: the first is
    /// recorded at once, the rest are counted without a peer.
    #[tokio::test(start_paused = true)]
    async fn at_capacity_new_subjects_share_one_overflow_window() {
        let refusals = Refusals::new(Duration::from_secs(10), 1);
        for n in 0..MAX_TRACKED as u32 {
            assert!(refusals.token_refused(nth_peer(n), "malformed", "x", None, false).is_some());
        }
        assert!(refusals.token_refused(ip("2001:db8::1"), "malformed", "a", None, false).is_some());
        assert!(refusals.token_refused(ip("2001:db8::2"), "malformed", "b", None, false).is_none());
        let closed = refusals.flush(true);
        assert!(
            matches!(&closed[..], [AuditEvent::TokenRefused { peer: None, count: 1, request_id, .. }] if request_id == "b"),
            "{closed:?}"
        );
    }
}
