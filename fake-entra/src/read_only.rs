//! Read-only expectations: the requests that would change something in a real tenant.
//!
//! The connector only reads from Entra (discovery, keys) and exchanges tokens. Anything else
//! sent with a write method (a `POST` other than a token request, `PUT`, `PATCH`, `DELETE`),
//! served or not, is recorded (by the router's middleware), so a test can assert it never happened, as
//! [`crate::FakeEntra::verify_read_only`] and [`crate::FakeEntraBuilder::read_only_on_drop`]
//! do. The control API (`/_fake/…`) is the test's own and never counts.

use axum::http::Method;
use serde::{Deserialize, Serialize};

/// One request that would have changed something: method, path (no query: it may hold
/// secrets) and the status the fake answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutatingRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Whether a request is a write in the sense above.
pub(crate) fn is_mutating(method: &Method, path: &str) -> bool {
    if path.starts_with("/_fake/")
        || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        return false;
    }
    let token_request = *method == Method::POST
        && (path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/token"));
    !token_request
}

/// The failure message listing `writes`, or `None` when there were none.
pub(crate) fn report(writes: &[MutatingRequest]) -> Option<String> {
    if writes.is_empty() {
        return None;
    }
    let lines: Vec<String> =
        writes.iter().map(|w| format!("- {} {} → {}", w.method, w.path, w.status)).collect();
    Some(format!(
        "fake-entra expected no mutating request but saw {}:\n{}",
        writes.len(),
        lines.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_token_requests_and_the_control_api_are_not_writes() {
        assert!(!is_mutating(&Method::GET, "/common/v2.0/.well-known/openid-configuration"));
        assert!(!is_mutating(&Method::POST, "/contoso.com/oauth2/v2.0/token"));
        assert!(!is_mutating(&Method::POST, "/contoso.com/oauth2/token"));
        assert!(!is_mutating(&Method::POST, "/_fake/keys/rotate"));
        assert!(!is_mutating(&Method::DELETE, "/_fake/journal"));
    }

    #[test]
    fn other_write_methods_are_writes() {
        assert!(is_mutating(&Method::POST, "/common/oauth2/v2.0/devicecode"));
        assert!(is_mutating(&Method::POST, "/common/oauth2/v2.0/logout"));
        assert!(is_mutating(&Method::DELETE, "/common/discovery/v2.0/keys"));
        assert!(is_mutating(&Method::PATCH, "/x"));
    }

    #[test]
    fn the_report_lists_each_write_or_is_absent() {
        assert_eq!(report(&[]), None);
        let w = MutatingRequest { method: "POST".into(), path: "/common/x".into(), status: 404 };
        let text = report(&[w]).unwrap_or_default();
        assert!(text.contains("saw 1") && text.contains("- POST /common/x → 404"), "{text}");
    }
}
