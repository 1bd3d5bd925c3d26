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
//!
//! # Layout
//! * this file: the seam ([`Application`]: build, run), the shared [`AppState`] and readiness.
//! * `connections`: the accept loop and its bounds (header and idle timeouts, connection cap,
//!   graceful drain).
//! * `routes`: the router, Protected Resource Metadata, `/readyz`, `/metrics`.
//! * `guards`: the in-flight cap and the Host/Origin allow-lists.

mod connections;
mod guards;
mod routes;

use connections::{ConnectionLimits, serve_connections};

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::Router;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    audit::{AuditError, AuditEvent, AuditLog, Outcome, RequestTrace, refusals::Refusals},
    auth::{self, AuthState, JwksKeyStore, KeyStore, Validator, rate_limit::RateLimiter},
    clock::Clock,
    config::Settings,
    graph::GraphClient,
    metrics::Metrics,
    obo::{OboEvent, TokenProvider},
    policy::{PolicyError, PolicyStore},
    tools::ToolContext,
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
        let router = routes::router(state.clone(), auth_state, tool_ctx, background.child_token());
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

pub use guards::{host_allowed, origin_allowed};
