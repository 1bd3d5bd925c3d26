//! The audit log: one JSON record per line, hash-chained, written durably by one writer
//! thread, separate from the diagnostic logs.
//!
//! Every record has `seq` (1, 2, ...), `prev` (hex SHA-256 of the previous line's bytes, 64
//! zeros for the first record) and `hash` (hex SHA-256 of the record's canonical JSON without
//! `hash`: keys sorted, compact; with `audit.hmac_key` set, HMAC-SHA256 under that key and the
//! record says `"keyed": true`). Editing a line breaks its `hash`; deleting or reordering lines
//! breaks `seq` and `prev`; with a key, nobody without it can rewrite the chain to hide either.
//! [`verify`] reports the first broken record of a whole directory of segments.
//!
//! # Design
//! * [`AuditLog`] is a handle: [`AuditLog::record`] queues the record on a bounded channel and
//!   awaits its commit. The writer thread ([`writer`]) takes everything queued, writes it in one
//!   `write` and one `fsync` (group commit), then answers every waiting caller. No Tokio worker
//!   ever blocks on the disk, and a flood of records costs one fsync per batch, not per record.
//! * A write or fsync that fails fails every record of the batch (fail closed) and the writer
//!   re-reads what actually reached the file before continuing in a new segment, so `seq` is
//!   never reused.
//! * Segments rotate by size (`audit.rotate_bytes`): `audit.jsonl`, `audit.000002.jsonl`, ...;
//!   the chain continues across them. A torn last line (a crash mid-write) is reported once and
//!   the log continues in a new segment after a `log_resumed` record.
//! * One record per tool call ([`AuditEvent::ToolCall`]) says what the call did: who (token id,
//!   client), the request id and peer, whether the Graph token came from the cache or an
//!   exchange, Graph request ids, outcome, status, latency. A real OBO exchange keeps its own
//!   record; refusals before authentication are aggregated per peer ([`refusals`]).
//!
//! Records carry tenant and user ids, tool names, argument *shapes* (keys and JSON types),
//! Graph request ids, outcomes, statuses and latencies; never a token, a secret, query text
//! (unless configured) or returned content.

pub mod peer;
pub mod refusals;
mod segments;
mod verify;
mod writer;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU32, Ordering},
    },
};

use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::{
    clock::Clock,
    domain::{ObjectId, TenantId},
    key::Key32,
};

pub use segments::segment_path;
pub use verify::{Report, Verdict, verify};
pub use writer::{FaultHook, FaultPoint, WriterOptions};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records waiting for the writer at most; beyond it callers wait for room (backpressure).
pub const QUEUE_CAPACITY: usize = 8192;

/// How a tool call ended. Serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The arguments were refused (unknown, malformed or out of range).
    InvalidParams,
    /// The tenant policy does not allow this tool.
    PolicyRefused,
    /// The tenant policy does not allow this item (site, drive, item kind).
    Refused,
    ClaimsChallenge,
    GraphError,
    NotFound,
    Error,
    /// The client went away (or the call was cancelled) before the call finished.
    Cancelled,
    /// The request timeout elapsed before the call finished.
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::InvalidParams => "invalid_params",
            Self::PolicyRefused => "policy_refused",
            Self::Refused => "refused",
            Self::ClaimsChallenge => "claims_challenge",
            Self::GraphError => "graph_error",
            Self::NotFound => "not_found",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
        }
    }
}

/// The labels tools pass to `Call::finish`; an unknown label is recorded as `error`.
impl From<&str> for Outcome {
    fn from(label: &str) -> Self {
        match label {
            "ok" => Self::Ok,
            "invalid" | "invalid_params" | "invalid_arguments" => Self::InvalidParams,
            "policy_refused" => Self::PolicyRefused,
            "refused" => Self::Refused,
            "claims_challenge" => Self::ClaimsChallenge,
            "graph_error" => Self::GraphError,
            "not_found" => Self::NotFound,
            "cancelled" => Self::Cancelled,
            "timeout" => Self::Timeout,
            _ => Self::Error,
        }
    }
}

/// Where a call's Graph token came from (the strongest use wins when a call needs several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OboUse {
    /// The call needed no Graph token.
    None,
    CacheHit,
    /// Another call's exchange in flight served this one (single flight).
    Coalesced,
    /// This call made an exchange (which has its own `obo_exchange` record).
    Exchange,
}

