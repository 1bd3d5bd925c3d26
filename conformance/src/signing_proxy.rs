//! TEST ONLY: a second MCP URL for clients that cannot send a bearer token (the official MCP
//! conformance suite's `server` command). Every request it receives is forwarded to the
//! connector's `/mcp` with one persona's bearer token added, so whoever can reach it acts as
//! that persona. It therefore binds to loopback only and refuses any other address; the
//! sandbox starts it only when asked (`--signing-proxy-listen`), never by default.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};
use futures::stream;
use tokio_util::sync::CancellationToken;

use crate::Session;

/// Request headers not forwarded: the proxy sets its own authority and credentials, and
/// hop-by-hop headers belong to one connection.
const DROPPED_REQUEST: [header::HeaderName; 5] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONTENT_LENGTH,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
];
/// Response headers not copied back (the body is re-framed).
const DROPPED_RESPONSE: [header::HeaderName; 3] =
    [header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING];

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    session: std::sync::Arc<Session>,
}

/// A running signing proxy; dropping it stops it.
pub struct SigningProxy {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl SigningProxy {
    /// Serves `http://{listen}/mcp`, forwarding to `upstream` (the connector's MCP URL) as
    /// `session`'s persona. `listen` must be a loopback address.
    pub async fn start(listen: SocketAddr, upstream: &str, session: Session) -> Result<Self> {
        if !listen.ip().is_loopback() {
            bail!(
                "the signing proxy signs every request as {}: it listens on loopback only, \
                 not on {listen} (use 127.0.0.1 or ::1)",
                session.upn
            );
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind the signing proxy to {listen}"))?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("reqwest client")?;
        let state =
            Proxy { upstream: upstream.to_owned(), http, session: std::sync::Arc::new(session) };
        let app = Router::new().route("/mcp", any(forward)).with_state(state);
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        Ok(Self { addr, stop })
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for SigningProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Refresh a token close to expiry so a long client run keeps working.
    if p.session.expires_in() < 120 {
        let _ = p.session.refresh().await;
    }
    let mut request = p.http.request(method, &p.upstream).body(body);
    for (name, value) in &headers {
        if !DROPPED_REQUEST.contains(name) {
            request = request.header(name, value);
        }
    }
    request = request.bearer_auth(p.session.token());
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_GATEWAY, format!("the connector did not answer: {e}"))
                .into_response();
        }
    };
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !DROPPED_RESPONSE.contains(name) {
            response = response.header(name, value);
        }
    }
    // Streamed through as it arrives (MCP answers may be SSE).
    let body = stream::unfold(upstream, |mut r| async move {
        match r.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), r)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), r)),
        }
    });
    response
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
