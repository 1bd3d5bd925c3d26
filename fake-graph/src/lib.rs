//! A fake Microsoft Graph for offline tests: it serves the fixture world (mail, calendars,
//! drives, sites, chats, teams) with Graph's shapes, and enforces what Graph enforces — token
//! validation against fake-entra's JWKS, per-endpoint scopes, tenant isolation, security
//! trimming, Continuous Access Evaluation — so that a connector passing against it works against
//! the real service and every connector mistake shows up as a failure or a journal entry.
//!
//! In outline (a complete example that runs is in the README, "Use it in your own tests"):
//!
//! ```no_run
//! # async fn f(world: std::sync::Arc<fixtures::World>, entra_uri: String) -> anyhow::Result<()> {
//! let graph = fake_graph::FakeGraph::builder().world(world).entra(&entra_uri).start().await?;
//! let base = format!("{}/v1.0", graph.uri());
//! // … point the connector at `base`, run it, then:
//! assert!(graph.mutating_requests().is_empty());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! Modules depend downwards only: the pipeline on `routes`, `routes` on the store and
//! the helpers, the store on `kql` and `text`; nothing imports back from `routes`.
//! * [`FakeGraph`], [`FakeGraphBuilder`] (this file): start on `127.0.0.1:0`, `uri()`, the
//!   journal and control methods, verify on drop, and the optional second listener that
//!   serves pre-authenticated downloads from another host ([`DownloadHost`]).
//! * `pipeline`: [`router`] and the request pipeline (ids, auth, CAE, faults, read-only guard,
//!   concurrency limit, journal).
//! * [`routes`]: the `/v1.0` API, one module per workload (`calendar`, `meeting_times`, `mail`,
//!   `files`, `search`, `teams`, `users`), dispatched on path segments.
//! * [`auth`]: token validation, the permission table, CAE.
//! * [`trimming`]: who may see which drive item, site, chat.
//! * [`error`]: Graph's error envelope and per-service codes.
//! * [`faults`]: scripted throttling, 5xx, latency, broken bodies; Outlook's concurrency limit.
//! * [`journal`]: the request journal (activity-log columns).
//! * [`control`]: the `/_fake/…` HTTP control API mirroring the handle's methods.
//! * [`odata`]: `$filter`, `$orderby`, `$select`, `$top`, paging links.
//! * [`kql`]: the KQL subset of `/search/query` and `$search`: `lex`, `parse`, `eval` (the
//!   compiled query), `index` (postings), `highlight`; the scan oracle in tests only.
//! * [`text`]: plain text out of HTML bodies and files, for indexes, previews and summaries.
//! * `store`: the world and its per-tenant indexes.
//! * `wire`: JSON written straight into response buffers (list hot paths).

pub mod auth;
pub mod control;
pub mod error;
pub mod faults;
pub mod journal;
pub mod kql;
pub mod odata;
mod pipeline;
pub mod routes;
mod store;
pub mod text;
pub mod trimming;
mod wire;

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use fixtures::{Clock, Grantee, Message, World};
use uuid::Uuid;

pub use auth::{CaeEvent, Caller};
pub use error::{GraphError, Service};
pub use faults::{ConcurrencyScope, Fault, FaultMatch, FaultRule, RetryAfter, ThrottleKind};
pub use journal::JournalEntry;
pub use pipeline::{download_router, is_mutating, router};
pub use store::search_index_bytes;

use crate::{auth::Auth, faults::Faults, journal::Journal, store::Store};

/// The README's examples ("Use it in your own tests"), compiled and run as doc tests so the
/// README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;

/// How cp1 tokens learn about CAE events from fake-entra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaeSync {
    /// Pull the feed before checking every cp1 request: exact, for tests.
    PerRequest,
    /// Pull the feed in the background at this interval: cheap, for benchmarks.
    Background(Duration),
    /// Never pull; only [`FakeGraph::revoke_sessions`] records events.
    Off,
}

/// One pre-authenticated download served from `/_download/…`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRecord {
    pub time: DateTime<Utc>,
    pub drive_id: String,
    pub item_id: String,
    pub status: u16,
    /// The client sent an `Authorization` header to the download URL (it must not).
    pub had_authorization: bool,
    pub range: Option<String>,
}

/// Server state shared by every request.
pub struct Shared {
    pub(crate) store: RwLock<Store>,
    pub(crate) clock: Clock,
    pub(crate) auth: Auth,
    pub(crate) faults: Faults,
    pub(crate) journal: Journal,
    pub(crate) cae_sync: CaeSync,
    pub(crate) download_key: [u8; 32],
    pub(crate) download_ttl: Duration,
    pub(crate) base_url: OnceLock<String>,
    /// Base URL of pre-authenticated downloads when a second listener serves them.
    pub(crate) download_base_url: OnceLock<String>,
    pub(crate) rethrottle_early_retries: bool,
    pub(crate) downloads: std::sync::Mutex<Vec<DownloadRecord>>,
    /// (tid, oid, entity, query) of search requests that started at `from = 0`.
    pub(crate) search_first_pages:
        std::sync::Mutex<std::collections::HashSet<(Uuid, Uuid, String, String)>>,
}

