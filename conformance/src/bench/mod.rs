//! `m365-bench`: what the connector costs over Graph itself, under load (issue 7).
//!
//! One run: generate a tenant set, start both fakes in this process and the connector binary
//! as a child, drive C concurrent callers (each a different user) through a mix of tool calls
//! for T seconds, then replay the identical Graph requests (from fake-graph's journal) straight
//! to fake-graph from C callers: the baseline. Reports JSON, a Markdown table and an SVG
//! histogram of both latency distributions.
//!
//! Scale-out (`--instances N [--redis]`, issue 12): each step is measured once per layout on
//! the same world and load, one instance without Redis first, then (with `--redis`) one
//! instance with Redis and N instances sharing a `redis-server` started here (the X
//! scenarios' harness), the callers' requests spread over the instances round-robin, one
//! request at a time (a balancer without affinity: the worst case for the in-process L1).
//! `scale-out.md`/`.json` put the layouts side by side.
//!
//! # Layout
//! * [`setup`]: world generation (per-tenant threads), picking users, spawning the connector.
//! * [`capture`]: the calibration proxy that learns POST bodies the journal does not keep.
//! * [`load`]: the call mix and the callers (stateless JSON-RPC POSTs, shared client).
//! * `measure`: one measured step: the connectors under load, the OBO census, the replay,
//!   the figures against issue 13's targets.
//! * [`replay`]: journal → per-call request groups, baseline Graph tokens, the direct replay.
//! * [`procfs`]: the connector's RSS and CPU from `/proc`.
//! * [`report`]: percentiles, Markdown, SVG, and the sweep and scale-out summary tables.

pub mod capture;
pub mod load;
mod measure;
pub mod procfs;
pub mod replay;
pub mod report;
pub mod setup;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use axum::body::Bytes;
use fake_entra::FakeEntra;
use fake_graph::{CaeSync, FakeGraph};
use serde_json::{Value, json};

use self::{
    measure::measure,
    setup::{ConnectorSetup, WorldSize},
};

/// The bench's knobs (the binary's flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// One run per entry, in order, over the same world and fakes (a sweep).
    pub callers: Vec<usize>,
    pub seconds: u64,
    pub size: WorldSize,
    pub out: PathBuf,
    pub connector_bin: PathBuf,
    pub obo_max_reuse_secs: u64,
    /// Connector instances of the last layout (1: the classic single-instance bench).
    pub instances: usize,
    /// Share state through a `redis-server` started by the bench.
    pub redis: bool,
}

/// How the connector is deployed for one measured step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub instances: usize,
    pub redis: bool,
}

impl Layout {
    pub fn label(self) -> String {
        let n = self.instances;
        let plural = if n == 1 { "" } else { "s" };
        if self.redis {
            format!("{n} instance{plural} + Redis")
        } else {
            format!("{n} instance{plural}, no Redis")
        }
    }

    fn dir_name(self) -> String {
        format!("{}x-{}", self.instances, if self.redis { "redis" } else { "local" })
    }
}

/// The layouts one run measures, in order: one instance without Redis always comes first,
/// so every other layout is compared with today's single instance.
pub fn layouts(instances: usize, redis: bool) -> Vec<Layout> {
    let mut out = vec![Layout { instances: 1, redis: false }];
    if redis {
        out.push(Layout { instances: 1, redis: true });
    }
    if instances > 1 {
        out.push(Layout { instances, redis });
    }
    out
}

/// What one measured step (one caller count) produced.
pub struct Outcome {
    pub callers: usize,
    pub layout: Layout,
    /// What Redis held at the end of the step (layouts with Redis).
    pub census: Option<crate::scaleout::Census>,
    pub json: Value,
    pub markdown: String,
    pub svg: String,
}

