//! HTTP for the whole connector. Outbound, shared by the Entra (OBO, JWKS) and Graph clients:
//! the client builders with the defaults that matter (timeouts, no redirects, no system
//! proxy), the rustls crypto provider, `Retry-After` parsing ([`retry`]) and lenient base64
//! for claims challenges. Inbound: every refusal the server writes by hand ([`HttpRefusal`]:
//! load shedding, Host/Origin, the auth middleware's 401/403/429/503), each one status and one
//! JSON body, logged once where it becomes a response.

#[cfg(test)]
pub(crate) mod raw_server;
pub mod retry;

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// Installs the rustls `ring` provider (reqwest is built without one); idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client for Entra (token and key endpoints): `timeout` per request, no redirects, no
/// system proxy, the connector's user agent.
pub fn entra_client(
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("m365-connector/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Decodes standard or url-safe base64, padded or not: claims challenges arrive in every form
/// (Graph's `WWW-Authenticate`, Entra's token-endpoint errors).
pub(crate) fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    use base64::{
        Engine as _,
        engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
    };
    let trimmed = s.trim_end_matches('=');
    STANDARD_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE_NO_PAD.decode(trimmed)).ok()
}

/// Every refusal the server writes by hand, before (or instead of) an MCP answer: the load
/// shedder, the Host/Origin guard and the auth middleware. Each is one status, its headers
/// (`WWW-Authenticate`, `Retry-After`) and one JSON body `{"error", "error_description"}`.
///
/// Turning a refusal into a response ([`IntoResponse`]) is the one place it is logged, once,
/// by status, error code and a bounded reason: never a token, a header or a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpRefusal {
    /// The global in-flight cap is reached: 503 with `Retry-After: 1`.
    Overloaded,
    /// DNS-rebinding protection: a `Host` or `Origin` that is not configured, 403.
    Forbidden(&'static str),
    /// No usable bearer token: 401 `invalid_token` with the rendered `WWW-Authenticate`
    /// `challenge`. `reason` is the bounded label of the rejection (`missing`, `signature`…).
    Unauthorized { reason: &'static str, description: String, challenge: String },
    /// The token lacks the connector's scope: 403 `insufficient_scope` with its challenge.
    InsufficientScope { reason: &'static str, description: String, challenge: String },
    /// The tenant or the kind of token is not allowed: 403 `access_denied`.
    AccessDenied { reason: &'static str, description: String },
    /// The token cannot be decided now (signing keys unavailable): 503
    /// `temporarily_unavailable` with `Retry-After`.
    TokenUndecided { reason: &'static str, description: String, retry_after: Duration },
    /// The audit record of a refusal cannot be written, so the request is not processed: 503
    /// with `Retry-After: 5`. `cause` is the audit error, logged here and nowhere else.
    AuditUnavailable { cause: String },
    /// Too many requests (a user over its rate, or a peer over its refusal budget): 429
    /// `rate_limited` with `Retry-After`.
    RateLimited { reason: &'static str, description: &'static str, retry_after: Duration },
    /// A tool met a claims challenge (CAE, Conditional Access): 401 `insufficient_claims` with
    /// the challenge carrying the claims the client must sign in again with (mcp.md §4.9).
    ClaimsChallenge { challenge: String },
    /// The whole-request bound elapsed (the call is cancelled and audited `timeout`): a bare
    /// 503.
    TimedOut,
}

/// The `error_description` of a claims challenge, in the body and the challenge alike.
pub const CLAIMS_CHALLENGE_DESCRIPTION: &str = "additional claims are required; sign in again";

impl HttpRefusal {
    /// The status, the body's `error` code and `error_description` (no body: `None`).
    fn parts(&self) -> (StatusCode, Option<(&'static str, &str)>) {
        match self {
            Self::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(("overloaded", "the connector is at capacity; retry shortly")),
            ),
            Self::Forbidden(reason) => (StatusCode::FORBIDDEN, Some(("forbidden", reason))),
            Self::Unauthorized { description, .. } => {
                (StatusCode::UNAUTHORIZED, Some(("invalid_token", description)))
            }
            Self::InsufficientScope { description, .. } => {
                (StatusCode::FORBIDDEN, Some(("insufficient_scope", description)))
            }
            Self::AccessDenied { description, .. } => {
                (StatusCode::FORBIDDEN, Some(("access_denied", description)))
            }
            Self::TokenUndecided { description, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, Some(("temporarily_unavailable", description)))
            }
            Self::AuditUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some((
                    "temporarily_unavailable",
                    "the audit log cannot be written; the request was not processed",
                )),
            ),
            Self::RateLimited { description, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, Some(("rate_limited", description)))
            }
            Self::ClaimsChallenge { .. } => (
                StatusCode::UNAUTHORIZED,
                Some(("insufficient_claims", CLAIMS_CHALLENGE_DESCRIPTION)),
            ),
            Self::TimedOut => (StatusCode::SERVICE_UNAVAILABLE, None),
        }
    }

    /// The `WWW-Authenticate` challenge and the `Retry-After` seconds, where the refusal has them.
    fn headers(&self) -> (Option<&str>, Option<u64>) {
        match self {
            Self::Unauthorized { challenge, .. }
            | Self::InsufficientScope { challenge, .. }
            | Self::ClaimsChallenge { challenge } => (Some(challenge), None),
            Self::Overloaded => (None, Some(1)),
            Self::AuditUnavailable { .. } => (None, Some(5)),
            Self::TokenUndecided { retry_after, .. } | Self::RateLimited { retry_after, .. } => {
                (None, Some(retry_after.as_secs().max(1)))
            }
            Self::Forbidden(_) | Self::AccessDenied { .. } | Self::TimedOut => (None, None),
        }
    }

    /// The one log line of this refusal. A client discovering how to sign in (no token) and a
    /// shed request are routine: debug. Refused tokens and requests: info. The connector
    /// failing to serve (timeout): warn; failing to audit: error.
    fn log(&self, status: StatusCode, error: Option<&str>) {
        let status = status.as_u16();
        let error = error.unwrap_or("");
        match self {
            Self::Unauthorized { reason: "missing", .. } | Self::Overloaded => {
                tracing::debug!(status, error, "Refused a request");
            }
            Self::Unauthorized { reason, .. }
            | Self::InsufficientScope { reason, .. }
            | Self::AccessDenied { reason, .. }
            | Self::TokenUndecided { reason, .. }
            | Self::RateLimited { reason, .. } => {
                tracing::info!(status, error, reason, "Refused a request");
            }
            Self::Forbidden(reason) => tracing::info!(status, error, reason, "Refused a request"),
            Self::ClaimsChallenge { .. } => {
                tracing::info!(status, error, "Answered a call with a claims challenge");
            }
            Self::TimedOut => tracing::warn!(status, "Request timed out; refused"),
            Self::AuditUnavailable { cause } => {
                tracing::error!(status, error = %cause, "Audit write failed; request refused");
            }
        }
    }
}

impl IntoResponse for HttpRefusal {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        self.log(status, body.map(|(error, _)| error));
        let mut response = match body {
            Some((error, description)) => (
                status,
                axum::Json(serde_json::json!({
                    "error": error,
                    "error_description": description,
                })),
            )
                .into_response(),
            None => status.into_response(),
        };
        let (challenge, retry_after) = self.headers();
        let headers = response.headers_mut();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt layer writes, to read the log lines back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The response to `refusal` and the log lines turning it into one wrote.
    fn answered(refusal: HttpRefusal) -> (Response, Vec<String>) {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let response = tracing::subscriber::with_default(subscriber, || refusal.into_response());
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        (response, text.lines().map(str::to_owned).collect())
    }

    fn header(response: &Response, name: header::HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn each_refusal_is_logged_once_without_its_challenge() {
        let challenge = r#"Bearer resource_metadata="https://mcp.contoso.com/prm", claims="eyJzZWNyZXQiOnt9fQ""#;
        let refusals = [
            HttpRefusal::Overloaded,
            HttpRefusal::Forbidden("the Origin is not allowed"),
            HttpRefusal::Unauthorized {
                reason: "signature",
                description: "the token signature is invalid".into(),
                challenge: challenge.into(),
            },
            HttpRefusal::InsufficientScope {
                reason: "missing_scope",
                description: "the token lacks the scope".into(),
                challenge: challenge.into(),
            },
            HttpRefusal::AccessDenied {
                reason: "tenant_not_enabled",
                description: "tenant not enabled".into(),
            },
            HttpRefusal::TokenUndecided {
                reason: "keys_unavailable",
                description: "retry later".into(),
                retry_after: Duration::from_secs(30),
            },
            HttpRefusal::AuditUnavailable { cause: "audit write failed: disk full".into() },
            HttpRefusal::RateLimited {
                reason: "rate_limited",
                description: "too many requests from this user; retry later",
                retry_after: Duration::from_millis(1500),
            },
            HttpRefusal::ClaimsChallenge { challenge: challenge.into() },
            HttpRefusal::TimedOut,
        ];
        for refusal in refusals {
            let (_, lines) = answered(refusal.clone());
            assert_eq!(lines.len(), 1, "{refusal:?}: {lines:?}");
            assert!(!lines[0].contains("eyJzZWNyZXQiOnt9fQ"), "{lines:?}");
            assert!(!lines[0].contains("Bearer"), "{lines:?}");
        }
    }

    #[test]
    fn an_audit_failure_is_a_503_that_names_its_cause_only_in_the_log() {
        let (response, lines) = answered(HttpRefusal::AuditUnavailable {
            cause: "audit write failed: disk full".into(),
        });
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&response, header::RETRY_AFTER), Some("5"));
        assert!(lines[0].contains("ERROR") && lines[0].contains("disk full"), "{lines:?}");
    }

    #[test]
    fn a_timed_out_request_is_a_bare_503() {
        let (response, _) = answered(HttpRefusal::TimedOut);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&response, header::CONTENT_TYPE), None);
        assert_eq!(header(&response, header::RETRY_AFTER), None);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        let wait = |retry_after| {
            let (response, _) = answered(HttpRefusal::RateLimited {
                reason: "rate_limited",
                description: "slow down",
                retry_after,
            });
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            header(&response, header::RETRY_AFTER).map(str::to_owned)
        };
        assert_eq!(wait(Duration::from_millis(200)).as_deref(), Some("1"));
        assert_eq!(wait(Duration::from_millis(2500)).as_deref(), Some("2"));
    }
}
