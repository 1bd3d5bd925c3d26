//! Entra's error body (`reference/entra.md` §8.1), byte for byte in shape.
//!
//! `error_description` starts with `AADSTSnnnn: ` and ends with the
//! `\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: YYYY-MM-DD hh:mm:ssZ` tail; the body
//! repeats the code in `error_codes`, and carries `timestamp`, `trace_id`, `correlation_id`,
//! `error_uri`, and `suberror` / `claims` where Entra sends them.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The JSON body of an Entra error, field order as Entra sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub error_description: String,
    pub error_codes: Vec<u32>,
    pub timestamp: String,
    pub trace_id: String,
    pub correlation_id: String,
    pub error_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suberror: Option<String>,
    /// On the token endpoint a JSON *string* (escaped JSON, not base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<String>,
}

impl ErrorBody {
    /// The AADSTS code (first of `error_codes`).
    pub fn code(&self) -> u32 {
        self.error_codes.first().copied().unwrap_or(0)
    }
}

/// An Entra refusal before rendering (trace ids and time are added by [`AadError::render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    pub status: StatusCode,
    pub error: String,
    pub code: u32,
    pub message: String,
    pub suberror: Option<String>,
    pub claims: Option<String>,
    pub retry_after: Option<u64>,
}

/// Entra's ISO time with 7 fractional digits (`2020-04-27T20:58:04.2740000Z`) in messages.
pub fn entra_iso(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() / 100)
}

/// Entra's timestamp format in error bodies.
pub fn entra_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

impl AadError {
    pub fn new(error: &str, code: u32, message: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error: error.into(),
            code,
            message: message.into(),
            suberror: None,
            claims: None,
            retry_after: None,
        }
    }

    pub fn suberror(mut self, s: &str) -> Self {
        self.suberror = Some(s.into());
        self
    }

    pub fn claims(mut self, c: String) -> Self {
        self.claims = Some(c);
        self
    }

    pub fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }

    /// The rendered body.
    pub fn body(&self, now: DateTime<Utc>, trace_id: &str, correlation_id: &str) -> ErrorBody {
        let ts = entra_timestamp(now);
        ErrorBody {
            error: self.error.clone(),
            error_description: format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}",
                self.code, self.message
            ),
            error_codes: vec![self.code],
            timestamp: ts,
            trace_id: trace_id.into(),
            correlation_id: correlation_id.into(),
            error_uri: format!("https://login.microsoftonline.com/error?code={}", self.code),
            suberror: self.suberror.clone(),
            claims: self.claims.clone(),
        }
    }

    /// Renders the HTTP response; `correlation_id` echoes the caller's `client-request-id`.
    pub fn render(&self, now: DateTime<Utc>, headers: &HeaderMap) -> Response {
        let trace_id = Uuid::new_v4().to_string();
        let correlation_id = correlation_id(headers);
        let body = self.body(now, &trace_id, &correlation_id);
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
        if let Ok(v) = HeaderValue::from_str(&trace_id) {
            h.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            h.insert("client-request-id", v);
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The caller's `client-request-id` when it is a GUID, else a fresh one.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4)
        .to_string()
}

// ─── The catalogue (reference/entra.md §8.3) ────────────────────────────────────────────

pub fn invalid_request(code: u32, msg: impl Into<String>) -> AadError {
    AadError::new("invalid_request", code, msg)
}

pub fn tenant_not_found(tenant: &str) -> AadError {
    invalid_request(
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

pub fn missing_param(name: &str) -> AadError {
    invalid_request(
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

pub fn app_not_found(client_id: &str, tenant: &str) -> AadError {
    AadError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

pub fn consent_required(client_id: Uuid, name: &str) -> AadError {
    AadError::new(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{client_id}' named '{name}'. Send an interactive authorization request for this user and resource."
        ),
    )
    .suberror("consent_required")
}

pub fn not_assigned(upn: &str, app_id: Uuid, name: &str) -> AadError {
    AadError::new(
        "invalid_grant",
        50105,
        format!(
            "Your administrator has configured the application {name} ('{app_id}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{upn}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application."
        ),
    )
}

pub fn user_disabled() -> AadError {
    AadError::new(
        "invalid_grant",
        50057,
        "The user account is disabled. The user object in Active Directory backing this account has been disabled. An admin can re-enable this account through PowerShell.",
    )
}

pub fn grant_revoked(issued: DateTime<Utc>, valid_from: DateTime<Utc>) -> AadError {
    AadError::new(
        "invalid_grant",
        50173,
        format!(
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
            crate::error::entra_iso(issued),
            crate::error::entra_iso(valid_from)
        ),
    )
}

pub fn user_not_in_tenant(upn: &str, tenant: &str) -> AadError {
    AadError::new(
        "invalid_grant",
        50020,
        format!(
            "User account '{upn}' from identity provider 'live.com' does not exist in tenant '{tenant}' and cannot access the application in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account."
        ),
    )
}

pub fn mfa_required(resource: &str, policy: Uuid) -> AadError {
    AadError::new(
        "invalid_grant",
        50076,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{resource}'."
        ),
    )
    .suberror("basic_action")
    .claims(format!("{{\"access_token\":{{\"capolids\":{{\"essential\":true,\"values\":[\"{policy}\"]}}}}}}"))
}

pub fn mfa_enrollment_required(resource: &str, policy: Uuid) -> AadError {
    AadError::new(
        "interaction_required",
        50079,
        format!(
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access '{resource}'."
        ),
    )
    .claims(format!("{{\"access_token\":{{\"polids\":{{\"essential\":true,\"values\":[\"{policy}\"]}}}}}}"))
}

pub fn ca_blocked() -> AadError {
    AadError::new(
        "invalid_grant",
        53003,
        "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
    )
}

pub fn device_not_compliant() -> AadError {
    AadError::new(
        "invalid_grant",
        53000,
        "Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant. The user must enroll their device with an approved MDM provider like Intune.",
    )
}

pub fn invalid_scope(scope: &str) -> AadError {
    AadError::new(
        "invalid_scope",
        70011,
        format!(
            "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
    )
}

pub fn invalid_client_secret(client_id: Uuid) -> AadError {
    AadError::new(
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
}

pub fn missing_client_credential() -> AadError {
    AadError::new(
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

pub fn bad_client_assertion(reason: &str) -> AadError {
    AadError::new(
        "invalid_client",
        700027,
        format!("Client assertion failed signature validation. [Reason - {reason}]"),
    )
}

pub fn unsupported_grant(grant: &str) -> AadError {
    AadError::new(
        "unsupported_grant_type",
        70003,
        format!("The app requested an unsupported grant type '{grant}'."),
    )
}