/// Everything the measured steps share: the world, both fakes, the clients, the callers'
/// tokens and the calibrated call templates.
struct Prepared {
    counts: setup::WorldCounts,
    fakes_secs: f64,
    tenants: Vec<(String, uuid::Uuid)>,
    client_id: String,
    secret: String,
    entra: FakeEntra,
    graph: FakeGraph,
    http: reqwest::Client,
    direct_http: reqwest::Client,
    tokens: Vec<String>,
    oids: Vec<uuid::Uuid>,
    templates: Vec<load::Template>,
    bodies: HashMap<usize, Vec<Bytes>>,
    calibration_errors: BTreeMap<String, String>,
}

/// Runs the whole bench: one world, then one measured step per entry of `opts.callers`.
/// A single step writes `bench.json`, `bench.md` and `latency.svg` into `out`; a sweep writes
/// them into `out/callers-C/` and adds `sweep.md` and `sweep.json` with one row per step.
pub async fn run(opts: &Options) -> Result<Vec<Outcome>> {
    crate::install_crypto();
    if !opts.connector_bin.is_file() {
        return Err(anyhow!(
            "connector binary {} not found; build it with `cargo build --release -p connector`",
            opts.connector_bin.display()
        ));
    }
    let most = opts.callers.iter().copied().max().ok_or_else(|| anyhow!("no caller counts"))?;
    let layouts = layouts(opts.instances, opts.redis);
    let redis = if opts.redis {
        let server = crate::scaleout::RedisServer::start()?;
        eprintln!("redis-server on {}", server.url());
        Some(server)
    } else {
        None
    };
    let prepared = prepare(opts, most).await?;
    let mut outcomes = Vec::with_capacity(opts.callers.len() * layouts.len());
    for &callers in &opts.callers {
        for &layout in &layouts {
            let mut out = if opts.callers.len() == 1 {
                opts.out.clone()
            } else {
                opts.out.join(format!("callers-{callers}"))
            };
            if layouts.len() > 1 {
                out = out.join(layout.dir_name());
            }
            let redis_url = match (&redis, layout.redis) {
                (Some(server), true) => {
                    server.flush_all()?; // every layout starts with empty caches
                    Some(server.url())
                }
                _ => None,
            };
            eprintln!("{callers} callers, {}:", layout.label());
            let mut outcome = measure(&prepared, opts, callers, layout, redis_url, &out).await?;
            if let (Some(server), true) = (&redis, layout.redis) {
                // What the step left in Redis, for sizing (before the next step flushes it).
                let census = server.census()?;
                outcome.json["redis_census"] = serde_json::to_value(&census)?;
                outcome.census = Some(census);
            }
            eprintln!("{callers} callers, {}: done, written to {}", layout.label(), out.display());
            outcomes.push(outcome);
        }
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;
    if opts.callers.len() > 1 && layouts.len() == 1 {
        let (markdown, json) = report::sweep_summary(&outcomes, opts.seconds, &prepared.counts);
        std::fs::write(opts.out.join("sweep.md"), &markdown)?;
        std::fs::write(opts.out.join("sweep.json"), serde_json::to_string_pretty(&json)?)?;
    }
    if layouts.len() > 1 {
        let (markdown, json) = report::scale_out_summary(&outcomes, opts.seconds, &prepared.counts);
        std::fs::write(opts.out.join("scale-out.md"), &markdown)?;
        std::fs::write(opts.out.join("scale-out.json"), serde_json::to_string_pretty(&json)?)?;
    }
    Ok(outcomes)
}

/// The world, the fakes, the tokens of `most` callers and the calibration.
async fn prepare(opts: &Options, most: usize) -> Result<Prepared> {
    // 1. The world.
    eprintln!("generating the tenant set …");
    let (world, counts) = setup::generate(&opts.size);
    eprintln!(
        "generated {} users, {} messages, {} files, {} chat messages in {:.1} s",
        counts.users, counts.messages, counts.files, counts.chat_messages, counts.generate_secs
    );
    let users = setup::pick_users(&world, most)?;
    let tenants: Vec<(String, uuid::Uuid)> =
        world.tenants.iter().map(|t| (t.name.clone(), t.id)).collect();
    let client_id = world.apps.connector.app_id.to_string();
    let secret = world
        .apps
        .connector
        .client_secrets
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the connector app has no TEST-ONLY secret"))?;
    let started = Instant::now();
    let world = setup::shared(world);
    let entra = FakeEntra::builder()
        .world(world.clone())
        .start()
        .await
        .map_err(|e| anyhow!("fake-entra: {e}"))?;
    let graph = FakeGraph::builder()
        .world(world.clone())
        .entra(&entra.uri())
        .cae_sync(CaeSync::Background(Duration::from_secs(1)))
        .start()
        .await
        .context("fake-graph")?;
    let fakes_secs = started.elapsed().as_secs_f64();

    // Keep-alive clients; the pool holds one idle connection per caller and then some.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(most + 16)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    // Direct Graph calls follow `/content` redirects to the download URL, as the connector does.
    let direct_http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(most + 16)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;

    // Inbound tokens: fake-entra's `user_token(tid, oid)` (what the auth-code flow issues);
    // 1,000 interactive PKCE sign-ins would dominate the run.
    let tokens: Vec<String> = users.iter().map(|u| entra.user_token(u.tid, u.oid)).collect();
    let oids: Vec<uuid::Uuid> = users.iter().map(|u| u.oid).collect();

    // 2. Calibration: a throw-away connector behind the capture proxy learns the POST bodies.
    eprintln!("calibrating (capturing POST bodies per call template) …");
    let proxy = capture::CaptureProxy::start(&graph.uri()).await?;
    let calib = setup::spawn_connector(
        &ConnectorSetup {
            bin: &opts.connector_bin,
            authority: entra.uri(),
            graph_base: format!("{}/v1.0", proxy.uri),
            client_id: client_id.clone(),
            client_secret: secret.clone(),
            tenants: tenants.clone(),
            obo_max_reuse_secs: opts.obo_max_reuse_secs,
            max_in_flight: (most + 64).max(256),
            cache_key: setup::random_key(),
            cursor_key: setup::random_key(),
            redis_url: None,
        },
        &http,
    )
    .await?;
    let listed = list_tools(&http, &calib.mcp_url(), &tokens[0]).await?;
    let templates = load::templates(&listed);
    if templates.is_empty() {
        return Err(anyhow!("the connector lists none of the bench's tools: {listed:?}"));
    }
    let mut bodies: HashMap<usize, Vec<Bytes>> = HashMap::new();
    let mut calibration_errors = BTreeMap::new();
    for (i, t) in templates.iter().enumerate() {
        if t.tool == "read_resource" {
            continue;
        }
        proxy.drain();
        if let Err(e) = load::call(&http, &calib.mcp_url(), &tokens[0], 1, t.tool, &t.args).await {
            calibration_errors.insert(format!("{} {}", t.tool, t.args), e);
        }
        let posts: Vec<Bytes> =
            proxy.drain().into_iter().filter(|c| c.method == "POST").map(|c| c.body).collect();
        bodies.insert(i, posts);
    }
    drop(calib);
    drop(proxy);
    Ok(Prepared {
        counts,
        fakes_secs,
        tenants,
        client_id,
        secret,
        entra,
        graph,
        http,
        direct_http,
        tokens,
        oids,
        templates,
        bodies,
        calibration_errors,
    })
}

/// `tools/list` as one stateless POST.
async fn list_tools(http: &reqwest::Client, url: &str, token: &str) -> Result<Vec<String>> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", load::PROTOCOL_VERSION)
        .bearer_auth(token)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).to_string())
        .send()
        .await
        .context("tools/list")?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    let v: Value = serde_json::from_str(&text)
        .ok()
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("data:"))
                .and_then(|d| serde_json::from_str(d.trim()).ok())
        })
        .ok_or_else(|| anyhow!("tools/list answered HTTP {status} with an unreadable body"))?;
    Ok(v.pointer("/result/tools")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}
