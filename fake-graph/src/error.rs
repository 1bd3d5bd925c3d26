//! Graph's OData error envelope and the per-service codes of `reference/graph.md` §2.
//!
//! Handlers return [`GraphError`] without knowing the request ids; its `IntoResponse` parks the
//! error in the response extensions and the pipeline middleware (which owns `request-id` and
//! `client-request-id`) renders the envelope. That keeps every error body identical in shape.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The `WWW-Authenticate` Graph sends with every 401 (captured from live responses).
pub const GRAPH_CHALLENGE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

/// The workload whose 403 wording a refusal uses (graph.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Mail and calendar: `ErrorAccessDenied`.
    Outlook,
    /// `/users`: `Authorization_RequestDenied`.
    Directory,
    /// Chats and channels: `Forbidden` with the scope list.
    Teams,
    /// Drives and sites: `accessDenied`.
    SharePoint,
}

/// One Graph error answer: status, code, message and any extra headers.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`, `RateLimit-*`).
    pub headers: Vec<(HeaderName, String)>,
    /// Nested `innerError` fields besides the ids (`code`, `status` of throttling bodies).
    pub inner_extra: Option<Value>,
    /// Outlook's concurrency refusal has no `innerError` at all.
    pub omit_inner: bool,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            headers: Vec::new(),
            inner_extra: None,
            omit_inner: false,
        }
    }

    #[must_use]
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 401 `InvalidAuthenticationToken` with Graph's challenge header.
    pub fn unauthenticated(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
            .header(axum::http::header::WWW_AUTHENTICATE, GRAPH_CHALLENGE)
    }

    /// 403 in the wording of `service`; `scopes` are the token's scopes (Teams quotes them).
    pub fn forbidden(service: Service, any_of: &[&str], scopes: &str) -> Self {
        match service {
            Service::Outlook => Self::new(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ),
            Service::Directory => Self::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            Service::Teams => Self::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "Missing scope permissions on the request. API requires one of '{}'. Scopes on the request '{}'",
                    any_of.join(", "),
                    scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ")
                ),
            ),
            Service::SharePoint => {
                Self::new(StatusCode::FORBIDDEN, "accessDenied", "Access denied")
            }
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Outlook item not found.
    pub fn outlook_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// Drive item, drive or site not found (also: not visible to the caller).
    pub fn item_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "itemNotFound", "The resource could not be found.")
    }

    /// Unknown user in a `/users/{id}` mailbox path.
    pub fn invalid_user(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{id}' is invalid."),
        )
    }

    /// Directory object not found (`/users/{id}`).
    pub fn directory_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// Teams object not found (or not visible).
    pub fn teams_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "Resource not found")
    }

    /// An URL no route answers.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                path.rsplit('/').next().unwrap_or(path)
            ),
        )
    }

    /// Renders the envelope with the request's ids.
    pub fn body(&self, date: DateTime<Utc>, request_id: &str, client_request_id: &str) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.omit_inner {
            let mut inner = json!({
                "date": date.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": request_id,
                "client-request-id": client_request_id,
            });
            if let (Some(Value::Object(extra)), Value::Object(map)) =
                (&self.inner_extra, &mut inner)
            {
                for (k, v) in extra {
                    map.insert(k.clone(), v.clone());
                }
            }
            error["innerError"] = inner;
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for GraphError {}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.headers_mut().append(name.clone(), value);
            }
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Result of a Graph handler.
pub type GraphResult = Result<Response, GraphError>;