impl OboUse {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::CacheHit,
            2 => Self::Coalesced,
            3 => Self::Exchange,
            _ => Self::None,
        }
    }
}

/// One auditable event. Serialized with `"event": "<snake_case name>"`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// Refused bearer tokens of one (peer, reason) in one aggregation window: the first
    /// refusal of a window is recorded at once (`count` 1), the rest when the window closes.
    TokenRefused {
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<IpAddr>,
        /// The first refused request this record counts.
        request_id: String,
        count: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<TenantId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<ObjectId>,
    },
    /// Per-caller rate-limit answers (429) of one caller in one aggregation window.
    RateLimited {
        tenant_id: TenantId,
        user_id: ObjectId,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<IpAddr>,
        request_id: String,
        count: u64,
    },
    /// A real On-Behalf-Of exchange at Entra (cache hits are part of the call's record).
    OboExchange {
        tenant_id: TenantId,
        user_id: ObjectId,
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    ToolCall {
        tenant_id: TenantId,
        user_id: ObjectId,
        client_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_id: Option<String>,
        request_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<IpAddr>,
        tool: String,
        arguments: BTreeMap<String, &'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        query_text: Option<String>,
        obo: OboUse,
        #[serde(skip_serializing_if = "Option::is_none")]
        obo_error: Option<String>,
        graph_request_ids: Vec<String>,
        outcome: Outcome,
        status: u16,
        latency_ms: u64,
    },
    /// Written first in a new segment when the previous one ended with a torn record.
    LogResumed { torn_segment: String, torn_bytes: u64 },
}

