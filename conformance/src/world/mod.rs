//! [`World`]: fake Entra ID, fake Graph and the connector on loopback, wired together, with one
//! controllable clock, a policy file and an audit log in a temporary directory. Dropping the
//! world stops all three.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use connector::testing::SettingsBuilder;
use fake_entra::FakeEntra;
use fake_graph::{CaeSync, FakeGraph};
use fixtures::TokenLifetimePolicy;
use uuid::Uuid;

mod instance;

pub use instance::libfaketime;
use instance::{
    Running, connector_settings, faketime_offset, policy_toml, random_key, start_connector,
};

use crate::{
    persona::Persona,
    session::Session,
    signin::{OAuthClient, SignInError},
};

/// Default OBO max-reuse age of the test configuration (the connector's own default).
pub const DEFAULT_OBO_MAX_REUSE_SECS: u64 = 300;
/// Tenants enabled in the connector's default test policy. Tailspin is consented but left
/// off (O01); Northwind is enabled but never consented (O02).
pub const DEFAULT_ENABLED: [&str; 3] = ["contoso", "fabrikam", "northwind"];
/// How long a spawned connector may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connector runs.
#[derive(Debug, Clone)]
pub enum ConnectorMode {
    /// `Application::build` in this process, sharing the fakes' clock.
    InProcess,
    /// `BIN serve --config FILE` as a child process. It keeps the system clock unless the
    /// world is built [`WorldBuilder::with_moving_clock`], which runs it under libfaketime.
    Binary(PathBuf),
}

/// One tenant's entry in the connector's policy file.
#[derive(Debug, Clone)]
pub struct TenantRule {
    pub enabled: bool,
    /// `None` = every tool.
    pub tools: Option<Vec<String>>,
}

/// Builder for [`World`], with the knobs scenarios need.
#[must_use]
pub struct WorldBuilder {
    mode: ConnectorMode,
    obo_max_reuse_secs: u64,
    policy: BTreeMap<String, TenantRule>,
    lifetimes: Vec<(String, TokenLifetimePolicy)>,
    entra_listen: Option<SocketAddr>,
    graph_listen: Option<SocketAddr>,
    connector_port: Option<u16>,
    /// A spawned connector follows [`World::advance`] (libfaketime).
    moving_clock: bool,
    /// What fake-entra's JWKS says each key's `issuer` is, set before the connector starts.
    jwks_issuer: KeyIssuer,
    /// fake-entra issues ordinary (not 20–28 h CAE) Graph tokens to cp1 clients.
    no_cae_tokens: bool,
    /// The fixture world with the same-`oid` twin tenant ([`fixtures::with_twin_tenant`]).
    twin_tenant: bool,
}