impl Shared {
    /// The base URL of pre-authenticated download URLs: the download listener's when
    /// [`DownloadHost::Separate`], else [`Shared::base`].
    pub fn download_base(&self) -> &str {
        self.download_base_url.get().map_or_else(|| self.base(), String::as_str)
    }

    /// The public base URL (`http://127.0.0.1:port`), used for absolute links.
    pub fn base(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("http://127.0.0.1")
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn edit<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut store.world);
        store.reindex();
        out
    }
}

/// Where `@microsoft.graph.downloadUrl` and the `/content` redirect point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadHost {
    /// The Graph listener itself: `{uri}/_download/…` (the default).
    SameAsGraph,
    /// A second listener that serves only `/_download/…`, as SharePoint's download hosts are
    /// another origin than `graph.microsoft.com`: a client must not send Graph's bearer there,
    /// and the Graph listener no longer serves downloads.
    Separate {
        /// Address to bind. `127.0.0.2` falls back to `127.0.0.1` (another port) where only
        /// `127.0.0.1` binds (macOS without an alias).
        listen: SocketAddr,
        /// Base URL written into download URLs (default `http://{bound address}`), e.g. a
        /// SharePoint-like name that the client maps to the bound address.
        public_url: Option<String>,
    },
}

impl DownloadHost {
    /// A second listener on `127.0.0.2` (another host than the Graph listener's `127.0.0.1`),
    /// named by its address.
    pub fn separate_loopback() -> Self {
        Self::Separate { listen: SocketAddr::from(([127, 0, 0, 2], 0)), public_url: None }
    }
}

/// Builder for [`FakeGraph`].
#[must_use]
pub struct FakeGraphBuilder {
    world: Option<Arc<World>>,
    entra: Option<String>,
    clock: Clock,
    listen: SocketAddr,
    public_url: Option<String>,
    cae_sync: CaeSync,
    download_ttl: Duration,
    mailbox_concurrency: u64,
    concurrency_scope: ConcurrencyScope,
    rethrottle_early_retries: bool,
    read_only_on_drop: bool,
    download_host: DownloadHost,
}

impl Default for FakeGraphBuilder {
    fn default() -> Self {
        Self {
            world: None,
            entra: None,
            clock: Clock::system(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            cae_sync: CaeSync::PerRequest,
            download_ttl: Duration::from_secs(3600),
            mailbox_concurrency: 4,
            concurrency_scope: ConcurrencyScope::PerAppAndMailbox,
            rethrottle_early_retries: false,
            read_only_on_drop: false,
            download_host: DownloadHost::SameAsGraph,
        }
    }
}

impl FakeGraphBuilder {
    /// The world to serve (required).
    pub fn world(mut self, world: Arc<World>) -> Self {
        self.world = Some(world);
        self
    }

    /// fake-entra's base URL: JWKS at `{entra}/common/discovery/v2.0/keys`, CAE feed at
    /// `{entra}/_fake/events` (required).
    pub fn entra(mut self, uri: &str) -> Self {
        self.entra = Some(uri.to_owned());
        self
    }

