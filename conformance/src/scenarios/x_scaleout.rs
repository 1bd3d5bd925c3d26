//! X — scale-out: two connector instances sharing a real `redis-server` (started here on a
//! random loopback port, temporary directory, no persistence), reached through the
//! scenario's own round-robin. The instances run the world's own configuration (same fakes,
//! same cache and cursor keys, same policy file) plus `[redis]`: as child processes of the
//! gate's connector binary in binary mode, in process under `cargo test`; the world's
//! original connector is left idle.
//!
//! The harness ([`RedisServer`], [`ScaleOut`], [`RoundRobin`]) is public: `m365-sandbox
//! --instances 2` and `m365-bench --instances 2 --redis` run the same set-up.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{catalogue, me_of, obo_exchanges, scenario};
use crate::{Persona, Session, World, world::TenantRule};

catalogue!($ x_scaleout_tests {
    x01_one_obo_exchange_per_sign_in_across_two_instances => scenario!(
        "X01",
        "one OBO exchange per sign-in across two instances, under concurrency",
        x01_one_exchange_per_sign_in
    ),
    x02_tenant_disabled_on_one_instance_is_refused_by_the_other => scenario!(
        "X02",
        "a tenant disabled through one instance is refused by the other on its next call",
        x02_disable_reaches_the_other_instance
    ),
    x03_per_user_rate_limit_holds_across_instances => scenario!(
        "X03",
        "the per-user rate limit holds across instances",
        x03_rate_limit_across_instances
    ),
    x04_redis_outage_fails_no_call_and_l2_returns => scenario!(
        "X04",
        "Redis stopped mid-run: no call fails; restarted: L2 used again",
        x04_redis_outage
    ),
    x05_redis_holds_nothing_readable => scenario!(
        "X05",
        "Redis holds no plaintext token and no key names a user or tenant",
        x05_nothing_readable_in_redis
    ),
    x06_tenants_never_share_an_l2_entry => scenario!(
        "X06",
        "two tenants' users with the same oid never share an L2 entry or a budget",
        clock = false,
        setup = twin_world,
        x06_tenants_never_share_entries
    ),
    x07_a_copied_cache_blob_is_refused => scenario!(
        "X07",
        "a cache blob copied to another user's key is refused",
        x07_copied_blob_refused
    ),
});

// ─── The harness: redis-server and two instances ────────────────────────────────────────

/// A `redis-server` child on a random loopback port; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("m365-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self { child: None, port, dir };
        server.restart()?;
        Ok(server)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start redis-server (Debian: apt-get install -y redis-server)")?;
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut c) = self.connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("redis-server did not answer on port {}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> Result<redis::Connection> {
        Ok(redis::Client::open(self.url())?.get_connection()?)
    }

    /// Every key and its value.
    pub fn dump(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut c = self.connection()?;
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c)?;
        let mut out = Vec::new();
        for k in keys {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c)?;
            out.push((k, v));
        }
        Ok(out)
    }

    /// What the server holds, per kind of key (`tok`, `rl`, `epoch`, …, the part after the
    /// prefix): for sizing. Memory per key is Redis' own `MEMORY USAGE` (key, value, expiry
    /// and allocator overhead); `used_memory` is the whole server's.
    pub fn census(&self) -> Result<Census> {
        let mut c = self.connection()?;
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c)?;
        let mut kinds: std::collections::BTreeMap<String, KindCensus> = Default::default();
        for k in keys {
            let kind = k.split(':').nth(1).unwrap_or("other").to_owned();
            let value: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap_or_default();
            let memory: u64 = redis::cmd("MEMORY").arg("USAGE").arg(&k).query(&mut c)?;
            let e = kinds.entry(kind).or_default();
            e.keys += 1;
            e.key_bytes += k.len() as u64;
            e.value_bytes += value.len() as u64;
            e.memory_bytes += memory;
        }
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c)?;
        let used_memory = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Census { kinds, used_memory })
    }

    /// Empties the server (between benchmark steps).
    pub fn flush_all(&self) -> Result<()> {
        let mut c = self.connection()?;
        redis::cmd("FLUSHALL").query::<()>(&mut c)?;
        Ok(())
    }

    /// The sealed token entries.
    fn token_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.dump()?.into_iter().filter(|(k, _)| k.starts_with("m365:tok:")).collect())
    }
}