/// The `issuer` fake-entra's published keys carry (defence-in-depth scenarios, A07).
#[derive(Debug, Clone, Copy, Default)]
pub enum KeyIssuer {
    /// As Entra publishes them.
    #[default]
    AsEntra,
    /// No `issuer` member: the connector's issuer-per-`tid` rule stands alone.
    Omitted,
    /// Every key is valid for this tenant (short name) only.
    Tenant(&'static str),
}

impl Default for WorldBuilder {
    fn default() -> Self {
        let mut policy = BTreeMap::new();
        for t in DEFAULT_ENABLED {
            policy.insert(t.to_owned(), TenantRule { enabled: true, tools: None });
        }
        policy.insert("tailspin".to_owned(), TenantRule { enabled: false, tools: None });
        Self {
            mode: ConnectorMode::InProcess,
            obo_max_reuse_secs: DEFAULT_OBO_MAX_REUSE_SECS,
            policy,
            lifetimes: Vec::new(),
            entra_listen: None,
            graph_listen: None,
            connector_port: None,
            moving_clock: false,
            jwks_issuer: KeyIssuer::AsEntra,
            no_cae_tokens: false,
            twin_tenant: false,
        }
    }
}

impl WorldBuilder {
    pub fn mode(mut self, mode: ConnectorMode) -> Self {
        self.mode = mode;
        self
    }
    /// The connector's OBO max-reuse age (0 = exchange on every call).
    pub fn obo_max_reuse_secs(mut self, secs: u64) -> Self {
        self.obo_max_reuse_secs = secs;
        self
    }
    /// Overrides one tenant's policy entry (tenant by short name, e.g. `contoso`).
    pub fn tenant_policy(mut self, tenant: &str, rule: TenantRule) -> Self {
        self.policy.insert(tenant.to_owned(), rule);
        self
    }
    /// A token lifetime policy for a tenant, set in fake-entra before anyone signs in.
    pub fn token_lifetime(mut self, tenant: &str, policy: TokenLifetimePolicy) -> Self {
        self.lifetimes.push((tenant.to_owned(), policy));
        self
    }
    /// The scenario moves the clock: a spawned connector runs under libfaketime reading the
    /// world's offset from a file, so it sees the time the fakes see. Starting fails when
    /// libfaketime is missing (no silent fallback to the system clock).
    pub fn with_moving_clock(mut self) -> Self {
        self.moving_clock = true;
        self
    }
    /// What fake-entra's JWKS says each key's `issuer` is.
    pub fn key_issuer(mut self, issuer: KeyIssuer) -> Self {
        self.jwks_issuer = issuer;
        self
    }
    /// OBO hands out Graph tokens of the tenant's ordinary lifetime even though the connector
    /// declares `cp1` (CAE disabled), so the connector's renewal margin is reachable.
    pub fn without_cae_tokens(mut self) -> Self {
        self.no_cae_tokens = true;
        self
    }
    /// Adds Wingtip Toys, whose one user has Contoso Adele's object id, enabled in the
    /// connector's policy ([`fixtures::with_twin_tenant`]).
    pub fn with_twin_tenant(mut self) -> Self {
        self.twin_tenant = true;
        self.policy
            .insert(fixtures::TWIN_TENANT.to_owned(), TenantRule { enabled: true, tools: None });
        self
    }
    /// Fixed addresses (the sandbox); random loopback ports otherwise.
    pub fn ports(mut self, entra: Option<u16>, graph: Option<u16>, connector: Option<u16>) -> Self {
        self.entra_listen = entra.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        self.graph_listen = graph.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        self.connector_port = connector;
        self
    }

    /// Starts the fakes and the connector and waits until the connector is ready.
    pub async fn start(self) -> Result<World> {
        crate::install_crypto();
        if matches!(self.mode, ConnectorMode::InProcess) {
            crate::logs::install();
        }
        let fixtures = if self.twin_tenant {
            fixtures::with_twin_tenant()
        } else {
            fixtures::standard_world()
        };
        let clock = fixtures::Clock::system();
        // The connector only reads from Entra and exchanges tokens: anything else fails the run.
        let mut eb = FakeEntra::builder()
            .world(fixtures.clone())
            .clock(clock.clone())
            .read_only_on_drop(true);
        if let Some(a) = self.entra_listen {
            eb = eb.listen(a);
        }
        let entra = eb.start().await.map_err(|e| anyhow!("fake-entra: {e}"))?;
        match self.jwks_issuer {
            KeyIssuer::AsEntra => {}
            KeyIssuer::Omitted => entra.set_jwks_issuer(fake_entra::JwksIssuer::Omitted),
            KeyIssuer::Tenant(name) => {
                let tid = entra.tenant_id(name).ok_or_else(|| anyhow!("unknown tenant {name}"))?;
                entra.set_jwks_issuer(fake_entra::JwksIssuer::Tenant(tid));
            }
        }
        if self.no_cae_tokens {
            entra.set_cae_tokens(false);
        }
        for (tenant, p) in &self.lifetimes {
            entra
                .set_token_lifetime(tenant, p.clone())
                .map_err(|e| anyhow!("token lifetime: {e:?}"))?;
        }
        let mut gb = FakeGraph::builder()
            .world(fixtures.clone())
            .entra(&entra.uri())
            .clock(clock.clone())
            .cae_sync(CaeSync::PerRequest)
            // Downloads from another host than Graph's, as SharePoint serves them.
            .download_host(fake_graph::DownloadHost::separate_loopback());
        if let Some(a) = self.graph_listen {
            gb = gb.listen(a);
        }
        let graph = gb.start().await.context("fake-graph")?;

        let dir =
            std::env::temp_dir().join(format!("m365-conformance-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", self.connector_port.unwrap_or(0)))
                .context("bind the connector's port")?;
        let port = std_listener.local_addr()?.port();
        let base_url = format!("http://127.0.0.1:{port}");
        let mcp_url = format!("{base_url}/mcp");

        let secret = fixtures
            .apps
            .connector
            .client_secrets
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("the fixture connector app has no secret"))?;
        let mut ids = BTreeMap::new();
        for name in self.policy.keys() {
            let tid = entra.tenant_id(name).ok_or_else(|| anyhow!("unknown tenant {name}"))?;
            ids.insert(name.clone(), tid);
        }
        let (cache_key, cursor_key) = (random_key(), random_key());
        let settings = connector_settings(
            port,
            &entra.uri(),
            &format!("{}/v1.0", graph.uri()),
            &fixtures.apps.connector.app_id.to_string(),
            &secret,
            self.obo_max_reuse_secs,
            (&cache_key, &cursor_key),
        )
        // Only the download host, not Graph's: the allow-list is what lets downloads through.
        .download_hosts(&[download_host(&graph)?]);
        let config_path = dir.join("connector.toml");
        std::fs::write(&config_path, settings.toml())?;
        let policy_path = dir.join("policy.toml");
        std::fs::write(&policy_path, policy_toml(&self.policy, &ids))?;

