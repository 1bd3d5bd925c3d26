//! Scripted faults: the next N matching requests fail in a chosen way (an AADSTS error, 429,
//! 503, latency, a hang or a dropped connection), and `apply_fault`, which every served
//! endpoint calls before doing its work.

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::{error::AadError, journal::JournalEntry, listener::Conn};

/// What applying a fault needs from the fake's state (implemented by `state::Shared`), so
/// this module depends on no state layout and the state may hold [`Fault`]s.
pub(crate) trait FaultHost {
    /// Consumes one use of the first scripted fault matching the request.
    fn take_fault(
        &self,
        ep: Endpoint,
        tenant: Option<Uuid>,
        client: Option<&str>,
    ) -> Option<FaultKind>;
    /// Appends `entry` to the journal under the next sequence number.
    fn journal(&self, entry: JournalEntry);
    /// The fake's (shared, controllable) time.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves when the fake stops (a hanging request ends then).
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Endpoint {
    Token,
    Authorize,
    Keys,
    Discovery,
    /// Every endpoint except the control API.
    Any,
}

/// How a faulted request fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FaultKind {
    /// An Entra error body with this AADSTS code (`error` defaults per code, status 400).
    Aadsts {
        code: u32,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        status: Option<u16>,
    },
    /// HTTP 429 with an optional `Retry-After` (seconds).
    TooManyRequests {
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// HTTP 503 with an optional `Retry-After` (seconds).
    Unavailable {
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Answer normally after this delay.
    Latency { ms: u64 },
    /// Never answer: the request stays open until the client gives up (its timeout) or the
    /// fake stops.
    Hang,
    /// Close the connection without sending a response (no status line, no body).
    DropConnection,
}

/// A scripted fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub endpoint: Endpoint,
    /// How many matching requests it affects.
    #[serde(default = "one")]
    pub times: u32,
    pub fault: FaultKind,
    /// Restrict to a tenant (GUID as in the path after resolution).
    #[serde(default)]
    pub tenant: Option<Uuid>,
    /// Restrict to a client id.
    #[serde(default)]
    pub client_id: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault for the next `times` requests to `endpoint`.
    pub fn new(endpoint: Endpoint, times: u32, fault: FaultKind) -> Self {
        Self { endpoint, times, fault, tenant: None, client_id: None }
    }

    pub fn for_tenant(mut self, tid: Uuid) -> Self {
        self.tenant = Some(tid);
        self
    }

    pub fn for_client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    pub(crate) fn matches(&self, ep: Endpoint, tenant: Option<Uuid>, client: Option<&str>) -> bool {
        (self.endpoint == Endpoint::Any || self.endpoint == ep)
            && self.tenant.is_none_or(|t| Some(t) == tenant)
            && self.client_id.as_deref().is_none_or(|c| Some(c) == client)
    }
}

/// Applies the first matching scripted fault: `Some(response)` to answer with it, `None` to
/// serve the request normally. `conn` is the request's connection, which a
/// [`FaultKind::DropConnection`] drops.
pub(crate) async fn apply_fault(
    s: &impl FaultHost,
    ep: Endpoint,
    tenant: Option<Uuid>,
    client: Option<&str>,
    conn: &Conn,
    headers: &HeaderMap,
) -> Option<Response> {
    let kind = s.take_fault(ep, tenant, client)?;
    let err = match kind {
        FaultKind::Latency { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return None;
        }
        FaultKind::Hang => {
            journal_fault(s, ep, tenant, client, None, "hang");
            s.stopped().await;
            return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        FaultKind::DropConnection => {
            journal_fault(s, ep, tenant, client, None, "connection_dropped");
            conn.drop.pull();
            // Never written: the connection fails every write from now on.
            return Some(StatusCode::BAD_GATEWAY.into_response());
        }
        FaultKind::Aadsts { code, error, description, status } => {
            let mut e = AadError::new(
                error.as_deref().unwrap_or("invalid_grant"),
                code,
                description.unwrap_or_else(|| format!("Scripted failure {code}.")),
            );
            if let Some(st) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
                e = e.status(st);
            }
            e
        }
        FaultKind::TooManyRequests { retry_after } => {
            let mut e = AadError::new(
                "temporarily_unavailable",
                90055,
                "TenantThrottlingError: There are too many incoming requests. This exception is thrown for blocked tenants.",
            )
            .status(StatusCode::TOO_MANY_REQUESTS);
            e.retry_after = retry_after;
            e
        }
        FaultKind::Unavailable { retry_after } => {
            let mut e = AadError::new(
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
            .status(StatusCode::SERVICE_UNAVAILABLE);
            e.retry_after = retry_after;
            e
        }
    };
    journal_fault(s, ep, tenant, client, Some(err.code), &err.error);
    Some(err.render(s.now(), headers))
}

/// Journals a faulted token or `/authorize` request (metadata requests are not journaled).
fn journal_fault(
    s: &impl FaultHost,
    ep: Endpoint,
    tenant: Option<Uuid>,
    client: Option<&str>,
    code: Option<u32>,
    error: &str,
) {
    if ep != Endpoint::Token && ep != Endpoint::Authorize {
        return;
    }
    s.journal(JournalEntry {
        seq: 0,
        time: s.now(),
        endpoint: format!("{ep:?}").to_lowercase(),
        grant: "fault".into(),
        client_id: client.map(str::to_string),
        tenant_id: tenant,
        user_id: None,
        scopes: vec![],
        uti: None,
        error_code: code,
        error: Some(error.to_string()),
        cp1: false,
    });
}
