//! Scripted faults: the next N matching requests fail in a chosen way.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
