//! The axum application: `/mcp` (rmcp Streamable HTTP, stateless, dual-era) behind the auth
//! middleware, Protected Resource Metadata, `/healthz`, `/readyz`, `/metrics`.
//!
//! One seam: [`Application::build`] takes validated [`Settings`] and [`Dependencies`] (the
//! clock and whatever a test overrides), binds the listener, and returns an [`Application`]
//! that [`Application::run_until_stopped`] serves until the shutdown future completes, then
//! drains in-flight calls.
//!
//! Layers in front of `/mcp`, outermost first: Host/Origin allow-lists (403), the global
//! in-flight cap (fast 503), the body limit (413), the request timeout, the auth middleware
//! (401/403/503, per-caller 429), then rmcp.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

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
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

use crate::{
    audit::{AuditError, AuditEvent, AuditLog},
    auth::{
        self, AuthState, JwksKeyStore, KeyStore, Validator, prm::ProtectedResourceMetadata,
        rate_limit::RateLimiter,
    },
    clock::Clock,
    config::Settings,
    graph::GraphClient,
    metrics::{Metrics, names},
    obo::{OboEvent, TokenProvider},
    policy::{PolicyError, PolicyStore},
    tools::{Connector, ToolContext},
};

/// Path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";
/// Root Protected Resource Metadata path.
pub const PRM_ROOT: &str = "/.well-known/oauth-protected-resource";
/// Path-specific Protected Resource Metadata path for `/mcp`.
pub const PRM_MCP: &str = "/.well-known/oauth-protected-resource/mcp";

/// What tests (and `main`) may provide instead of the defaults built from settings.
#[derive(Default)]
pub struct Dependencies {
    pub clock: Clock,
    /// The outbound HTTP client (Entra, Graph); built from settings when absent.
    pub http: Option<reqwest::Client>,
    pub key_store: Option<Arc<dyn KeyStore>>,
    pub metrics: Option<Arc<Metrics>>,
    pub policy: Option<Arc<PolicyStore>>,
    pub audit: Option<Arc<AuditLog>>,
    /// The HTTP client for Graph; built from the Graph settings when absent.
    pub graph_http: Option<reqwest::Client>,
    /// Use this listener instead of binding `settings.server.listen`.
    pub listener: Option<std::net::TcpListener>,
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Shared state of the non-MCP routes.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub policy: Arc<PolicyStore>,
    pub audit: Arc<AuditLog>,
    pub keys: Arc<dyn KeyStore>,
    pub discovery_ok: AtomicBool,
    /// The OBO token provider, set once the application is built (test inspection, T07).
    token_provider: std::sync::OnceLock<TokenProvider>,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
    /// `[redis]`, when configured: `/readyz` reports it degraded (still ready) while skipped.
    shared: std::sync::OnceLock<crate::shared::SharedStore>,
}

/// A built, bound, not yet running application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    addr: SocketAddr,
    background: CancellationToken,
}

