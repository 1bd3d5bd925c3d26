//! The axum application: `/mcp` (rmcp Streamable HTTP, stateless, dual-era) behind the auth
//! middleware, Protected Resource Metadata, `/healthz`, `/readyz`, `/metrics`.
//!
//! One seam: [`Application::build`] takes validated [`Settings`] and [`Dependencies`] (the
//! clock and whatever a test overrides), binds the listener, and returns an [`Application`]
//! that [`Application::run_until_stopped`] serves until the shutdown future completes, then
//! drains in-flight calls.
//!
//! Layers in front of `/mcp`, outermost first: Host/Origin allow-lists (403), the global
//! in-flight cap (fast 503), the body limit (413), the auth middleware (request id and peer,
//! per-peer 429 for floods of refused tokens, 401/403/503, per-caller 429, the request timeout),
//! then rmcp.

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
use tower::ServiceExt as _;
use tower_http::limit::RequestBodyLimitLayer;

use crate::{
    audit::{
        AuditError, AuditEvent, AuditLog, Outcome, RequestTrace, peer::ConnectedPeer,
        refusals::Refusals,
    },
    auth::{
        self, AuthState, JwksKeyStore, KeyStore, Validator, prm::ProtectedResourceMetadata,
        rate_limit::RateLimiter,
    },
    clock::Clock,
    config::Settings,
    graph::GraphClient,
    http::HttpRefusal,
    metrics::{Metrics, names},
    obo::{OboEvent, TokenProvider},
    policy::{PolicyError, PolicyStore},
    tools::{Connector, ToolContext},
};

/// Gap between the two reads of the policy file that must agree before a reload triggered
/// by a tenant epoch applies it (the poll's settling rule, without waiting for a poll).
const EPOCH_SETTLE_GAP: Duration = Duration::from_millis(50);
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
    /// The auth middleware's state (its refusal aggregation is flushed in the background).
    auth: std::sync::OnceLock<Arc<AuthState>>,
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
    crate::http::entra_client(
        settings.entra.http_timeout.max(settings.graph.timeout),
        settings.graph.connect_timeout,
    )
    .map_err(|e| e.to_string())
}

pub use crate::http::install_crypto;

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
            None => Arc::new(AuditLog::open(settings.audit.writer_options(), clock.clone())?),
        };
        let keys: Arc<dyn KeyStore> = match deps.key_store {
            Some(k) => k,
            None => Arc::new(
                JwksKeyStore::new(
                    http.clone(),
                    settings.entra.jwks_url(),
                    settings.entra.jwks_refresh_floor,
                )
                .with_max_stale(settings.entra.jwks_max_stale),
            ),
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
            auth: std::sync::OnceLock::new(),
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
                // than at the next poll, so this instance refuses the tenant on the call that
                // saw the epoch. With the poll's own settling rule over a short gap: two reads
                // `EPOCH_SETTLE_GAP` apart must agree, so a file caught mid-write is left to
                // the poll.
                store.on_epoch_change(move |_| {
                    let reload = reload.clone();
                    async move {
                        let settled =
                            crate::shared::reload_policy_settled(&reload, EPOCH_SETTLE_GAP).await;
                        if let Err(e) = settled {
                            tracing::warn!(error = %e, "Policy reload after a tenant epoch change failed");
                        }
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
            refusals: Refusals::new(
                settings.audit.refusal_interval,
                settings.audit.refusals_per_peer,
            ),
            trusted_proxies: settings.audit.trusted_proxies.clone(),
            request_timeout: settings.limits.request_timeout,
        });
        let _ = state.auth.set(auth_state.clone());
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
            // Called in the task of the call that asked for the token: the call's record says
            // where the token came from; only a real exchange gets a record of its own.
            let trace = RequestTrace::current();
            if let Some(trace) = &trace {
                trace.note_obo(e.from_cache, e.coalesced, e.error_code.as_deref());
            }
            if !e.from_cache && !e.coalesced {
                let event = AuditEvent::OboExchange {
                    tenant_id: e.tenant,
                    user_id: e.user,
                    outcome: if e.error_code.is_none() { Outcome::Ok } else { Outcome::Error },
                    error_code: e.error_code.clone(),
                    request_id: trace.as_ref().map(|t| t.request_id.clone()),
                };
                // Committed with the call's own record, before the answer leaves.
                match &trace {
                    Some(trace) => trace.push(event),
                    None => obo_audit.record_detached(event),
                }
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
        let settings_ttl = crate::tools::mailbox::SETTINGS_TTL.min(provider.settings().max_reuse);
        let tool_ctx = Arc::new(ToolContext {
            settings: crate::tools::mailbox::SettingsCache::new(settings_ttl, 100_000),
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
        let refusals_flushed = state.auth.get().cloned().map(|auth| {
            tokio::spawn(auth::flush_refusals_periodically(auth, background.child_token()))
        });
        let grace = settings.limits.shutdown_grace;
        let limits = ConnectionLimits {
            header_timeout: settings.limits.header_timeout,
            idle_timeout: settings.limits.idle_timeout,
            max_connections: settings.limits.max_connections,
            max_streams: u32::try_from(settings.limits.max_in_flight).unwrap_or(u32::MAX),
        };
        serve_connections(listener, router, limits, grace, shutdown).await;
        background.cancel();
        // The last aggregated refusal counts are written before the process may exit.
        if let Some(flushed) = refusals_flushed {
            let _ = flushed.await;
        }
        Ok(())
    }
}

/// How the accept loop bounds connections.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    max_streams: u32,
}

/// The accept loop. `axum::serve` sets no hyper timer, so it cannot bound how long a client
/// takes to send its request head; this loop does (`header_timeout`, HTTP/1), which stops
/// slow-header (slowloris) connections from pinning sockets. Both protocols (HTTP/1 and h2c,
/// which has no header timer) are also bounded by an idle timeout (no request in flight and
/// no byte moving) and by a cap on open connections (further ones wait in the kernel's listen
/// backlog, costing nothing here). On shutdown it stops accepting, asks every connection to
/// finish its in-flight requests for up to `grace`, then drops what remains.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::conn::auto::Builder,
        service::TowerToHyperService,
    };

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.idle_timeout / 2);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let draining = tokio_util::sync::CancellationToken::new();
    let open = tokio_util::task::TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
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
                let activity = Arc::new(connection::Activity::new());
                // Every request learns its TCP peer (audit records, per-peer refusal budgets)
                // and counts as activity while in flight.
                let service = TowerToHyperService::new(
                    router
                        .clone()
                        .map_request(with_peer(peer))
                        .map_future(connection::track_request(activity.clone())),
                );
                let io = TokioIo::new(connection::Tracked::new(stream, activity.clone()));
                let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
                let draining = draining.clone();
                let idle_timeout = limits.idle_timeout;
                open.spawn(async move {
                    let _slot = slot;
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        // A client that hangs up or times out is not an error worth logging.
                        _ = connection.as_mut() => return,
                        () = activity.idle_for(idle_timeout) => {}
                        () = draining.cancelled() => {}
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("Shutting down: draining in-flight calls");
    draining.cancel();
    open.close();
    tokio::select! {
        () = open.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("Drain deadline reached; dropping remaining calls");
        }
    }
}

