//! HTTP for the whole connector. Outbound, shared by the Entra (OBO, JWKS) and Graph clients:
//! the client builders with the defaults that matter (timeouts, no redirects, no system
//! proxy), the rustls crypto provider, and `Retry-After` parsing ([`retry`]). Inbound: the
//! refusals the server answers before any MCP handling ([`HttpRefusal`]), each one status and
//! one JSON body.

pub mod retry;

use std::time::Duration;

use axum::{
    http::{StatusCode, header},
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

/// A request the server refuses before it reaches MCP handling (the auth refusals, with their
/// `WWW-Authenticate` challenges, live with the auth middleware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRefusal {
    /// The global in-flight cap is reached: 503 with `Retry-After: 1`.
    Overloaded,
    /// DNS-rebinding protection: a `Host` or `Origin` that is not configured, 403.
    Forbidden(&'static str),
}

impl IntoResponse for HttpRefusal {
    fn into_response(self) -> Response {
        match self {
            Self::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                axum::Json(serde_json::json!({
                    "error": "overloaded",
                    "error_description": "the connector is at capacity; retry shortly",
                })),
            )
                .into_response(),
            Self::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "forbidden", "error_description": reason})),
            )
                .into_response(),
        }
    }
}