/// Builds the outbound HTTP client with the defaults that matter: timeouts, no redirects, no
/// system proxy.
pub fn http_client(settings: &Settings) -> Result<reqwest::Client, String> {
    install_crypto();
    reqwest::Client::builder()
        .timeout(settings.entra.http_timeout.max(settings.graph.timeout))
        .connect_timeout(settings.graph.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("m365-connector/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// Installs the rustls `ring` provider (reqwest is built without one); idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    /// Wires everything and binds the listener; keys and discovery are fetched once here
    /// (best effort: readiness stays false until they load) and then in the background.
    pub async fn build(settings: Settings, deps: Dependencies) -> Result<Self, StartupError> {
        install_crypto();
        let clock = deps.clock.clone();
        let http = match deps.http {
            Some(h) => h,
            None => http_client(&settings).map_err(StartupError::Http)?,
        };
        let metrics = deps.metrics.unwrap_or_default();
        let policy = match deps.policy {
            Some(p) => p,
            None => Arc::new(PolicyStore::open(&settings.policy.path)?),
        };
        let audit = match deps.audit {
            Some(a) => a,
            None => {
                Arc::new(AuditLog::open(&settings.audit.path, settings.audit.fsync, clock.clone())?)
            }
        };
        let keys: Arc<dyn KeyStore> = match deps.key_store {
            Some(k) => k,
            None => Arc::new(JwksKeyStore::new(
                http.clone(),
                settings.entra.jwks_url(),
                settings.entra.jwks_refresh_floor,
            )),
        };

        let listener = match deps.listener {
            Some(l) => {
                l.set_nonblocking(true).map_err(|source| StartupError::Bind {
                    addr: settings.server.listen,
                    source,
                })?;
                TcpListener::from_std(l)
            }
            None => TcpListener::bind(settings.server.listen).await,
        }
        .map_err(|source| StartupError::Bind { addr: settings.server.listen, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr: settings.server.listen, source })?;

        let state = Arc::new(AppState {
            metrics: metrics.clone(),
            policy: policy.clone(),
            audit: audit.clone(),
            keys: keys.clone(),
            discovery_ok: AtomicBool::new(false),
            token_provider: std::sync::OnceLock::new(),
            http: http.clone(),
            in_flight: Arc::new(Semaphore::new(settings.limits.max_in_flight)),
            shared: std::sync::OnceLock::new(),
            settings: settings.clone(),
        });

        let background = CancellationToken::new();
        // First load, so a healthy start is ready at once; failures are retried below.
        if let Err(e) = state.load_discovery().await {
            tracing::warn!(error = %e, "OpenID discovery is not reachable yet");
        }
        if let Err(e) = keys.refresh().await {
            tracing::warn!(error = %e, "Signing keys are not reachable yet");
        }

        // [redis] (crate::shared): one cache, one rate budget and one tenant epoch for all
        // instances. Without it everything stays in process, exactly as before.
        let shared = match &settings.redis {
            Some(config) => {
                let names = settings.obo_settings()?.cache_keys;
                let store = crate::shared::SharedStore::new(config.clone(), names, metrics.clone())
                    .map_err(|e| crate::config::ConfigError::Invalid {
                        setting: "redis.url",
                        reason: e.to_string(),
                    })?;
                let reload = policy.clone();
                // Another instance disabled a tenant: read the (shared) policy file now rather
                // than at the next poll, so this instance refuses the tenant on its next call.
                store.on_epoch_change(move |_| {
                    if !reload.path().as_os_str().is_empty()
                        && let Err(e) = reload.reload()
                    {
                        tracing::warn!(error = %e, "Policy reload after a tenant epoch change failed");
                    }
                });
                let _ = state.shared.set(store.clone());
                Some(store)
            }
            None => None,
        };
        let auth_state = Arc::new(AuthState {
            validator: Validator::new(
                settings.entra.clone(),
                keys.clone(),
                clock.clone(),
                policy.clone(),
            ),
            resource_metadata: settings.server.resource_metadata_url(),
            scope: settings.entra.qualified_scope(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            rate_limiter: RateLimiter::new(
                settings.limits.per_caller_per_minute,
                settings.limits.per_caller_burst,
            )
            .with_shared(shared.clone()),
            retry_after: settings.entra.jwks_refresh_floor,
        });
        let graph_settings = settings.graph_settings();
        let graph_http = match deps.graph_http {
            Some(h) => h,
            None => crate::graph::http_client(&graph_settings)
                .map_err(|e| StartupError::Http(e.to_string()))?,
        };
        let graph = GraphClient::new(graph_settings, graph_http, metrics.clone());
        let obo_audit = audit.clone();
        let provider = TokenProvider::new(
            settings.obo_settings()?,
            http.clone(),
            clock.clone(),
            metrics.clone(),
        )
        .with_union(crate::tools::permissions::union_scopes())
        .with_observer(Arc::new(move |e: &OboEvent| {
            let event = AuditEvent::OboExchange {
                tenant_id: e.tenant,
                user_id: e.user,
                outcome: if e.error_code.is_none() { "ok".into() } else { "error".into() },
                error_code: e.error_code.clone(),
                cache_hit: e.from_cache,
            };
            if let Err(err) = obo_audit.record(event) {
                tracing::error!(error = %err, "Audit write failed for an OBO exchange");
            }
        }));
        let provider = match &shared {
            Some(store) => provider.with_cache(Arc::new(
                crate::shared::tiered::TieredTokenCache::new(store.clone(), 100_000),
            )),
            None => provider,
        };
        let _ = state.token_provider.set(provider.clone());
        let purge = provider.clone();
        policy.on_tenants_disabled(move |tenants| {
            for tid in tenants {
                purge.purge_tenant(*tid);
            }
        });
        // Mailbox settings are reused no longer than an OBO token would be.
        let settings_ttl = crate::tools::timezone::SETTINGS_TTL.min(provider.settings().max_reuse);
        let tool_ctx = Arc::new(ToolContext {
            settings: crate::tools::timezone::SettingsCache::new(settings_ttl, 100_000),
            provider,
            graph,
            policy: policy.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            audit_query_text: settings.audit.include_query_text,
            cursor: match &settings.cursor_key {
                Some(key) => crate::tools::cursor::CursorKey::new(*key.expose(), clock.clone()),
                None => crate::tools::cursor::CursorKey::random(clock.clone()),
            },
        });
        let router = router(state.clone(), auth_state, tool_ctx, background.child_token());
        Ok(Self { listener, router, state, addr, background })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, drains in-flight calls (bounded
    /// by `limits.shutdown_grace`) and stops the background tasks.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self { listener, router, state, background, .. } = self;
        let settings = &state.settings;
        tokio::spawn(auth::jwks::refresh_periodically(
            state.keys.clone(),
            settings.entra.jwks_refresh_interval,
            background.child_token(),
        ));
        tokio::spawn(discovery_until_loaded(state.clone(), background.child_token()));
        if !state.policy.path().as_os_str().is_empty() {
            tokio::spawn(
                state.policy.clone().watch(settings.policy.poll, background.child_token()),
            );
        }
        let grace = settings.limits.shutdown_grace;
        let header_timeout = settings.limits.header_timeout;
        serve_connections(listener, router, header_timeout, grace, shutdown).await;
        background.cancel();
        Ok(())
    }
}

/// The accept loop. `axum::serve` sets no hyper timer, so it cannot bound how long a client
/// takes to send its request head; this loop does (`header_timeout`), which stops slow-header
/// (slowloris) connections from pinning sockets. On shutdown it stops accepting, lets in-flight
/// requests finish for up to `grace`, then drops what remains.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "Accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Without it, the tail segment of a response larger than one write waits for
                // the client's delayed ACK (Nagle), up to 40 ms on Linux.
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that hangs up or times out is not an error worth logging.
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("Shutting down: draining in-flight calls");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("Drain deadline reached; dropping remaining calls");
        }
    }
}

impl AppState {
    /// The OBO token provider of the running application (for test inspection: its
    /// [`TokenProvider::cache_snapshot_for_tests`]).
    pub fn token_provider(&self) -> Option<&TokenProvider> {
        self.token_provider.get()
    }

    async fn load_discovery(&self) -> Result<(), String> {
        let url = self.settings.entra.discovery_url();
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("discovery request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("discovery answered {}", response.status()));
        }
        let doc: serde_json::Value =
            response.json().await.map_err(|e| format!("discovery is not JSON: {e}"))?;
        let issuer = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or_default();
        let expected = self.settings.entra.issuer_for(auth::validate::TENANT_PLACEHOLDER);
        if issuer != expected {
            return Err(format!(
                "discovery issuer is `{issuer}`, expected the template `{expected}`"
            ));
        }
        self.discovery_ok.store(true, Ordering::Release);
        Ok(())
    }

    /// True once discovery and the signing keys have loaded.
    pub fn is_ready(&self) -> bool {
        self.discovery_ok.load(Ordering::Acquire) && self.keys.is_ready()
    }
}

async fn discovery_until_loaded(state: Arc<AppState>, stop: CancellationToken) {
    while !state.discovery_ok.load(Ordering::Acquire) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        if let Err(e) = state.load_discovery().await {
            tracing::warn!(error = %e, "OpenID discovery still unreachable");
        }
    }
}

