//! Scripted, deterministic faults (graph.md §4.5), Outlook's concurrency limit, and the
//! `Retry-After` compliance check.
//!
//! A [`FaultRule`] matches requests by method, path prefix, tenant and user; it lets the first
//! `skip` matching requests through and then answers the next `times` of them (all of them when
//! `times` is `None`) with its [`Fault`]. Counting is per rule, so "the 3rd request to
//! `/v1.0/me/messages` gets a 429" is `skip: 2, times: Some(1)`.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::http::{HeaderName, StatusCode, header::RETRY_AFTER};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::GraphError;

/// How a throttling answer states its delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum RetryAfter {
    /// `Retry-After: 5`.
    Seconds(u64),
    /// `Retry-After: 2.128` (the documented example).
    Fractional(f64),
    /// `Retry-After: Tue, 15 Nov 1994 08:12:31 GMT`, this many seconds after the shared clock's now.
    HttpDate(u64),
    /// No header (OneNote, Conditional Access): the client must back off on its own.
    Absent,
}

impl RetryAfter {
    /// The header value and the delay it asks for.
    pub fn render(&self, now: DateTime<Utc>) -> (Option<String>, Duration) {
        match self {
            RetryAfter::Seconds(s) => (Some(s.to_string()), Duration::from_secs(*s)),
            RetryAfter::Fractional(f) => {
                (Some(format!("{f}")), Duration::from_secs_f64(f.max(0.0)))
            }
            RetryAfter::HttpDate(s) => {
                let at = now + chrono::Duration::seconds(*s as i64);
                (Some(at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()), Duration::from_secs(*s))
            }
            RetryAfter::Absent => (None, Duration::ZERO),
        }
    }
}

/// The throttling body to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ThrottleKind {
    /// Graph gateway / Outlook `TooManyRequests`.
    TooManyRequests,
    /// Outlook's `ApplicationThrottled` (MailboxConcurrency).
    ApplicationThrottled,
    /// SharePoint's `activityLimitReached` with `RateLimit-*` headers.
    ActivityLimitReached,
}

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// 429 with the given `Retry-After` style.
    Throttle { retry_after: RetryAfter, throttle: ThrottleKind },
    /// 503 `serviceNotAvailable`, optionally with `Retry-After`.
    ServiceUnavailable { retry_after: RetryAfter },
    /// 504 `UnknownError` with an empty message.
    GatewayTimeout,
    /// The normal answer, delayed.
    Latency { millis: u64 },
    /// The normal status and headers, but the body cut in half (malformed JSON).
    TruncatedBody,
    /// Headers sent, then the connection is dropped before any body byte.
    ConnectionReset,
}

/// Which requests a rule applies to (all `None` = every `/v1.0` request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultMatch {
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix, compared case-insensitively (`/v1.0/me/messages`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub tenant: Option<Uuid>,
    #[serde(default)]
    pub user: Option<Uuid>,
}

/// A scripted fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: FaultMatch,
    /// Matching requests let through before the fault starts.
    #[serde(default)]
    pub skip: u64,
    /// How many matching requests get the fault; `None` = all after `skip`.
    #[serde(default)]
    pub times: Option<u64>,
    pub fault: Fault,
}

impl FaultRule {
    /// A rule answering every request with `fault`.
    pub fn always(fault: Fault) -> Self {
        Self { name: None, matcher: FaultMatch::default(), skip: 0, times: None, fault }
    }