/// The keys and JSON types of tool arguments, never their values.
pub fn argument_shape(arguments: Option<&Map<String, Value>>) -> BTreeMap<String, &'static str> {
    arguments
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let kind = match v {
                        Value::Null => "null",
                        Value::Bool(_) => "boolean",
                        Value::Number(_) => "number",
                        Value::String(_) => "string",
                        Value::Array(_) => "array",
                        Value::Object(_) => "object",
                    };
                    (k.clone(), kind)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why an audit record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: std::path::PathBuf, source: std::io::Error },
    #[error("audit write failed: {0}")]
    Commit(Arc<str>),
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("audit record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One record waiting for the writer, and whom to tell when it is down.
struct Submission {
    body: Map<String, Value>,
    done: oneshot::Sender<Result<u64, Arc<str>>>,
}

/// The handle of the audit log: cheap to share, never blocks a runtime thread.
pub struct AuditLog {
    queue: mpsc::Sender<Submission>,
    clock: Clock,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log (the segments of `options.path`), continues its chain and starts the
    /// writer thread.
    pub fn open(options: WriterOptions, clock: Clock) -> Result<Self, AuditError> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = writer::Writer::open(options, clock.clone())?;
        writer.spawn(receiver)?;
        Ok(Self { queue, clock })
    }

    /// A log writing to any sink, without files (tests inject a failing writer to check
    /// fail-closed; `check-config` uses a sink).
    pub fn to_writer(sink: impl std::io::Write + Send + 'static, clock: Clock) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = writer::Writer::to_sink(Box::new(sink));
        // Spawning a thread only fails when the process is out of resources; the handle then
        // reports `Stopped` on every record, which fails closed.
        let _ = writer.spawn(receiver);
        Self { queue, clock }
    }

    /// Queues one record and waits until it is written (and fsynced, if configured). Returns
    /// its `seq`. An error means the record is not durable: the caller must fail.
    pub async fn record(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        let committed = self.submit(event).await?;
        Self::committed(committed).await
    }

    /// Queues several records, then waits for all of them (they usually share one commit).
    pub async fn record_all(&self, events: &[AuditEvent]) -> Result<(), AuditError> {
        let mut waiting = Vec::with_capacity(events.len());
        for event in events {
            waiting.push(self.submit(event).await?);
        }
        for committed in waiting {
            Self::committed(committed).await?;
        }
        Ok(())
    }

    async fn submit(
        &self,
        event: &AuditEvent,
    ) -> Result<oneshot::Receiver<Result<u64, Arc<str>>>, AuditError> {
        let mut body = match serde_json::to_value(event)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        body.insert("time".into(), Value::from(self.clock.now().to_rfc3339()));
        let (done, committed) = oneshot::channel();
        self.queue.send(Submission { body, done }).await.map_err(|_| AuditError::Stopped)?;
        Ok(committed)
    }

    async fn committed(
        committed: oneshot::Receiver<Result<u64, Arc<str>>>,
    ) -> Result<u64, AuditError> {
        match committed.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(message)) => Err(AuditError::Commit(message)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// Records without anyone waiting (an abandoned call, an OBO exchange seen from a
    /// synchronous hook): a failure is logged, there is nobody left to fail.
    pub fn record_detached(self: &Arc<Self>, event: AuditEvent) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("Audit record dropped: no runtime to write it from");
            return;
        };
        let log = self.clone();
        runtime.spawn(async move {
            if let Err(e) = log.record(&event).await {
                tracing::error!(error = %e, "Audit write failed");
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The request a tool call belongs to.

tokio::task_local! {
    static CURRENT_REQUEST: Arc<RequestTrace>;
}

/// What the audit record of one HTTP request needs from the layers around the tool: the
/// request id and peer (set by the auth middleware), the Graph token use (set by the OBO
/// observer), and the records the tool produced, committed before the answer leaves.
#[derive(Debug)]
pub struct RequestTrace {
    pub request_id: String,
    pub peer: Option<IpAddr>,
    /// When the request timeout elapses (an abandoned call after it is a `timeout`).
    pub deadline: Option<tokio::time::Instant>,
    obo: AtomicU8,
    obo_error: Mutex<Option<String>>,
    calls: AtomicU32,
    pending: Mutex<Vec<AuditEvent>>,
}

impl RequestTrace {
    pub fn new(
        request_id: String,
        peer: Option<IpAddr>,
        deadline: Option<tokio::time::Instant>,
    ) -> Self {
        Self {
            request_id,
            peer,
            deadline,
            obo: AtomicU8::new(0),
            obo_error: Mutex::new(None),
            calls: AtomicU32::new(0),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// A fresh random request id (UUID v4, simple form).
    pub fn new_request_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Runs `f` with this trace as the current request (the OBO observer and tool calls find
    /// it; it does not cross `tokio::spawn`).
    pub async fn scope<F: Future>(self: Arc<Self>, f: F) -> F::Output {
        CURRENT_REQUEST.scope(self, f).await
    }

    /// The trace of the request being served by this task, if any.
    pub fn current() -> Option<Arc<Self>> {
        CURRENT_REQUEST.try_with(Arc::clone).ok()
    }

    /// Notes one Graph token obtained for this request.
    pub fn note_obo(&self, from_cache: bool, coalesced: bool, error_code: Option<&str>) {
        let used = if from_cache {
            OboUse::CacheHit
        } else if coalesced {
            OboUse::Coalesced
        } else {
            OboUse::Exchange
        };
        self.obo.fetch_max(used as u8, Ordering::Relaxed);
        if let Some(code) = error_code {
            *self.obo_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(code.to_owned());
        }
    }

    pub fn obo(&self) -> (OboUse, Option<String>) {
        let error = self.obo_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (OboUse::from_u8(self.obo.load(Ordering::Relaxed)), error)
    }

    /// Counts a tool call begun under this request.
    pub fn call_begun(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls_begun(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Keeps a finished call's record until the request commits it.
    pub fn push(&self, event: AuditEvent) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }

    /// Writes the records this request produced and waits for them: the answer may leave only
    /// once this succeeds.
    pub async fn commit(&self, log: &AuditLog) -> Result<(), AuditError> {
        let events = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if events.is_empty() {
            return Ok(());
        }
        log.record_all(&events).await
    }

    /// Whether an unfinished call is abandoned by the timeout rather than the client.
    pub fn abandoned_outcome(&self) -> Outcome {
        match self.deadline {
            Some(d) if tokio::time::Instant::now() >= d => Outcome::Timeout,
            _ => Outcome::Cancelled,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hashing

type HmacSha256 = hmac::Hmac<Sha256>;

/// The `hash` of a record: over its canonical JSON (keys sorted, compact) without `hash`.
/// `serde_json::Map` without `preserve_order` is a `BTreeMap`, so serializing sorts the keys.
fn chain_hash(canonical: &[u8], key: Option<&Key32>) -> String {
    match key {
        None => hex(&Sha256::digest(canonical)),
        Some(key) => {
            let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.expose())
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(canonical);
            hex(&mac.finalize().into_bytes())
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests;