/// Checks OpenID discovery and the signing keys (the `check-config` command).
pub async fn check_reachability(settings: &Settings) -> Result<String, String> {
    let http = http_client(settings)?;
    let keys = JwksKeyStore::new(
        http.clone(),
        settings.entra.jwks_url(),
        settings.entra.jwks_refresh_floor,
    );
    let state = AppState {
        settings: settings.clone(),
        metrics: Arc::default(),
        policy: Arc::new(PolicyStore::fixed(Default::default())),
        audit: Arc::new(AuditLog::to_writer(std::io::sink(), Clock::system())),
        keys: Arc::new(JwksKeyStore::new(http.clone(), String::new(), Duration::from_secs(60))),
        discovery_ok: AtomicBool::new(false),
        token_provider: std::sync::OnceLock::new(),
        http,
        in_flight: Arc::new(Semaphore::new(1)),
        shared: std::sync::OnceLock::new(),
    };
    state.load_discovery().await?;
    let n = keys.refresh().await?;
    Ok(format!(
        "discovery OK ({}), {n} signing keys from {}",
        settings.entra.discovery_url(),
        settings.entra.jwks_url()
    ))
}

fn router(
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
        .layer(middleware::from_fn_with_state(auth_state, auth::require_caller))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            s.limits.request_timeout,
        ))
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

/// Fast 503 when the global in-flight cap is reached: refusing early is cheaper than queueing
/// work that will time out anyway.
async fn shed(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.inc(names::SHED, &[]);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            axum::Json(serde_json::json!({
                "error": "overloaded",
                "error_description": "the connector is at capacity; retry shortly",
            })),
        )
            .into_response();
    };
    next.run(req).await
}

/// DNS-rebinding protection (MCP transport rules): the `Host` must be one of the configured
/// hosts, and an `Origin`, when present, one of the configured origins. 403 otherwise.
async fn host_and_origin(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
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
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"error": "forbidden", "error_description": reason})),
    )
        .into_response()
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
