//! The connector under test: its configuration (from the typed `SettingsBuilder`) and policy
//! file, and how it runs: in this process on the world's clock, or as a child of the binary
//! being tested, under libfaketime when a scenario moves the clock.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use connector::testing::SettingsBuilder;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ConnectorMode, TenantRule};

/// Where Debian's `libfaketime` package puts the preload library, most likely first.
const LIBFAKETIME_CANDIDATES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The libfaketime preload library: `$CONFORMANCE_LIBFAKETIME` when set, else the first of the
/// usual install paths that exists. A spawned connector follows the world's clock through it.
pub fn libfaketime() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CONFORMANCE_LIBFAKETIME") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("CONFORMANCE_LIBFAKETIME={} is not a file", path.display());
    }
    // The multiarch directory of this build first, then the generic candidates.
    let arch = format!("/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1", std::env::consts::ARCH);
    std::iter::once(arch.as_str())
        .chain(LIBFAKETIME_CANDIDATES)
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "libfaketime is not installed: scenarios that move the clock run the connector \
                 binary under it (install the Debian package `faketime`: \
                 `apt-get install -y faketime`, or set CONFORMANCE_LIBFAKETIME to libfaketime.so.1)"
            )
        })
}

/// The file libfaketime reads the child's clock offset from, on every clock read.
pub(super) const FAKETIME_FILE: &str = "faketime";

/// Starts the connector on `listener` with the configuration at `config_path`: in this
/// process on the world's clock, or as a child of the binary (under libfaketime when the
/// scenario moves the clock, its offset file in `dir`).
pub(super) async fn start_connector(
    mode: &ConnectorMode,
    moving_clock: bool,
    config_path: &Path,
    dir: &Path,
    std_listener: std::net::TcpListener,
    clock: &fixtures::Clock,
) -> Result<Running> {
    Ok(match mode {
        ConnectorMode::InProcess => {
            let settings = connector::config::Settings::load(
                Some(config_path),
                std::iter::empty(),
                &connector::config::Overrides::default(),
            )
            .map_err(|e| anyhow!("connector config: {e}"))?;
            let c = clock.clone();
            let deps = connector::server::Dependencies {
                clock: connector::clock::Clock::from_fn(move || c.now()),
                listener: Some(std_listener),
                ..Default::default()
            };
            let app = connector::server::Application::build(settings, deps)
                .await
                .map_err(|e| anyhow!("connector start: {e}"))?;
            let state = app.state().clone();
            let stop = CancellationToken::new();
            let s = stop.clone();
            let task = tokio::spawn(async move {
                let _ = app.run_until_stopped(s.cancelled_owned()).await;
            });
            Running::InProcess { state, stop, task }
        }
        ConnectorMode::Binary(bin) => {
            drop(std_listener);
            let stderr_path = dir.join("connector.stderr.log");
            let stderr = std::fs::File::create(&stderr_path)?;
            let mut command = std::process::Command::new(bin);
            command
                .arg("serve")
                .arg("--config")
                .arg(config_path)
                .stdout(stderr.try_clone()?)
                .stderr(stderr)
                .env_remove("M365_CONFIG")
                .env_remove("LD_PRELOAD")
                .env_remove("FAKETIME");
            let faketime = if moving_clock {
                let library = libfaketime()?;
                let file = dir.join(FAKETIME_FILE);
                std::fs::write(&file, faketime_offset(clock))
                    .with_context(|| format!("write {}", file.display()))?;
                // Only the wall clock moves: tokio's timers (monotonic) stay real, and
                // the file is read on every call so an advance is seen at once.
                command
                    .env("LD_PRELOAD", library)
                    .env("FAKETIME_TIMESTAMP_FILE", &file)
                    .env("FAKETIME_NO_CACHE", "1")
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                Some(file)
            } else {
                None
            };
            let child = command.spawn().with_context(|| format!("spawn {}", bin.display()))?;
            Running::Child { child, stderr_path, faketime }
        }
    })
}

/// The connector's configuration, relative paths resolving against the file's directory:
/// short JWKS floor and Graph timeouts so fault scenarios stay quick, a per-caller rate far
/// above what any scenario sends (X03 and the rate-limit scenarios set their own), fresh
/// random cache and cursor keys per world (base64).
pub(super) fn connector_settings(
    port: u16,
    authority: &str,
    graph_base: &str,
    client_id: &str,
    client_secret: &str,
    obo_max_reuse_secs: u64,
    (cache_key, cursor_key): (&str, &str),
) -> SettingsBuilder {
    SettingsBuilder::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .entra(authority, client_id, client_secret)
        .jwks_refresh_floor_secs(1)
        .graph(graph_base)
        .graph_retries(5, 3, 10)
        .obo_max_reuse_secs(obo_max_reuse_secs)
        .cache_keys_b64(&[cache_key])
        .policy(Path::new("policy.toml"), 1)
        .audit(Path::new("audit.jsonl"), false)
        .request_timeout_secs(30)
        .per_caller_rate(6000, 1000)
        .shutdown_grace_secs(2)
        .cursor_key_b64(cursor_key)
}

pub(super) fn random_key() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(Uuid::new_v4().as_bytes());
    STANDARD.encode(bytes)
}

pub(super) fn policy_toml(
    rules: &BTreeMap<String, TenantRule>,
    ids: &BTreeMap<String, Uuid>,
) -> String {
    let mut out = String::from("[defaults]\nmax_results = 25\n");
    for (name, rule) in rules {
        let Some(id) = ids.get(name) else { continue };
        let tools = match &rule.tools {
            None => "[\"*\"]".to_owned(),
            Some(t) => {
                format!("[{}]", t.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", "))
            }
        };
        out.push_str(&format!(
            "\n[[tenants]]\nid = \"{id}\"\nname = \"{name}\"\nenabled = {}\ntools = {tools}\n",
            rule.enabled
        ));
    }
    out
}

pub(super) enum Running {
    InProcess {
        state: Arc<connector::server::AppState>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    },
    Child {
        child: std::process::Child,
        stderr_path: PathBuf,
        /// libfaketime's offset file when the child follows the world's clock.
        faketime: Option<PathBuf>,
    },
}

/// The clock's offset in libfaketime's relative format (`+SECONDS`, fractions allowed).
pub(super) fn faketime_offset(clock: &fixtures::Clock) -> String {
    let ms = clock.offset().num_milliseconds();
    let sign = if ms < 0 { '-' } else { '+' };
    let ms = ms.unsigned_abs();
    format!("{sign}{}.{:03}\n", ms / 1000, ms % 1000)
}