    /// The shared clock (default: system time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Address to bind (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Base URL written into `@odata.nextLink` and download URLs (default: the bound address).
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.trim_end_matches('/').to_owned());
        self
    }

    pub fn cae_sync(mut self, mode: CaeSync) -> Self {
        self.cae_sync = mode;
        self
    }

    /// Lifetime of pre-authenticated download URLs (default one hour).
    pub fn download_ttl(mut self, ttl: Duration) -> Self {
        self.download_ttl = ttl;
        self
    }

    /// Outlook's concurrent requests per [`ConcurrencyScope`] (default 4; 0 disables).
    pub fn mailbox_concurrency(mut self, limit: u64) -> Self {
        self.mailbox_concurrency = limit;
        self
    }

    /// What Outlook's concurrency limit counts over (default
    /// [`ConcurrencyScope::PerAppAndMailbox`]; [`ConcurrencyScope::PerApp`] is the stricter
    /// reading of Microsoft's documentation, `graph.md` §4.2).
    pub fn concurrency_scope(mut self, scope: ConcurrencyScope) -> Self {
        self.concurrency_scope = scope;
        self
    }

    /// Answer a request that ignored its `Retry-After` with another 429 (default: record only).
    pub fn rethrottle_early_retries(mut self, on: bool) -> Self {
        self.rethrottle_early_retries = on;
        self
    }

    /// Expect no mutating request: dropping the handle then runs [`FakeGraph::verify_read_only`]
    /// and panics, listing them, if any write was attempted (default off). Like wiremock's
    /// verify on drop, it stays quiet (and logs instead) when the thread is already panicking,
    /// so a failing test reports its own failure rather than aborting on a double panic.
    pub fn read_only_on_drop(mut self, on: bool) -> Self {
        self.read_only_on_drop = on;
        self
    }

    /// Where pre-authenticated downloads are served (default [`DownloadHost::SameAsGraph`]).
    pub fn download_host(mut self, host: DownloadHost) -> Self {
        self.download_host = host;
        self
    }

    /// Binds and serves; the server stops when the handle is dropped.
    pub async fn start(self) -> anyhow::Result<FakeGraph> {
        let world = self
            .world
            .ok_or_else(|| anyhow::anyhow!("FakeGraph needs a world: call .world(..)"))?;
        let entra = self
            .entra
            .ok_or_else(|| anyhow::anyhow!("FakeGraph needs fake-entra's URL: call .entra(..)"))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut download_key = [0u8; 32];
        rand::fill(&mut download_key);
        let faults = Faults::default();
        faults
            .mailbox_concurrency
            .store(self.mailbox_concurrency, std::sync::atomic::Ordering::Relaxed);
        faults.set_concurrency_scope(self.concurrency_scope);
        let shared = Arc::new(Shared {
            store: RwLock::new(Store::new((*world).clone())),
            clock: self.clock,
            auth: Auth::new(&entra)?,
            faults,
            journal: Journal::default(),
            cae_sync: self.cae_sync,
            download_key,
            download_ttl: self.download_ttl,
            base_url: OnceLock::new(),
            download_base_url: OnceLock::new(),
            rethrottle_early_retries: self.rethrottle_early_retries,
            downloads: std::sync::Mutex::new(Vec::new()),
            search_first_pages: std::sync::Mutex::new(Default::default()),
        });
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let base = self.public_url.unwrap_or_else(|| format!("http://{addr}"));
        let _ = shared.base_url.set(base.clone());
        let download_server = match self.download_host {
            DownloadHost::SameAsGraph => None,
            DownloadHost::Separate { listen, public_url } => {
                let listener = bind_download_listener(listen).await?;
                let addr = listener.local_addr()?;
                let base = public_url.unwrap_or_else(|| format!("http://{addr}"));
                let _ = shared.download_base_url.set(base.trim_end_matches('/').to_owned());
                let app = pipeline::download_router(shared.clone());
                Some(tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, app).await {
                        tracing::error!(%error, "fake-graph download server stopped");
                    }
                }))
            }
        };
        let app = router(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(%error, "fake-graph server stopped");
            }
        });
        let poller = match self.cae_sync {
            CaeSync::Background(every) => {
                let shared = shared.clone();
                Some(tokio::spawn(async move {
                    loop {
                        shared.auth.sync_cae().await;
                        tokio::time::sleep(every).await;
                    }
                }))
            }
            _ => None,
        };
        Ok(FakeGraph {
            shared,
            addr,
            base,
            stop: Some(stop_tx),
            server,
            download_server,
            poller,
            read_only_on_drop: self.read_only_on_drop,
        })
    }
}

/// A running fake Graph. Dropping it stops the server.
pub struct FakeGraph {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    /// The download listener's server, with [`DownloadHost::Separate`].
    download_server: Option<tokio::task::JoinHandle<()>>,
    poller: Option<tokio::task::JoinHandle<()>>,
    /// Run [`FakeGraph::verify_read_only`] on drop.
    read_only_on_drop: bool,
}

impl FakeGraph {
    pub fn builder() -> FakeGraphBuilder {
        FakeGraphBuilder::default()
    }

    /// Base URL without `/v1.0` (`http://127.0.0.1:PORT`).
    pub fn uri(&self) -> String {
        self.base.clone()
    }

    /// Base URL of pre-authenticated downloads: [`FakeGraph::uri`], or the download
    /// listener's with [`DownloadHost::Separate`].
    pub fn download_uri(&self) -> String {
        self.shared.download_base().to_owned()
    }

    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Every journalled request so far.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Requests made with tokens of this user.
    pub fn requests_for_user(&self, tid: Uuid, oid: Uuid) -> Vec<JournalEntry> {
        self.shared.journal.for_user(tid, oid)
    }

    /// Writes attempted (each was refused).
    pub fn mutating_requests(&self) -> Vec<JournalEntry> {
        self.shared.journal.mutating()
    }