    #[must_use]
    pub fn path(mut self, prefix: &str) -> Self {
        self.matcher.path_prefix = Some(prefix.to_owned());
        self
    }

    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.matcher.method = Some(method.to_owned());
        self
    }

    #[must_use]
    pub fn user(mut self, tid: Uuid, oid: Uuid) -> Self {
        self.matcher.tenant = Some(tid);
        self.matcher.user = Some(oid);
        self
    }

    #[must_use]
    pub fn tenant(mut self, tid: Uuid) -> Self {
        self.matcher.tenant = Some(tid);
        self
    }

    /// Fires on the `n`th matching request only (1-based).
    #[must_use]
    pub fn nth(mut self, n: u64) -> Self {
        self.skip = n.saturating_sub(1);
        self.times = Some(1);
        self
    }

    #[must_use]
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    fn applies(&self, method: &str, path: &str, tid: Option<Uuid>, oid: Option<Uuid>) -> bool {
        let m = &self.matcher;
        m.method.as_deref().is_none_or(|x| x.eq_ignore_ascii_case(method))
            && m.path_prefix
                .as_deref()
                .is_none_or(|p| path.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()))
            && m.tenant.is_none_or(|t| Some(t) == tid)
            && m.user.is_none_or(|u| Some(u) == oid)
    }
}

struct ActiveRule {
    rule: FaultRule,
    seen: AtomicU64,
}

/// Who came back from a throttle: (tenant, user, app id, method, lower-case path).
pub type RetryKey = (Uuid, Uuid, String, String, String);

/// The fault engine of one server.
pub struct Faults {
    rules: Mutex<Vec<ActiveRule>>,
    /// In-flight Outlook requests per counted mailbox (the owner, or nil when the scope is the
    /// app across mailboxes) and app id.
    in_flight: Mutex<HashMap<Uuid, HashMap<String, u32>>>,
    /// Outlook's concurrent-request limit per [`ConcurrencyScope`]; 0 disables it.
    pub mailbox_concurrency: AtomicU64,
    /// What the limit counts over: false per (app, mailbox), true per app.
    per_app: AtomicBool,
    /// Earliest time each (tenant, user, app, method, path) may come back after a throttle.
    not_before: Mutex<HashMap<RetryKey, DateTime<Utc>>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            mailbox_concurrency: AtomicU64::new(4),
            per_app: AtomicBool::new(false),
            not_before: Mutex::new(HashMap::new()),
        }
    }
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ActiveRule { rule, seen: AtomicU64::new(0) });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.not_before.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The first rule that fires for this request (every matching rule counts the request).
    pub fn pick(
        &self,
        method: &str,
        path: &str,
        tid: Option<Uuid>,
        oid: Option<Uuid>,
    ) -> Option<(String, Fault)> {
        let rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let mut chosen = None;
        for (i, active) in rules.iter().enumerate() {
            if !active.rule.applies(method, path, tid, oid) {
                continue;
            }
            let n = active.seen.fetch_add(1, Ordering::Relaxed);
            let fires =
                n >= active.rule.skip && active.rule.times.is_none_or(|t| n < active.rule.skip + t);
            if fires && chosen.is_none() {
                let name = active.rule.name.clone().unwrap_or_else(|| format!("rule{}", i + 1));
                chosen = Some((name, active.rule.fault.clone()));
            }
        }
        chosen
    }

    /// Sets what Outlook's concurrency limit counts over (requests already in flight release
    /// the slot they took).
    pub fn set_concurrency_scope(&self, scope: ConcurrencyScope) {
        self.per_app.store(scope == ConcurrencyScope::PerApp, Ordering::Relaxed);
    }

    /// What Outlook's concurrency limit counts over now.
    pub fn concurrency_scope(&self) -> ConcurrencyScope {
        if self.per_app.load(Ordering::Relaxed) {
            ConcurrencyScope::PerApp
        } else {
            ConcurrencyScope::PerAppAndMailbox
        }
    }

    /// Takes an Outlook concurrency slot for `app` on `mailbox`'s owner; `None` when the limit
    /// is reached in the current [`ConcurrencyScope`].
    pub fn enter_mailbox<'a>(&'a self, app: &'a str, mailbox: Uuid) -> Option<MailboxSlot<'a>> {
        let limit = self.mailbox_concurrency.load(Ordering::Relaxed);
        // Per app, every mailbox shares one counter (kept under the nil id).
        let counted = match self.concurrency_scope() {
            ConcurrencyScope::PerAppAndMailbox => mailbox,
            ConcurrencyScope::PerApp => Uuid::nil(),
        };
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let per_app = map.entry(counted).or_default();
        // Looked up by `&str`: the app id is copied only the first time it is seen.
        if !per_app.contains_key(app) {
            per_app.insert(app.to_owned(), 0);
        }
        let n = per_app.get_mut(app)?;
        if limit > 0 && u64::from(*n) >= limit {
            return None;
        }
        *n += 1;
        Some(MailboxSlot { faults: self, app, mailbox: counted })
    }

    /// Records that this caller was told to wait until `until`.
    pub fn record_throttle(&self, key: RetryKey, until: DateTime<Utc>) {
        self.not_before.lock().unwrap_or_else(|e| e.into_inner()).insert(key, until);
    }

    /// Whether any caller was told to wait (cheap pre-check: most requests skip building a
    /// [`RetryKey`]).
    pub fn holding_off(&self) -> bool {
        !self.not_before.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Whether this request comes back before its `Retry-After` elapsed (and forgets the mark).
    pub fn violates_retry_after(
        &self,
        key: &(Uuid, Uuid, String, String, String),
        now: DateTime<Utc>,
    ) -> bool {
        let mut map = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(until) if now < *until => true,
            Some(_) => {
                map.remove(key);
                false
            }
            None => false,
        }
    }
}

