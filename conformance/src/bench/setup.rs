//! The benchmark's world: a generated tenant set, both fakes in this process, and the
//! connector binary as a child process configured against them.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use connector::testing::SettingsBuilder;
use fixtures::{
    World,
    content::ContentSpec,
    generate::{GenerateSpec, large},
};
use serde::Serialize;
use uuid::Uuid;

/// What the generator was asked for, in totals over all tenants.
#[derive(Debug, Clone)]
pub struct WorldSize {
    pub seed: u64,
    pub tenants: usize,
    pub users: usize,
    pub messages: usize,
    pub files: usize,
    pub chat_messages: usize,
}

/// What the generated world holds, counted after generation.
#[derive(Debug, Clone, Serialize)]
pub struct WorldCounts {
    pub tenants: usize,
    pub users: usize,
    pub enabled_users: usize,
    pub messages: usize,
    pub files: usize,
    pub chat_messages: usize,
    pub events: usize,
    pub generate_secs: f64,
}

/// Generates the tenant set; content is made per tenant on its own thread (tenants are
/// independent, so the result is the same as `generate::large` with content).
pub fn generate(size: &WorldSize) -> (World, WorldCounts) {
    let started = Instant::now();
    let tenants = size.tenants.max(1);
    let per_tenant = size.users.div_ceil(tenants).max(2);
    let total_users = per_tenant * tenants;
    let spec = GenerateSpec {
        seed: size.seed,
        tenants,
        users_per_tenant: per_tenant,
        groups_per_tenant: 20,
        content: None,
    };
    let mut world = large(&spec);
    // One chat started per user, so chat messages ≈ users × messages_per_chat (+ the
    // well-known chats and the team's channels).
    let content = ContentSpec {
        messages_per_user: size.messages.div_ceil(total_users).max(1),
        events_per_user: 10,
        files_per_user: size.files.div_ceil(total_users).max(1),
        chats_per_user: 1,
        messages_per_chat: size.chat_messages.div_ceil(total_users).max(1),
        rich_files: false,
    };
    std::thread::scope(|scope| {
        for tenant in &mut world.tenants {
            let content = &content;
            scope.spawn(move || {
                tenant.content = fixtures::content::tenant_content(tenant, content);
            });
        }
    });
    let mut counts = WorldCounts {
        tenants: world.tenants.len(),
        users: 0,
        enabled_users: 0,
        messages: 0,
        files: 0,
        chat_messages: 0,
        events: 0,
        generate_secs: 0.0,
    };
    for t in &world.tenants {
        counts.users += t.users.len();
        counts.enabled_users += t.users.iter().filter(|u| u.enabled).count();
        counts.messages += t.content.mailboxes.iter().map(|m| m.messages.len()).sum::<usize>();
        counts.files += t.content.drives.iter().map(|d| d.items.len()).sum::<usize>();
        counts.events += t.content.calendars.iter().map(|c| c.events.len()).sum::<usize>();
        counts.chat_messages += t.content.chats.iter().map(|c| c.messages.len()).sum::<usize>();
        counts.chat_messages += t
            .content
            .teams
            .iter()
            .flat_map(|team| &team.channels)
            .map(|c| c.messages.len())
            .sum::<usize>();
    }
    counts.generate_secs = started.elapsed().as_secs_f64();
    (world, counts)
}

/// One signed-in bench user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub tid: Uuid,
    pub oid: Uuid,
    pub tenant: String,
}

/// The first `n` enabled users, taken round-robin over the tenants so load spreads evenly.
pub fn pick_users(world: &World, n: usize) -> Result<Vec<BenchUser>> {
    let mut per_tenant: Vec<Vec<BenchUser>> = world
        .tenants
        .iter()
        .map(|t| {
            t.users
                .iter()
                .filter(|u| u.enabled)
                .map(|u| BenchUser { tid: t.id, oid: u.oid, tenant: t.name.clone() })
                .collect()
        })
        .collect();
    for list in &mut per_tenant {
        list.reverse();
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let before = out.len();
        for list in &mut per_tenant {
            if out.len() < n
                && let Some(u) = list.pop()
            {
                out.push(u);
            }
        }
        if out.len() == before {
            bail!(
                "{n} callers need {n} distinct enabled users, but the world has only {}; raise --users",
                out.len()
            );
        }
    }
    Ok(out)
}