/// [`RedisServer::census`]: totals per kind of key.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct KindCensus {
    pub keys: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
    pub memory_bytes: u64,
}

/// [`RedisServer::census`].
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Census {
    pub kinds: std::collections::BTreeMap<String, KindCensus>,
    pub used_memory: u64,
}

impl Census {
    /// One Markdown line per kind: keys, mean key and value bytes, mean memory per key.
    pub fn markdown(&self) -> String {
        let mut md = String::from(
            "| Redis key kind | keys | mean key bytes | mean value bytes | mean MEMORY USAGE bytes |\n|---|---|---|---|---|\n",
        );
        for (kind, k) in &self.kinds {
            let n = k.keys.max(1);
            md.push_str(&format!(
                "| `{kind}` | {} | {} | {} | {} |\n",
                k.keys,
                k.key_bytes / n,
                k.value_bytes / n,
                k.memory_bytes / n
            ));
        }
        md.push_str(&format!("\nused_memory: {:.1} MiB\n", self.used_memory as f64 / 1048576.0));
        md
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Instance {
    mcp_url: String,
    /// In process only: the instance's state, for sanity checks of a scenario's premise.
    state: Option<Arc<connector::server::AppState>>,
    stop: CancellationToken,
    /// Binary mode: the `serve` child, killed at shutdown.
    child: Option<Mutex<Child>>,
}

/// Two connectors sharing Redis, plus the round-robin.
pub struct ScaleOut {
    redis: RedisServer,
    instances: Vec<Instance>,
    config_paths: Vec<PathBuf>,
}

/// Knobs of the instances' configuration: the per-user rate limit.
#[derive(Clone, Copy)]
pub struct Knobs {
    pub per_minute: u32,
    pub burst: u32,
}

pub const DEFAULT_KNOBS: Knobs = Knobs { per_minute: 6000, burst: 1000 };

impl ScaleOut {
    /// Starts `redis-server` and two instances configured like `world`'s connector.
    pub async fn start(world: &World, knobs: Knobs) -> Result<Self> {
        let redis = RedisServer::start()?;
        let base = world.connector_settings();
        let mut instances = Vec::new();
        let mut config_paths = Vec::new();
        for i in 0..2 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let text = base
                .clone()
                .listen(addr)
                .per_caller_rate(knobs.per_minute, knobs.burst)
                // Instance 0 polls the policy file; instance 1 effectively never does, so only
                // the epoch signal can carry a disable to it (X02).
                .policy(Path::new("policy.toml"), if i == 0 { 1 } else { 3600 })
                .audit(Path::new(&format!("audit-x{i}.jsonl")), false)
                .redis(&redis.url())
                .set("redis", "breaker_cooldown_ms", 200)
                .set("redis", "op_timeout_ms", 250)
                .toml();
            let path = world.dir().join(format!("connector-x{i}.toml"));
            std::fs::write(&path, text)?;
            let settings = connector::config::Settings::load(
                Some(&path),
                std::iter::empty(),
                &connector::config::Overrides::default(),
            )
            .map_err(|e| anyhow!("instance {i} config: {e}"))?;
            let stop = CancellationToken::new();
            let (state, child) = match world.connector_bin() {
                Some(bin) => {
                    drop((listener, settings));
                    let log = std::fs::File::create(world.dir().join(format!("x{i}.stderr.log")))?;
                    let child = Command::new(bin)
                        .arg("serve")
                        .arg("--config")
                        .arg(&path)
                        .stdout(log.try_clone()?)
                        .stderr(log)
                        .env_remove("M365_CONFIG")
                        .env_remove("LD_PRELOAD")
                        .spawn()
                        .with_context(|| format!("spawn {}", bin.display()))?;
                    (None, Some(Mutex::new(child)))
                }
                None => {
                    let deps = connector::server::Dependencies {
                        listener: Some(listener),
                        ..Default::default()
                    };
                    let app = connector::server::Application::build(settings, deps)
                        .await
                        .map_err(|e| anyhow!("instance {i} start: {e}"))?;
                    let state = app.state().clone();
                    let s = stop.clone();
                    tokio::spawn(async move {
                        let _ = app.run_until_stopped(s.cancelled_owned()).await;
                    });
                    (Some(state), None)
                }
            };
            let mcp_url = format!("http://{addr}/mcp");
            let ready = format!("http://{addr}/readyz");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !world.http().get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
                ensure!(tokio::time::Instant::now() < deadline, "instance {i} not ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            instances.push(Instance { mcp_url, state, stop, child });
            config_paths.push(path);
        }
        Ok(Self { redis, instances, config_paths })
    }

    /// The instances' MCP URLs.
    pub fn mcp_urls(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.mcp_url.clone()).collect()
    }

    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// `session`'s sign-in, presented to instance `i`.
    fn on(&self, world: &World, session: &Session, i: usize) -> Session {
        let token = session.token();
        Session::with_token(
            session.upn.clone(),
            session.tenant_id,
            session.object_id,
            self.instances[i % self.instances.len()].mcp_url.clone(),
            world.http().clone(),
            token.clone(),
            Arc::new(Mutex::new(vec![token])),
        )
    }

    /// The cache keys every instance seals with (from their shared configuration).
    fn cache_keys(&self) -> Result<connector::obo::CacheKeys> {
        let settings = connector::config::Settings::load(
            Some(&self.config_paths[0]),
            std::iter::empty(),
            &connector::config::Overrides::default(),
        )
        .map_err(|e| anyhow!("{e}"))?;
        Ok(settings.obo_settings().map_err(|e| anyhow!("{e}"))?.cache_keys)
    }

    pub fn shutdown(&self) {
        for i in &self.instances {
            i.stop.cancel();
            if let Some(child) = &i.child {
                let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for ScaleOut {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A loopback HTTP round-robin in front of the instances (what a load balancer without
/// session affinity does): each request, whatever its path, goes to the next instance,
/// headers (the bearer token included) and body as they came. Dropping it stops it.
pub struct RoundRobin {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Backends {
    bases: Arc<Vec<String>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
}

impl RoundRobin {
    /// Listens on `listen` (loopback only) and spreads requests over `mcp_urls`' servers.
    pub async fn start(listen: std::net::SocketAddr, mcp_urls: &[String]) -> Result<Self> {
        ensure!(
            listen.ip().is_loopback(),
            "the round-robin listens on loopback only, not {listen}"
        );
        ensure!(!mcp_urls.is_empty(), "the round-robin needs at least one instance");
        let bases = mcp_urls.iter().map(|u| u.trim_end_matches("/mcp").to_owned()).collect();
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let backends = Backends {
            bases: Arc::new(bases),
            next: Arc::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()?,
        };
        let app = axum::Router::new().fallback(forward).with_state(backends);
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        Ok(Self { addr, stop })
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(
    axum::extract::State(b): axum::extract::State<Backends>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::{http::header, response::IntoResponse as _};
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let i = b.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % b.bases.len();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = b.http.request(parts.method, format!("{}{path}", b.bases[i])).body(body);
    for (name, value) in &parts.headers {
        if ![header::HOST, header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING]
            .contains(name)
        {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(r) => r,
        Err(e) => {
            let text = format!("instance {i} did not answer: {e}");
            return (axum::http::StatusCode::BAD_GATEWAY, text).into_response();
        }
    };
    let mut response = axum::response::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if ![header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING].contains(name) {
            response = response.header(name, value);
        }
    }
    let body = futures::stream::unfold(answer, |mut r| async move {
        match r.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), r)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), r)),
        }
    });
    response
        .body(axum::body::Body::from_stream(body))
        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
}

/// `get_me` through instance `i`: the identity, or why the call failed.
async fn me_via(x: &ScaleOut, world: &World, s: &Session, i: usize) -> Result<(String, String)> {
    let out = x.on(world, s, i).call_tool_http("get_me", json!({})).await?;
    ensure!(out.status == 200, "HTTP {} from instance {i}: {}", out.status, out.text);
    let result = out.tool_result()?;
    me_of(&crate::session::ToolOutcome::from_json(&result))
}

// ─── Scenarios ──────────────────────────────────────────────────────────────────────────

/// X01: twenty concurrent first calls of one sign-in, alternating between the instances,
/// cost one OBO exchange at Entra.
pub async fn x01_one_exchange_per_sign_in(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    for persona in [Persona::Adele, Persona::Lee] {
        let s = world.session(persona).await?;
        let before = obo_exchanges(world, s.tenant_id, s.object_id);
        let calls = (0..20).map(|i| me_via(&x, world, &s, i));
        for r in futures::future::join_all(calls).await {
            r?;
        }
        let exchanges = obo_exchanges(world, s.tenant_id, s.object_id) - before;
        ensure!(exchanges == 1, "{}: {exchanges} OBO exchanges for one sign-in", s.upn);
    }
    Ok(())
}

/// X02: instance 0 applies a policy disabling Contoso; instance 1, whose own poll is an hour
/// away, refuses Contoso on its next call (the tenant epoch in Redis carries the news).
pub async fn x02_disable_reaches_the_other_instance(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    me_via(&x, world, &adele, 0).await?;
    me_via(&x, world, &adele, 1).await?;
    let epochs_before = epoch_keys(&x)?;
    // The shared policy file changes; instance 0 picks it up at its own poll (1 s, plus one
    // poll for the content to settle) and bumps the tenant's epoch.
    world.set_tenant_policy("contoso", TenantRule { enabled: false, tools: None }).await?;
    for _ in 0..1000 {
        if epoch_keys(&x)? > epochs_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(epoch_keys(&x)? > epochs_before, "no tenant epoch was bumped in Redis");
    // Instance 1 polls its policy file hourly, so only the epoch can tell it; in process the
    // premise is checked directly.
    if let Some(state) = &x.instances[1].state {
        ensure!(
            state.policy.current().is_enabled(&tenant(&adele)),
            "instance 1 already knew (the scenario would prove nothing)"
        );
    }
    match me_via(&x, world, &adele, 1).await {
        Ok(_) => bail!("instance 1 still served Contoso after it was disabled through instance 0"),
        Err(e) => ensure!(
            e.to_string().contains("not enabled") || e.to_string().contains("HTTP 403"),
            "refused, but not as a disabled tenant: {e}"
        ),
    }
    Ok(())
}

fn tenant(s: &Session) -> connector::domain::TenantId {
    connector::domain::TenantId::from(s.tenant_id)
}

/// Sum of all epoch values in Redis.
fn epoch_keys(x: &ScaleOut) -> Result<u64> {
    Ok(x.redis
        .dump()?
        .into_iter()
        .filter(|(k, _)| k.starts_with("m365:epoch:"))
        .filter_map(|(_, v)| String::from_utf8(v).ok()?.parse::<u64>().ok())
        .sum())
}

/// X03: with a per-user burst of 4 (and a refill of one per 10 s), 16 requests alternating
/// between two instances are admitted at most 4 times in total.
pub async fn x03_rate_limit_across_instances(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, Knobs { per_minute: 6, burst: 4 }).await?;
    let adele = world.session(Persona::Adele).await?;
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..16 {
        let out = x.on(world, &adele, i).call_tool_http("get_me", json!({})).await?;
        match out.status {
            429 => limited += 1,
            200 => admitted += 1,
            other => bail!("HTTP {other} from instance {}: {}", i % 2, out.text),
        }
    }
    ensure!(admitted <= 4, "{admitted} requests admitted across two instances; budget is 4");
    ensure!(admitted >= 1 && limited >= 12, "admitted {admitted}, limited {limited}");
    // Another user has a budget of their own.
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &diego, 1).await?;
    Ok(())
}

/// X04: Redis killed mid-run: every call still succeeds (L1 and direct exchanges, local rate
/// limit); restarted: an entry written by one instance serves the other again.
pub async fn x04_redis_outage(world: &World) -> Result<()> {
    let mut x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &adele, 0).await?;
    x.redis.stop();
    let mut failed = Vec::new();
    for i in 0..20 {
        let s = if i % 4 < 2 { &adele } else { &diego };
        if let Err(e) = me_via(&x, world, s, i).await {
            failed.push(e.to_string());
        }
    }
    ensure!(failed.is_empty(), "{} calls failed while Redis was down: {failed:?}", failed.len());
    let ready = readyz(&x, world, 0).await?;
    ensure!(
        ready.0 == 200 && ready.1.contains("degraded"),
        "/readyz while Redis is down: {ready:?}"
    );
    x.redis.restart()?;
    tokio::time::sleep(Duration::from_millis(400)).await; // the breakers' cool-down
    let megan = world.session(Persona::Megan).await?;
    me_via(&x, world, &megan, 0).await?;
    me_via(&x, world, &megan, 1).await?;
    let exchanges = obo_exchanges(world, megan.tenant_id, megan.object_id);
    ensure!(exchanges == 1, "after the restart {exchanges} exchanges for one sign-in: L2 unused");
    ensure!(!x.redis.token_entries()?.is_empty(), "nothing written to Redis after the restart");
    let ready = readyz(&x, world, 0).await?;
    ensure!(ready == (200, "ready".to_owned()), "/readyz once Redis is back: {ready:?}");
    Ok(())
}

async fn readyz(x: &ScaleOut, world: &World, i: usize) -> Result<(u16, String)> {
    let url = x.instances[i].mcp_url.replace("/mcp", "/readyz");
    let r = world.http().get(url).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// X05: after traffic from two tenants, no Redis value holds a token (or any fragment of a
/// token or secret the world has seen), sealed entries do not open under another key, and no
/// key names a tenant or user.
pub async fn x05_nothing_readable_in_redis(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    for (i, s) in [&adele, &lee].into_iter().enumerate() {
        me_via(&x, world, s, i).await?;
        me_via(&x, world, s, i + 1).await?;
    }
    let dump = x.redis.dump()?;
    let entries = x.redis.token_entries()?;
    ensure!(entries.len() >= 2, "expected ≥ 2 sealed entries in Redis, found {}", entries.len());
    let mut names_to_hide = vec![adele.upn.clone(), lee.upn.clone()];
    for s in [&adele, &lee] {
        for id in [s.tenant_id, s.object_id] {
            names_to_hide.push(id.to_string());
            names_to_hide.push(id.simple().to_string());
        }
    }
    let secrets = world.secrets();
    for (key, value) in &dump {
        for n in &names_to_hide {
            ensure!(!key.to_lowercase().contains(&n.to_lowercase()), "Redis key {key} names {n}");
        }
        let text = String::from_utf8_lossy(value);
        ensure!(!text.contains("eyJ"), "a JWT in plaintext under {key}");
        for s in secrets.iter().filter(|s| s.len() >= 16) {
            ensure!(
                !value.windows(16).any(|w| s.as_bytes().windows(16).any(|t| t == w)),
                "part of a token or secret in plaintext under {key}"
            );
        }
    }
    // The right key opens Adele's entry; a wrong key opens nothing.
    let right = x.cache_keys()?;
    let wrong = connector::obo::CacheKeys::ephemeral();
    let key = union_key(&adele);
    let opened = entries.iter().filter(|(_, v)| right.open(&key, v).is_ok()).count();
    ensure!(opened == 1, "Adele's entry opened {opened} times with the right key");
    ensure!(
        entries.iter().all(|(_, v)| wrong.open(&key, v).is_err()),
        "an entry opened under a wrong key"
    );
    Ok(())
}

/// The cache key of `s`'s union token (one token per sign-in serves every tool).
fn union_key(s: &Session) -> connector::obo::TokenCacheKey {
    let caller = connector::domain::Caller {
        tenant_id: connector::domain::TenantId::from(s.tenant_id),
        object_id: connector::domain::ObjectId::from(s.object_id),
        client_id: Uuid::nil(),
        scopes: connector::domain::ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        assertion: connector::domain::UserAssertion::new(s.token()),
    };
    connector::obo::TokenCacheKey::for_caller(
        &caller,
        connector::tools::permissions::union_scopes(),
    )
}

/// X06: Contoso's Adele and Wingtip's Adele share an object id (the twin tenant,
/// [`fixtures::with_twin_tenant`]). Through both instances each is served as herself, with
/// an exchange and an L2 entry of her own, and a budget of her own: Contoso's Adele spends
/// her whole shared per-user budget, and Wingtip's Adele is still admitted. Any Redis key
/// (token entry, lock, rate state) derived without the tenant mixes the two up and fails here.
pub async fn x06_tenants_never_share_entries(world: &World) -> Result<()> {
    const BURST: u32 = 4;
    let x = ScaleOut::start(world, Knobs { per_minute: 6, burst: BURST }).await?;
    let contoso = world.session(Persona::Adele).await?;
    let wingtip = world.sign_in(fixtures::TWIN_UPN).await?;
    ensure!(
        contoso.object_id == wingtip.object_id && contoso.tenant_id != wingtip.tenant_id,
        "the twin does not share Adele's object id (the scenario would prove nothing)"
    );
    let served_as_herself = |s: &Session, i: usize, (tid, oid): (String, String)| {
        ensure!(
            tid == s.tenant_id.to_string() && oid == s.object_id.to_string(),
            "{} was served as {tid}/{oid} by instance {i}",
            s.upn
        );
        Ok(())
    };
    // Contoso's Adele: her whole budget, alternating between the instances, then refused.
    for i in 0..BURST as usize {
        served_as_herself(&contoso, i % 2, me_via(&x, world, &contoso, i).await?)?;
    }
    let over = x.on(world, &contoso, 0).call_tool_http("get_me", json!({})).await?;
    ensure!(over.status == 429, "Contoso's Adele past her budget: HTTP {}", over.status);
    // Wingtip's Adele, same object id: a budget, an exchange and an entry of her own.
    for i in 0..2 {
        served_as_herself(
            &wingtip,
            i,
            me_via(&x, world, &wingtip, i).await.with_context(|| {
                format!("{} on instance {i}, after Contoso's Adele spent her budget", wingtip.upn)
            })?,
        )?;
    }
    for s in [&contoso, &wingtip] {
        let exchanges = obo_exchanges(world, s.tenant_id, s.object_id);
        ensure!(exchanges == 1, "{}: {exchanges} exchanges", s.upn);
    }
    let entries = x.redis.token_entries()?.len();
    ensure!(entries == 2, "{entries} L2 entries for the two Adeles");
    Ok(())
}

fn twin_world() -> crate::WorldBuilder {
    World::builder().with_twin_tenant()
}

/// X07: Adele's sealed entry copied over Diego's in Redis; instance 1 (whose L1 has never
/// seen Diego) must refuse it (AEAD bound to the cache key) and serve Diego as Diego.
pub async fn x07_copied_blob_refused(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &adele, 0).await?;
    let adele_entry = x.redis.token_entries()?;
    ensure!(adele_entry.len() == 1, "expected Adele's entry alone, found {}", adele_entry.len());
    me_via(&x, world, &diego, 0).await?;
    let diego_name = x
        .redis
        .token_entries()?
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| *k != adele_entry[0].0)
        .ok_or_else(|| anyhow!("Diego's entry is not in Redis"))?;
    let mut c = x.redis.connection()?;
    redis::cmd("SET").arg(&diego_name).arg(&adele_entry[0].1).arg("KEEPTTL").query::<()>(&mut c)?;
    let (_, oid) = me_via(&x, world, &diego, 1).await?;
    ensure!(oid == diego.object_id.to_string(), "Diego was served with Adele's token ({oid})");
    let exchanges = obo_exchanges(world, diego.tenant_id, diego.object_id);
    ensure!(exchanges == 2, "the copied blob was not refused ({exchanges} exchanges for Diego)");
    Ok(())
}