        let running = start_connector(
            &self.mode,
            self.moving_clock,
            &config_path,
            &dir,
            std_listener,
            &clock,
        )
        .await?;

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("reqwest client")?;
        let oauth = OAuthClient {
            http: http.clone(),
            client_id: fixtures.apps.mcp_client.app_id.to_string(),
        };
        let world = World {
            clock,
            entra,
            graph,
            fixtures,
            base_url,
            mcp_url,
            dir,
            policy: Mutex::new((self.policy, ids)),
            running: Mutex::new(Some(running)),
            connector_bin: match &self.mode {
                ConnectorMode::Binary(bin) => Some(bin.clone()),
                ConnectorMode::InProcess => None,
            },
            http,
            oauth,
            secrets: Arc::new(Mutex::new(vec![secret, cache_key, cursor_key])),
            snapshots: Mutex::new(Vec::new()),
            settings,
        };
        world.wait_ready().await?;
        Ok(world)
    }
}

/// The host name of fake-graph's download listener.
fn download_host(graph: &FakeGraph) -> Result<String> {
    let uri = graph.download_uri();
    url::Url::parse(&uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| anyhow!("fake-graph's download URI has no host: {uri}"))
}

/// The running test world.
pub struct World {
    /// The one clock of the fakes (and of an in-process connector).
    pub clock: fixtures::Clock,
    pub entra: FakeEntra,
    pub graph: FakeGraph,
    pub fixtures: Arc<fixtures::World>,
    base_url: String,
    mcp_url: String,
    dir: PathBuf,
    policy: Mutex<(BTreeMap<String, TenantRule>, BTreeMap<String, Uuid>)>,
    running: Mutex<Option<Running>>,
    connector_bin: Option<PathBuf>,
    http: reqwest::Client,
    oauth: OAuthClient,
    /// Every secret and token this run handed out (D04 greps the logs for them).
    secrets: Arc<Mutex<Vec<String>>>,
    /// Named tool outputs the S scenarios recorded for snapshot comparison.
    snapshots: Mutex<Vec<(String, serde_json::Value)>>,
    /// The connector's configuration as written to `connector.toml`.
    settings: SettingsBuilder,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("mcp_url", &self.mcp_url).finish_non_exhaustive()
    }
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder::default()
    }

    /// The default world with an in-process connector.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// The canonical MCP URL.
    pub fn mcp_url(&self) -> &str {
        &self.mcp_url
    }

    /// `http://127.0.0.1:PORT` of the connector.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The plain HTTP client (no redirects) scenarios use for raw requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    /// True when the connector follows the fakes' clock, so `advance` moves it too:
    /// in-process (shared clock) or a child under libfaketime.
    pub fn controls_clock(&self) -> bool {
        matches!(
            &*self.running.lock().unwrap_or_else(|e| e.into_inner()),
            Some(Running::InProcess { .. } | Running::Child { faketime: Some(_), .. })
        )
    }

    /// Moves the shared clock forward (and a libfaketime child's with it).
    pub fn advance(&self, by: Duration) -> Result<()> {
        self.clock.advance(by);
        if let Some(Running::Child { faketime: Some(file), .. }) =
            &*self.running.lock().unwrap_or_else(|e| e.into_inner())
        {
            // Write then rename, so the child never reads a half-written offset.
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, faketime_offset(&self.clock))
                .and_then(|()| std::fs::rename(&tmp, file))
                .with_context(|| format!("move the connector's clock ({})", file.display()))?;
        }
        Ok(())
    }

    /// `(tid, oid)` of a persona.
    pub fn ids(&self, upn: &str) -> Result<(Uuid, Uuid)> {
        self.entra.persona(upn).ok_or_else(|| anyhow!("no persona {upn}"))
    }

    pub fn tenant_id(&self, tenant: &str) -> Result<Uuid> {
        self.entra.tenant_id(tenant).ok_or_else(|| anyhow!("no tenant {tenant}"))
    }

    /// Signs a persona in through discovery; fails on any refusal.
    pub async fn session(&self, persona: Persona) -> Result<Session> {
        self.sign_in(persona.upn()).await
    }

    pub async fn sign_in(&self, upn: &str) -> Result<Session> {
        self.try_sign_in(upn, &[]).await.map_err(|e| anyhow!("sign-in of {upn}: {e}"))
    }

    /// Signs in with extra `/authorize` parameters; returns Entra's refusal as is.
    pub async fn try_sign_in(
        &self,
        upn: &str,
        extra: &[(&str, &str)],
    ) -> Result<Session, SignInError> {
        let discovery = self.oauth.discover(&self.mcp_url, upn).await?;
        let tokens = self.oauth.authorize(&discovery, upn, extra).await?;
        self.remember(&tokens);
        let (tid, oid) = self.entra.persona(upn).unwrap_or_default();
        Ok(Session::new(
            upn.to_owned(),
            tid,
            oid,
            self.mcp_url.clone(),
            self.http.clone(),
            self.oauth.clone(),
            discovery,
            tokens,
            self.secrets.clone(),
        ))
    }

    /// A session around a token minted directly (bad tokens, or tenants that cannot sign in).
    pub fn session_with_token(&self, upn: &str, token: String) -> Session {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner()).push(token.clone());
        let (tid, oid) = self.entra.persona(upn).unwrap_or_default();
        Session::with_token(
            upn.to_owned(),
            tid,
            oid,
            self.mcp_url.clone(),
            self.http.clone(),
            token,
            self.secrets.clone(),
        )
    }

    /// Mints a token through fake-entra (remembered as a secret).
    pub fn mint(&self, spec: &fake_entra::TokenSpec) -> String {
        let t = self.entra.mint(spec);
        self.secrets.lock().unwrap_or_else(|e| e.into_inner()).push(t.clone());
        t
    }

    fn remember(&self, tokens: &crate::signin::Tokens) {
        let mut s = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        s.push(tokens.access_token.clone());
        if let Some(r) = &tokens.refresh_token {
            s.push(r.clone());
        }
    }

    /// Records a named value (a tool output) for snapshot comparison by the test suite.
    pub fn record_snapshot(&self, name: &str, value: serde_json::Value) {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_owned(), value));
    }

    /// The values recorded with [`World::record_snapshot`], in order.
    pub fn snapshots(&self) -> Vec<(String, serde_json::Value)> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The sealed blobs of the in-process connector's OBO token cache (`None` for a spawned
    /// connector, whose memory is out of reach).
    pub fn token_cache_blobs(&self) -> Option<Vec<Vec<u8>>> {
        match &*self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Running::InProcess { state, .. }) => {
                state.token_provider().map(|p| p.cache_snapshot_for_tests())
            }
            _ => None,
        }
    }

    /// Every token and secret issued to or by this run so far.
    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Raw POST to `/mcp` with optional bearer token and extra headers.
    pub async fn post_mcp(
        &self,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<crate::RawResponse> {
        crate::session::raw_post(&self.http, &self.mcp_url, token, body, headers).await
    }

    /// GET a path of the connector (`/metrics`, PRM, ...).
    pub async fn get(&self, path: &str) -> Result<crate::RawResponse> {
        let r = self.http.get(format!("{}{path}", self.base_url)).send().await?;
        crate::session::RawResponse::read(r).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.get("/metrics").await?.text)
    }

    /// Sum of one metric's samples whose label set contains every `labels` pair.
    pub async fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        let text = self.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum())
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    /// The audit log, one JSON value a record.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every log this run produced: the audit file, the captured tracing output (in-process)
    /// or the child's stderr (binary).
    pub fn all_logs(&self) -> String {
        let mut out = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        match &*self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Running::Child { stderr_path, .. }) => {
                out.push_str(&std::fs::read_to_string(stderr_path).unwrap_or_default());
            }
            _ => out.push_str(&crate::logs::captured()),
        }
        out
    }

    /// Rewrites one tenant's policy entry and makes the connector load it.
    pub async fn set_tenant_policy(&self, tenant: &str, rule: TenantRule) -> Result<()> {
        let text = {
            let mut p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
            if !p.1.contains_key(tenant) {
                let id = self.tenant_id(tenant)?;
                p.1.insert(tenant.to_owned(), id);
            }
            p.0.insert(tenant.to_owned(), rule);
            policy_toml(&p.0, &p.1)
        };
        self.write_policy(&text).await
    }

    async fn write_policy(&self, text: &str) -> Result<()> {
        let path = self.dir.join("policy.toml");
        let state = match &*self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Running::InProcess { state, .. }) => Some(state.clone()),
            _ => None,
        };
        match state {
            Some(state) => {
                std::fs::write(&path, text)?;
                state.policy.reload().map_err(|e| anyhow!("policy reload: {e}"))?;
            }
            None => {
                // The child polls the file's mtime every second.
                tokio::time::sleep(Duration::from_millis(1100)).await;
                std::fs::write(&path, text)?;
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
        }
        Ok(())
    }

    /// Polls `/readyz` until the connector has loaded discovery and keys.
    async fn wait_ready(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base_url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(Running::Child { child, stderr_path, .. }) =
                &mut *self.running.lock().unwrap_or_else(|e| e.into_inner())
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(&*stderr_path).unwrap_or_default();
                bail!("the connector exited with {status} before it was ready:\n{log}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the connector did not become ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The connector's configuration (what `connector.toml` holds), for scenarios that start
    /// more instances configured alike (X). Relative paths resolve against [`Self::dir`].
    pub fn connector_settings(&self) -> SettingsBuilder {
        self.settings.clone()
    }

    /// The temporary directory of this world (config, policy, audit).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The connector binary the world runs (binary mode), for scenarios that start more
    /// instances of the same build (X); `None` in process.
    pub fn connector_bin(&self) -> Option<&Path> {
        self.connector_bin.as_deref()
    }

    /// Stops the connector and waits for it (drop does the same without waiting).
    pub async fn shutdown(self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        match running {
            Some(Running::InProcess { stop, task, .. }) => {
                stop.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            Some(Running::Child { mut child, .. }) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        match self.running.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            Some(Running::InProcess { stop, .. }) => stop.cancel(),
            Some(Running::Child { mut child, .. }) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
        if std::env::var_os("KEEP_WORLD").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