/// A spawned connector: its base URL and process id; killed on drop.
pub struct ConnectorProcess {
    pub base_url: String,
    pub child: std::process::Child,
    pub dir: PathBuf,
}

impl ConnectorProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// The child's stderr (for error reports; the connector never logs secrets).
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.join("connector.stderr.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log.get(start..).unwrap_or_default().to_owned()
    }
}

impl Drop for ConnectorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("KEEP_WORLD").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Everything the connector's config needs from the world.
pub struct ConnectorSetup<'a> {
    pub bin: &'a Path,
    pub authority: String,
    pub graph_base: String,
    pub client_id: String,
    pub client_secret: String,
    pub tenants: Vec<(String, Uuid)>,
    pub obo_max_reuse_secs: u64,
    /// `limits.max_in_flight`: above the caller count, so the bench measures cost, not
    /// load shedding (the default of 256 would shed at 1,000 callers).
    pub max_in_flight: usize,
    /// `obo.cache_keys[0]` and `tools.cursor_key` (base64): the same for every instance of
    /// one measured step, as scaled-out instances must share them.
    pub cache_key: String,
    pub cursor_key: String,
    /// `[redis] url`, for instances sharing state.
    pub redis_url: Option<String>,
}

/// A fresh random 32-byte key, base64.
pub fn random_key() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    STANDARD.encode(bytes)
}

/// Writes config and policy into a temporary directory, spawns `BIN serve --config FILE` and
/// waits for `/readyz`. The per-caller rate limit is raised far above the bench's rate: the
/// bench measures cost, not the limiter.
pub async fn spawn_connector(
    setup: &ConnectorSetup<'_>,
    http: &reqwest::Client,
) -> Result<ConnectorProcess> {
    let dir = std::env::temp_dir().join(format!("m365-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut settings = SettingsBuilder::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .entra(&setup.authority, &setup.client_id, &setup.client_secret)
        .graph(&setup.graph_base)
        .download_hosts(&["127.0.0.1"])
        .obo_max_reuse_secs(setup.obo_max_reuse_secs)
        .cache_keys_b64(&[&setup.cache_key])
        .policy(Path::new("policy.toml"), 5)
        .audit(Path::new("audit.jsonl"), false)
        .request_timeout_secs(30)
        .max_in_flight(setup.max_in_flight)
        .per_caller_rate(10_000_000, 1_000_000)
        .shutdown_grace_secs(1)
        .cursor_key_b64(&setup.cursor_key);
    if let Some(url) = &setup.redis_url {
        settings = settings.redis(url);
    }
    let config = settings.toml();
    let config_path = dir.join("connector.toml");
    std::fs::write(&config_path, config)?;
    let mut policy = String::from("[defaults]\nmax_results = 25\n");
    for (name, id) in &setup.tenants {
        policy.push_str(&format!(
            "\n[[tenants]]\nid = \"{id}\"\nname = \"{name}\"\nenabled = true\ntools = [\"*\"]\n"
        ));
    }
    std::fs::write(dir.join("policy.toml"), policy)?;
    let stderr = std::fs::File::create(dir.join("connector.stderr.log"))?;
    let child = std::process::Command::new(setup.bin)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdout(stderr.try_clone()?)
        .stderr(stderr)
        .env_remove("M365_CONFIG")
        .spawn()
        .with_context(|| format!("spawn {}", setup.bin.display()))?;
    let mut proc = ConnectorProcess { base_url: format!("http://127.0.0.1:{port}"), child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{}/readyz", proc.base_url)).send().await
            && r.status().is_success()
        {
            return Ok(proc);
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(anyhow!("the connector exited with {status}:\n{}", proc.log_tail()));
        }
        if Instant::now() > deadline {
            bail!("the connector did not become ready within 30 s:\n{}", proc.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The world shared by both fakes.
pub fn shared(world: World) -> Arc<World> {
    Arc::new(world)
}
