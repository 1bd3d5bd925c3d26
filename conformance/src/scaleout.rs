//! The scale-out harness: a real `redis-server` (random loopback port, temporary directory,
//! no persistence), two connector instances configured like a [`World`]'s connector plus
//! `[redis]` (children of the gate's binary in binary mode, in process otherwise), and a
//! loopback round-robin in front of them without session affinity. Used by the X scenarios,
//! `m365-sandbox --instances 2` and `m365-bench --instances 2 --redis`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Session, World};

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

    pub(crate) fn connection(&self) -> Result<redis::Connection> {
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
    pub(crate) fn token_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
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

pub(crate) struct Instance {
    pub(crate) mcp_url: String,
    /// In process only: the instance's state, for sanity checks of a scenario's premise.
    pub(crate) state: Option<Arc<connector::server::AppState>>,
    stop: CancellationToken,
    /// Binary mode: the `serve` child, killed at shutdown.
    child: Option<Mutex<Child>>,
}

/// Two connectors sharing Redis, plus the round-robin.
pub struct ScaleOut {
    pub(crate) redis: RedisServer,
    pub(crate) instances: Vec<Instance>,
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
                // Generous for a shared 2-core machine running the whole gate: a Redis round
                // trip that times out falls back to a local exchange by design, which X01
                // would count. X04 stops the server, which refuses at once, not by timeout.
                .set("redis", "op_timeout_ms", 1000)
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
    pub(crate) fn on(&self, world: &World, session: &Session, i: usize) -> Session {
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
    pub(crate) fn cache_keys(&self) -> Result<connector::obo::CacheKeys> {
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
