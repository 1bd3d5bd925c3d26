//! A recording reverse proxy in front of fake-graph, used only during calibration.
//!
//! fake-graph's journal records method and URI but not request bodies, so the replay cannot
//! learn a `POST /search/query` body from it. Before the measured run, a separate connector
//! process is pointed at this proxy and makes each call template once; the POST bodies it
//! sends are kept per template and reused for the same template's POSTs in the replay. The
//! measured connector talks to fake-graph directly: this proxy is never on the timed path.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{Request, Response, StatusCode},
};

/// One request the connector sent to Graph through the proxy.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path_and_query: String,
    pub body: Bytes,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Captured>>>,
}

/// A running capture proxy; stops when dropped.
pub struct CaptureProxy {
    pub uri: String,
    seen: Arc<Mutex<Vec<Captured>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CaptureProxy {
    /// Proxies `http://127.0.0.1:PORT/…` to `upstream/…` (fake-graph's base URL).
    pub async fn start(upstream: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("proxy client")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState { upstream: upstream.to_owned(), http, seen: seen.clone() };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let uri = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { uri, seen, stop: Some(tx) })
    }

    /// Everything captured since the last call.
    pub fn drain(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for CaptureProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn forward(State(state): State<ProxyState>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path_and_query =
        parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large for the capture proxy");
    };
    state.seen.lock().unwrap_or_else(|e| e.into_inner()).push(Captured {
        method: parts.method.to_string(),
        path_and_query: path_and_query.clone(),
        body: body.clone(),
    });
    let mut out = state
        .http
        .request(parts.method.clone(), format!("{}{path_and_query}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let answer = match out.send().await {
        Ok(r) => r,
        Err(_) => return plain(StatusCode::BAD_GATEWAY, "fake-graph did not answer"),
    };
    let mut resp = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != axum::http::header::TRANSFER_ENCODING
            && name != axum::http::header::CONTENT_LENGTH
            && name != axum::http::header::CONNECTION
        {
            resp = resp.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    resp.body(Body::from(bytes))
        .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "unrepresentable answer"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}