/// Per-connection activity: bytes moving and requests in flight, for the idle timeout.
mod connection {
    use std::{
        future::Future,
        io,
        pin::Pin,
        sync::{
            Arc,
            atomic::{AtomicU64, AtomicUsize, Ordering},
        },
        task::{Context, Poll},
        time::Duration,
    };

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::time::Instant;

    pub struct Activity {
        started: Instant,
        /// Milliseconds after `started` of the last byte read or written.
        last_io_ms: AtomicU64,
        in_flight: AtomicUsize,
    }

    impl Activity {
        pub fn new() -> Self {
            Self {
                started: Instant::now(),
                last_io_ms: AtomicU64::new(0),
                in_flight: AtomicUsize::new(0),
            }
        }

        fn touch(&self) {
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_io_ms.store(ms, Ordering::Relaxed);
        }

        /// Resolves once the connection has had no request in flight and no byte moving for
        /// `timeout`.
        pub async fn idle_for(&self, timeout: Duration) {
            loop {
                let last =
                    self.started + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
                let deadline = last + timeout;
                if Instant::now() >= deadline {
                    if self.in_flight.load(Ordering::Relaxed) == 0 {
                        return;
                    }
                    // A long request is not idleness: look again a little later.
                    tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
                    continue;
                }
                tokio::time::sleep_until(deadline).await;
            }
        }
    }

    /// Marks a request in flight until its response future completes.
    pub fn track_request<F>(
        activity: Arc<Activity>,
    ) -> impl Fn(F) -> Pin<Box<dyn Future<Output = F::Output> + Send>> + Clone
    where
        F: Future + Send + 'static,
    {
        move |response| {
            let activity = activity.clone();
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                let out = response.await;
                activity.touch();
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                out
            })
        }
    }

    /// A socket that records when bytes move.
    pub struct Tracked<S> {
        inner: S,
        activity: Arc<Activity>,
    }

    impl<S> Tracked<S> {
        pub fn new(inner: S, activity: Arc<Activity>) -> Self {
            activity.touch();
            Self { inner, activity }
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.activity.touch();
            }
            polled
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, data);
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.activity.touch();
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.activity.touch();
            }
            polled
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
    }
}

/// Tags a request with the TCP peer of its connection.
fn with_peer<B>(peer: SocketAddr) -> impl Fn(http::Request<B>) -> http::Request<B> + Clone {
    move |mut req| {
        req.extensions_mut().insert(ConnectedPeer(peer));
        req
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
        auth: std::sync::OnceLock::new(),
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

/// Fast 503 when the global in-flight cap is reached: refusing early is cheaper than queueing
/// work that will time out anyway.
async fn shed(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.inc(names::SHED, &[]);
        return HttpRefusal::Overloaded.into_response();
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
