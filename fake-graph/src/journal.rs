//! The request journal, in the terms of Microsoft Graph activity logs (graph.md §14).
//!
//! One entry per request that reached `/v1.0/…`, with the caller's identity from its token
//! (never the token itself). Tests query it to prove what the connector did — and did not — do.

use std::{collections::VecDeque, sync::Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One journalled request (`MicrosoftGraphActivityLogs` columns, camelCased).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// `TimeGenerated`: when the request was received (shared clock).
    pub time: DateTime<Utc>,
    pub request_method: String,
    /// `RequestUri`: path and query, as received.
    pub request_uri: String,
    /// The path alone (no query), for matching.
    pub path: String,
    /// `AadTenantId`.
    pub tenant_id: Option<Uuid>,
    /// `UserId`: the token's `oid`.
    pub user_id: Option<Uuid>,
    /// `AppId`.
    pub app_id: Option<String>,
    /// `SignInActivityId`: the token's `uti`.
    pub sign_in_activity_id: Option<String>,
    /// `Scopes`.
    pub scopes: Option<String>,
    pub response_status_code: u16,
    pub duration_ms: u64,
    pub request_id: String,
    pub client_request_id: String,
    /// A write (PATCH/PUT/DELETE, or a POST outside the read-only query endpoints).
    pub mutating: bool,
    /// The caller came back before the `Retry-After` it was given had elapsed.
    pub retry_violation: bool,
    /// Name of the scripted fault that answered, if any.
    pub fault: Option<String>,
}

/// Entries per journal chunk: appends never move earlier entries (no large reallocations on
/// the request path).
const CHUNK: usize = 4096;
/// Most entries kept (about 250 MB at worst); beyond it the oldest chunk is dropped, so a
/// long-running benchmark cannot grow the journal without bound.
const MAX_ENTRIES: usize = 1 << 20;

/// The journal: append-only until [`Journal::clear`] (or until [`MAX_ENTRIES`] is exceeded).
#[derive(Default)]
pub struct Journal {
    chunks: Mutex<VecDeque<Vec<JournalEntry>>>,
}

impl Journal {
    pub fn push(&self, entry: JournalEntry) {
        let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if chunks.back().is_none_or(|c| c.len() >= CHUNK) {
            if chunks.len() * CHUNK >= MAX_ENTRIES {
                chunks.pop_front();
            }
            chunks.push_back(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = chunks.back_mut() {
            last.push(entry);
        }
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        self.filter(|_| true)
    }

    pub fn clear(&self) {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Requests made with tokens of this user.
    pub fn for_user(&self, tid: Uuid, oid: Uuid) -> Vec<JournalEntry> {
        self.filter(|e| e.tenant_id == Some(tid) && e.user_id == Some(oid))
    }

    /// Every request that tried to change something.
    pub fn mutating(&self) -> Vec<JournalEntry> {
        self.filter(|e| e.mutating)
    }

    /// Requests that ignored a `Retry-After`.
    pub fn retry_violations(&self) -> Vec<JournalEntry> {
        self.filter(|e| e.retry_violation)
    }

    pub fn filter(&self, keep: impl Fn(&JournalEntry) -> bool) -> Vec<JournalEntry> {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }
}