    /// Panics, listing every mutating request journalled so far (method, URI, status, user), if
    /// there was any. Called on drop when the builder asked for
    /// [`FakeGraphBuilder::read_only_on_drop`].
    #[track_caller]
    pub fn verify_read_only(&self) {
        if let Some(report) = self.read_only_report() {
            panic!("{report}");
        }
    }

    /// The failure message of [`FakeGraph::verify_read_only`], if it fails.
    fn read_only_report(&self) -> Option<String> {
        let writes = self.mutating_requests();
        if writes.is_empty() {
            return None;
        }
        let lines: Vec<String> = writes
            .iter()
            .map(|w| {
                let user = w.user_id.map_or_else(|| "no user".to_owned(), |u| format!("user {u}"));
                format!(
                    "- {} {} → {} ({user})",
                    w.request_method, w.request_uri, w.response_status_code
                )
            })
            .collect();
        Some(format!(
            "fake-graph expected no mutating request but journalled {}:\n{}",
            writes.len(),
            lines.join("\n")
        ))
    }

    /// Whether Graph never saw a request for this user.
    pub fn never_called_for(&self, tid: Uuid, oid: Uuid) -> bool {
        self.shared.journal.for_user(tid, oid).is_empty()
    }

    /// Requests that came back before their `Retry-After` elapsed.
    pub fn retry_violations(&self) -> Vec<JournalEntry> {
        self.shared.journal.retry_violations()
    }

    /// Downloads served from the pre-authenticated URLs.
    pub fn downloads(&self) -> Vec<DownloadRecord> {
        self.shared.downloads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    pub fn set_mailbox_concurrency(&self, limit: u64) {
        self.shared.faults.mailbox_concurrency.store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// Changes what Outlook's concurrency limit counts over (see
    /// [`FakeGraphBuilder::concurrency_scope`]).
    pub fn set_concurrency_scope(&self, scope: ConcurrencyScope) {
        self.shared.faults.set_concurrency_scope(scope);
    }

    /// Records a CAE event for a user now (as if fake-entra's feed had reported it).
    pub fn revoke_sessions(&self, tid: Uuid, oid: Uuid) {
        self.shared.auth.cae.revoke(tid, oid, self.shared.clock.now(), "sessionsRevoked");
    }

    /// Pulls fake-entra's CAE feed now.
    pub async fn sync_cae(&self) {
        self.shared.auth.sync_cae().await;
    }

    /// CAE events known so far.
    pub fn cae_events(&self) -> Vec<CaeEvent> {
        self.shared.auth.cae.events()
    }

    /// Edits the served world in place; indexes are rebuilt afterwards.
    pub fn edit_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        self.shared.edit(f)
    }

    /// Adds a message to a user's mailbox (creating the mailbox if needed).
    pub fn add_message(&self, tid: Uuid, owner: Uuid, message: Message) -> bool {
        control::add_message(&self.shared, tid, owner, message)
    }

    /// Deletes a message; `true` if it existed.
    pub fn delete_message(&self, tid: Uuid, owner: Uuid, id: &str) -> bool {
        control::delete_message(&self.shared, tid, owner, id)
    }

    /// Removes explicit grants from an item and breaks inheritance (only the owner keeps
    /// access); with `grantee`, removes just that grant.
    pub fn unshare(
        &self,
        tid: Uuid,
        drive_id: &str,
        item_id: &str,
        grantee: Option<Grantee>,
    ) -> bool {
        control::unshare(&self.shared, tid, drive_id, item_id, grantee)
    }

    /// Deletes a drive item and everything below it.
    pub fn delete_drive_item(&self, tid: Uuid, drive_id: &str, item_id: &str) -> bool {
        control::delete_drive_item(&self.shared, tid, drive_id, item_id)
    }

    /// The shared clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        let report = if self.read_only_on_drop { self.read_only_report() } else { None };
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(p) = &self.poller {
            p.abort();
        }
        self.server.abort();
        if let Some(d) = &self.download_server {
            d.abort();
        }
        if let Some(report) = report {
            // A second panic while unwinding would abort the test binary and hide the first
            // failure: report it instead.
            if std::thread::panicking() {
                tracing::error!("{report}");
            } else {
                panic!("{report}");
            }
        }
    }
}

/// Query helper shared by routes: headers as a map.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Binds the download listener; `127.0.0.2` falls back to `127.0.0.1` (any port) where it is
/// not a local address.
async fn bind_download_listener(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen).await {
        Err(e) if listen.ip() == std::net::IpAddr::from([127, 0, 0, 2]) => {
            tracing::debug!(error = %e, "127.0.0.2 does not bind here; downloads use 127.0.0.1");
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
        }
        other => other,
    }
}
