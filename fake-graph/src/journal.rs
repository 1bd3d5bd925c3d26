//! The request journal, in the terms of Microsoft Graph activity logs (graph.md §14).
//!
//! One entry per request that reached `/v1.0/…`, with the caller's identity from its token
//! (never the token itself). Tests query it to prove what the connector did — and did not — do.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Caller;

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

/// What the request path stores for one request: the same facts as a [`JournalEntry`], kept
/// cheap to record (one `String` for the URI, the caller shared with the request, ids not yet
/// formatted). Entries are built from records only when the journal is read, which tests do
/// rarely and the request path does never.
pub struct Record {
    pub time: DateTime<Utc>,
    pub method: Method,
    /// Path and query as received.
    pub request_uri: String,
    /// The path alone when it is not a prefix of `request_uri` (it always is for origin-form
    /// requests).
    pub path: Option<String>,
    pub caller: Option<Arc<Caller>>,
    pub status: u16,
    pub duration_ms: u64,
    pub request_id: Uuid,
    /// The client's `client-request-id`; `None` means the request id was echoed.
    pub client_request_id: Option<String>,
    pub mutating: bool,
    pub retry_violation: bool,
    pub fault: Option<String>,
}

impl Record {
    /// The path without the query.
    fn path(&self) -> &str {
        match &self.path {
            Some(p) => p,
            None => self.request_uri.split_once('?').map_or(&self.request_uri, |(p, _)| p),
        }
    }

    fn entry(&self) -> JournalEntry {
        let c = self.caller.as_deref();
        let request_id = self.request_id.to_string();
        JournalEntry {
            time: self.time,
            request_method: self.method.to_string(),
            request_uri: self.request_uri.clone(),
            path: self.path().to_owned(),
            tenant_id: c.map(|c| c.tid),
            user_id: c.map(|c| c.oid),
            app_id: c.map(|c| c.app_id.clone()),
            sign_in_activity_id: c.map(|c| c.uti.clone()),
            scopes: c.map(|c| c.scp.clone()),
            response_status_code: self.status,
            duration_ms: self.duration_ms,
            client_request_id: self.client_request_id.clone().unwrap_or_else(|| request_id.clone()),
            request_id,
            mutating: self.mutating,
            retry_violation: self.retry_violation,
            fault: self.fault.clone(),
        }
    }
}

/// Entries per journal chunk: appends never move earlier entries (no large reallocations on
/// the request path).
const CHUNK: usize = 4096;
/// Most entries kept (a record is about 250 bytes with its URI: about 256 MB at worst); beyond
/// it the oldest chunk is dropped, so a long-running benchmark cannot grow the journal without
/// bound.
const MAX_ENTRIES: usize = 1 << 20;

/// The journal: append-only until [`Journal::clear`] (or until `MAX_ENTRIES` is exceeded).
#[derive(Default)]
pub struct Journal {
    chunks: Mutex<VecDeque<Vec<Record>>>,
}

impl Journal {
    pub fn push(&self, record: Record) {
        let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if chunks.back().is_none_or(|c| c.len() >= CHUNK) {
            if chunks.len() * CHUNK >= MAX_ENTRIES {
                chunks.pop_front();
            }
            chunks.push_back(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = chunks.back_mut() {
            last.push(record);
        }
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        self.select(|_| true)
    }

    pub fn clear(&self) {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Requests made with tokens of this user.
    pub fn for_user(&self, tid: Uuid, oid: Uuid) -> Vec<JournalEntry> {
        self.select(|r| r.caller.as_ref().is_some_and(|c| c.tid == tid && c.oid == oid))
    }

    /// Every request that tried to change something.
    pub fn mutating(&self) -> Vec<JournalEntry> {
        self.select(|r| r.mutating)
    }

    /// Requests that ignored a `Retry-After`.
    pub fn retry_violations(&self) -> Vec<JournalEntry> {
        self.select(|r| r.retry_violation)
    }

    /// Entries of the records `keep` accepts (filtering records first spares building the
    /// entries that are dropped).
    fn select(&self, keep: impl Fn(&Record) -> bool) -> Vec<JournalEntry> {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .filter(|r| keep(r))
            .map(Record::entry)
            .collect()
    }

    pub fn filter(&self, keep: impl Fn(&JournalEntry) -> bool) -> Vec<JournalEntry> {
        self.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .map(Record::entry)
            .filter(|e| keep(e))
            .collect()
    }
}
