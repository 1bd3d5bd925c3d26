//! The guards in front of the routes: the global in-flight cap (fast 503) and the DNS-rebinding
//! protection (Host/Origin allow-lists, 403). Both answer with an [`HttpRefusal`].

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::AppState;
use crate::{http::HttpRefusal, metrics::names};

/// Fast 503 when the global in-flight cap is reached: refusing early is cheaper than queueing
/// work that will time out anyway.
pub(super) async fn shed(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.inc(names::SHED, &[]);
        return HttpRefusal::Overloaded.into_response();
    };
    next.run(req).await
}

/// DNS-rebinding protection (MCP transport rules): the `Host` must be one of the configured
/// hosts, and an `Origin`, when present, one of the configured origins. 403 otherwise.
pub(super) async fn host_and_origin(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let s = &state.settings.server;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let host_ok = host.as_deref().is_some_and(|h| host_allowed(h, &s.allowed_hosts));
    if !host_ok {
        return forbidden("the Host header is not allowed");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| origin_allowed(o, &s.allowed_origins));
        if !ok {
            return forbidden("the Origin is not allowed");
        }
    }
    next.run(req).await
}

fn forbidden(reason: &'static str) -> Response {
    HttpRefusal::Forbidden(reason).into_response()
}

/// `host[:port]` against entries that may omit the port (then any port matches).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let Ok(authority) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let h = authority.host().trim_matches(['[', ']']).to_ascii_lowercase();
    allowed.iter().any(|entry| {
        let (eh, ep) = match entry.parse::<http::uri::Authority>() {
            Ok(a) => (a.host().trim_matches(['[', ']']).to_ascii_lowercase(), a.port_u16()),
            Err(_) => (entry.trim_matches(['[', ']']).to_ascii_lowercase(), None),
        };
        eh == h && ep.is_none_or(|p| authority.port_u16() == Some(p))
    })
}

/// Exact origin match (scheme, host, port), case-insensitive; `null` never matches.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let Ok(o) = url::Url::parse(origin) else { return false };
    if o.host_str().is_none() {
        return false;
    }
    allowed.iter().any(|entry| {
        url::Url::parse(entry).is_ok_and(|e| {
            e.scheme() == o.scheme()
                && e.host_str() == o.host_str()
                && e.port_or_known_default() == o.port_or_known_default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_a_configured_port() {
        let allowed = vec!["mcp.contoso.com".to_owned(), "127.0.0.1:3111".to_owned()];
        assert!(host_allowed("MCP.contoso.com:443", &allowed));
        assert!(host_allowed("127.0.0.1:3111", &allowed));
        assert!(!host_allowed("127.0.0.1:9999", &allowed));
        assert!(!host_allowed("evil.example.com", &allowed));
    }

    #[test]
    fn origins_match_exactly() {
        let allowed = vec!["https://claude.ai".to_owned()];
        assert!(origin_allowed("https://claude.ai", &allowed));
        assert!(!origin_allowed("http://claude.ai", &allowed));
        assert!(!origin_allowed("https://evil.claude.ai.example", &allowed));
        assert!(!origin_allowed("null", &allowed));
    }
}
