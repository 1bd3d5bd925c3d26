//! The journal of every token issued or refused, and the CAE identity-event feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One token-endpoint (or `/authorize`) outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// `authorize`, `token`, `keys` or `discovery`.
    pub endpoint: String,
    /// `authorization_code`, `refresh_token`, `client_credentials`, `on_behalf_of`, or the
    /// raw `grant_type` when unsupported; `authorize` for `/authorize`.
    pub grant: String,
    pub client_id: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub scopes: Vec<String>,
    /// `uti` of the access token issued, when one was.
    pub uti: Option<String>,
    /// AADSTS code when refused (or the HTTP status for scripted 429/503 faults).
    pub error_code: Option<u32>,
    pub error: Option<String>,
    /// The `cp1` client capability was declared.
    pub cp1: bool,
}

impl JournalEntry {
    pub fn issued(&self) -> bool {
        self.error.is_none()
    }
}

/// Kind of identity event, as the CAE feed names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventType {
    SessionsRevoked,
    UserDisabled,
    PasswordReset,
}

/// One entry of `GET /_fake/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityEvent {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub time: DateTime<Utc>,
}

/// The body of `GET /_fake/events?after={seq}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFeed {
    pub events: Vec<IdentityEvent>,
    pub last_seq: u64,
}
