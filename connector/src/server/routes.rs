//! The router: `/mcp` behind its layers, Protected Resource Metadata, `/healthz`, `/readyz`,
//! `/metrics`, and the per-route request counter.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
};
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use super::{
    AppState, MCP_PATH, PRM_MCP, PRM_ROOT,
    guards::{host_and_origin, shed},
};
use crate::{
    auth::{self, AuthState, prm::ProtectedResourceMetadata},
    metrics::names,
    tools::{Connector, ToolContext},
};

pub(super) fn router(
    state: Arc<AppState>,
    auth_state: Arc<AuthState>,
    tool_ctx: Arc<ToolContext>,
    cancel: CancellationToken,
) -> Router {
    let s = &state.settings;
    let mcp = StreamableHttpService::new(
        move || Ok(Connector::new(tool_ctx.clone())),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_allowed_hosts(s.server.allowed_hosts.clone())
            .with_allowed_origins(s.server.allowed_origins.clone())
            .enforce_origin_validation()
            .with_max_request_body_bytes(s.limits.max_body_bytes)
            .with_cancellation_token(cancel),
    );
    let mcp_routes = Router::new()
        .nest_service(MCP_PATH, mcp)
        // The request timeout is applied inside `require_caller`, which knows the request's
        // audit trace: a call cut off by it is recorded as `timeout`, not `cancelled`.
        .layer(middleware::from_fn_with_state(auth_state, auth::require_caller))
        .layer(RequestBodyLimitLayer::new(s.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), shed));
    let guarded = Router::new()
        .route(PRM_ROOT, get(prm))
        .route(PRM_MCP, get(prm))
        .with_state(state.clone())
        .merge(mcp_routes)
        .layer(middleware::from_fn_with_state(state.clone(), host_and_origin));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(guarded)
        .layer(middleware::from_fn_with_state(state, count_requests))
}

async fn prm(State(state): State<Arc<AppState>>) -> Response {
    let doc = ProtectedResourceMetadata::build(&state.settings);
    ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(doc)).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        if state.shared.get().is_some_and(crate::shared::SharedStore::degraded) {
            // Calls still work from process-local state; an orchestrator must not restart us.
            return (StatusCode::OK, "ready (degraded: Redis unreachable, state not shared)")
                .into_response();
        }
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: waiting for OpenID metadata and signing keys")
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts requests and latency per route class and status.
async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        p if p == MCP_PATH || p.starts_with("/mcp/") => "mcp",
        p if p.starts_with(PRM_ROOT) => "prm",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    state.metrics.inc(names::HTTP_REQUESTS, &[("route", route), ("status", &status)]);
    state.metrics.observe(
        names::HTTP_LATENCY,
        &[("route", route)],
        started.elapsed().as_secs_f64(),
    );
    response
}
