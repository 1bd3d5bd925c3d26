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
}