/// What Outlook's limit of concurrent requests counts over. Microsoft's throttling page has
/// said both (`graph.md` §4.2), and the refusal reads "MailboxConcurrency" either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConcurrencyScope {
    /// Each (app, mailbox) pair has its own allowance: one app may have the limit in flight on
    /// every mailbox at once.
    #[default]
    PerAppAndMailbox,
    /// One allowance per app, whichever mailboxes its requests address: the stricter reading.
    PerApp,
}

/// An occupied Outlook concurrency slot; released on drop.
pub struct MailboxSlot<'a> {
    faults: &'a Faults,
    app: &'a str,
    /// The counter the slot was taken from (the mailbox, or nil per app).
    mailbox: Uuid,
}

impl Drop for MailboxSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.faults.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.mailbox).and_then(|m| m.get_mut(self.app)) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The 429 body and headers of a throttling fault.
pub fn throttle_error(
    kind: ThrottleKind,
    retry_after: &RetryAfter,
    now: DateTime<Utc>,
) -> (GraphError, Duration) {
    let (header, delay) = retry_after.render(now);
    let mut err = match kind {
        ThrottleKind::TooManyRequests => {
            let mut e = GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            );
            e.inner_extra =
                Some(json!({"code": "429", "message": "Please retry after", "status": "429"}));
            e
        }
        ThrottleKind::ApplicationThrottled => {
            let mut e = GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            e.omit_inner = true;
            e
        }
        ThrottleKind::ActivityLimitReached => {
            let mut e = GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "activityLimitReached",
                "The request has been throttled",
            );
            e.inner_extra =
                Some(json!({"code": "throttledRequest", "innerError": {"code": "quota"}}));
            e.headers.push((HeaderName::from_static("ratelimit-limit"), "1200".into()));
            e.headers.push((HeaderName::from_static("ratelimit-remaining"), "0".into()));
            e.headers.push((
                HeaderName::from_static("ratelimit-reset"),
                delay.as_secs().max(1).to_string(),
            ));
            e
        }
    };
    if let Some(h) = header {
        err.headers.push((RETRY_AFTER, h));
    }
    (err, delay)
}

/// The 503 of a `ServiceUnavailable` fault.
pub fn unavailable_error(retry_after: &RetryAfter, now: DateTime<Utc>) -> (GraphError, Duration) {
    let (header, delay) = retry_after.render(now);
    let mut err = GraphError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
    );
    if let Some(h) = header {
        err.headers.push((RETRY_AFTER, h));
    }
    (err, delay)
}
