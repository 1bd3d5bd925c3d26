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
//! * [`replay`]: journal → per-call request groups, baseline Graph tokens, the direct replay.
//! * [`procfs`]: the connector's RSS and CPU from `/proc`.
//! * [`report`]: percentiles, Markdown, SVG, and the sweep and scale-out summary tables.

pub mod capture;
pub mod load;
pub mod procfs;
pub mod replay;
pub mod report;
pub mod setup;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use axum::body::Bytes;
use fake_entra::FakeEntra;
use fake_graph::{CaeSync, FakeGraph};
use serde_json::{Value, json};

use self::{
    report::{Row, Side},
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

/// One measured step: fresh connectors (empty caches) in `layout`, `callers` callers, then
/// the replay.
async fn measure(
    p: &Prepared,
    opts: &Options,
    callers: usize,
    layout: Layout,
    redis_url: Option<String>,
    out: &Path,
) -> Result<Outcome> {
    let Prepared {
        counts,
        fakes_secs,
        tenants,
        client_id,
        secret,
        entra,
        graph,
        http,
        direct_http,
        templates,
        bodies,
        calibration_errors,
        ..
    } = p;
    let (counts, fakes_secs) = (counts.clone(), *fakes_secs);
    let tokens = &p.tokens[..callers];
    let oids = &p.oids[..callers];
    entra.clear_journal();
    graph.clear_journal();

    // 3. The measured connectors: one step's instances share their keys (and Redis).
    let (cache_key, cursor_key) = (setup::random_key(), setup::random_key());
    let mut conns = Vec::with_capacity(layout.instances);
    for _ in 0..layout.instances {
        conns.push(
            setup::spawn_connector(
                &ConnectorSetup {
                    bin: &opts.connector_bin,
                    authority: entra.uri(),
                    graph_base: format!("{}/v1.0", graph.uri()),
                    client_id: client_id.clone(),
                    client_secret: secret.clone(),
                    tenants: tenants.clone(),
                    obo_max_reuse_secs: opts.obo_max_reuse_secs,
                    max_in_flight: (callers + 64).max(256),
                    cache_key: cache_key.clone(),
                    cursor_key: cursor_key.clone(),
                    redis_url: redis_url.clone(),
                },
                http,
            )
            .await?,
        );
    }
    let pids: Vec<u32> = conns.iter().map(setup::ConnectorProcess::pid).collect();
    let idle_rss: u64 = pids.iter().map(|&pid| procfs::rss_kib(pid).unwrap_or((0, 0)).0).sum();
    let cpu_of = |pids: &[u32]| pids.iter().map(|&pid| procfs::cpu_secs(pid).unwrap_or(0.0)).sum();
    let cpu_before: f64 = cpu_of(&pids);
    eprintln!(
        "load: {} callers for {} s over {} templates of {:?}, {}",
        callers,
        opts.seconds,
        templates.len(),
        templates.iter().map(|t| t.tool).collect::<BTreeSet<_>>(),
        layout.label()
    );

    // RSS sampler: VmHWM is the kernel's own peak, the samples show the shape (summed over
    // the instances).
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pids) = (sampling.clone(), peak_sampled.clone(), pids.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let rss: u64 =
                    pids.iter().filter_map(|&pid| procfs::rss_kib(pid)).map(|(rss, _)| rss).sum();
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let templates = Arc::new(templates.clone());
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(opts.seconds);
    let urls: Arc<Vec<String>> = Arc::new(conns.iter().map(|c| c.mcp_url()).collect());
    let mut tasks = Vec::with_capacity(callers);
    for (i, token) in tokens.iter().enumerate() {
        tasks.push(tokio::spawn(load::run_caller(
            i,
            http.clone(),
            urls.clone(),
            token.clone(),
            templates.clone(),
            deadline,
        )));
    }
    let mut records = Vec::with_capacity(callers);
    for t in tasks {
        records.push(t.await.context("caller task")?);
    }
    let load_wall = load_started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let cpu_after: f64 = cpu_of(&pids);
    let hwm: u64 = pids.iter().map(|&pid| procfs::rss_kib(pid).unwrap_or((0, 0)).1).sum();
    // Every instance's metrics, one after the other: the sums below add them up.
    let mut metrics = String::new();
    for conn in &conns {
        let text = http
            .get(format!("{}/metrics", conn.base_url))
            .send()
            .await
            .context("GET /metrics")?
            .text()
            .await?;
        metrics.push_str(&text);
        metrics.push('\n');
    }
    let connector_log_tail =
        conns.iter().map(setup::ConnectorProcess::log_tail).collect::<Vec<_>>().join("\n---\n");
    drop(conns);

    // 4. OBO exchanges per user, from fake-entra's journal.
    let entra_journal = entra.journal();
    let mut obo_per_user: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut obo_per_user_scopes: HashMap<(uuid::Uuid, Vec<String>), usize> = HashMap::new();
    let mut obo_refused = 0usize;
    for e in entra_journal.iter().filter(|e| e.grant == "on_behalf_of") {
        if !e.issued() {
            obo_refused += 1;
            continue;
        }
        if let Some(oid) = e.user_id {
            *obo_per_user.entry(oid).or_default() += 1;
            let mut s = e.scopes.clone();
            s.sort();
            *obo_per_user_scopes.entry((oid, s)).or_default() += 1;
        }
    }
    let active_users = records.iter().filter(|r| !r.is_empty()).count();
    let obo_counts: Vec<usize> =
        oids.iter().map(|o| obo_per_user.get(o).copied().unwrap_or(0)).collect();
    let obo_min = obo_counts.iter().copied().min().unwrap_or(0);
    let obo_max = obo_counts.iter().copied().max().unwrap_or(0);
    let obo_mean = obo_counts.iter().sum::<usize>() as f64 / obo_counts.len().max(1) as f64;
    let scope_sets: BTreeSet<Vec<String>> =
        obo_per_user_scopes.keys().map(|(_, s)| s.clone()).collect();
    let repeated_same_scopes = obo_per_user_scopes.values().filter(|n| **n > 1).count();

    // 5. Baseline.
    eprintln!("replaying the identical Graph requests direct …");
    let journal = graph.journal();
    let graph_by_path = replay::by_path(&journal);
    let (groups, match_stats) = replay::group(&records, oids, &journal, bodies);
    let utis: BTreeSet<String> = groups
        .iter()
        .flatten()
        .flat_map(|c| c.requests.iter().filter_map(|r| r.uti.clone()))
        .collect();
    let (graph_tokens, token_stats) =
        replay::tokens(direct_http, entra, &entra_journal, utis, client_id, secret).await?;
    let (direct, direct_wall) =
        replay::run(direct_http, &graph.uri(), groups, Arc::new(graph_tokens)).await?;

    // 6. Numbers.
    let flat: Vec<&load::CallRecord> = records.iter().flatten().collect();
    let mut conn_lat: Vec<Duration> = flat.iter().map(|r| r.latency).collect();
    let conn_errors = flat.iter().filter(|r| r.error.is_some()).count();
    let mut error_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in flat.iter().filter_map(|r| r.error.as_ref()) {
        *error_kinds.entry(r.clone()).or_default() += 1;
    }
    let mut per_tool: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &flat {
        *per_tool.entry(r.tool).or_default() += 1;
    }
    let connector = Side::from(&mut conn_lat, conn_errors, load_wall);
    let mut direct_lat: Vec<Duration> = direct.iter().map(|r| r.latency).collect();
    let direct_errors = direct.iter().filter(|r| r.error.is_some()).count();
    let mut direct_error_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in direct.iter().filter_map(|r| r.error.as_ref()) {
        *direct_error_kinds.entry(r.clone()).or_default() += 1;
    }
    let direct_side = Side::from(&mut direct_lat, direct_errors, direct_wall);
    let svg = report::histogram_svg(&conn_lat, &direct_lat);

    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0, printed "-0"
    };
    // A labelled series, e.g. `m365_redis_l2_lookups_total{outcome="hit"}`.
    let series = |name: &str, label: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(label)
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>()
            + 0.0
    };
    let l2_hits = series("m365_redis_l2_lookups_total", "outcome=\"hit\"");
    let l2_misses = series("m365_redis_l2_lookups_total", "outcome=\"miss\"");
    let redis_errors = metric("m365_redis_errors_total");
    let cache_hits = metric("m365_obo_cache_hits_total");
    let exchanges = metric("m365_obo_exchanges_total");
    let hit_rate =
        if cache_hits + exchanges > 0.0 { cache_hits / (cache_hits + exchanges) } else { 0.0 };
    let cpu = cpu_after - cpu_before;
    let cpu_per_1000 =
        if connector.calls > 0 { cpu / connector.calls as f64 * 1000.0 } else { 0.0 };
    let rss_growth = hwm.saturating_sub(idle_rss);
    let per_caller_kib = rss_growth as f64 / callers.max(1) as f64;
    let p50_ratio = ratio(connector.p50_ms, direct_side.p50_ms);
    let p95_ratio = ratio(connector.p95_ms, direct_side.p95_ms);
    let p99_ratio = ratio(connector.p99_ms, direct_side.p99_ms);
    let tput_ratio = ratio(connector.calls_per_sec, direct_side.calls_per_sec);
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();

    let c32 = callers == 32;
    let c1000 = callers >= 1000;
    let rows = vec![
        row("callers × seconds", format!("{} × {}", callers, opts.seconds), "", None),
        row("connector layout", layout.label(), "", None),
        row(
            "world",
            format!(
                "{} tenants, {} users, {} messages, {} files, {} chat messages (generated in {:.1} s, fakes up in {:.1} s)",
                counts.tenants,
                counts.users,
                counts.messages,
                counts.files,
                counts.chat_messages,
                counts.generate_secs,
                fakes_secs
            ),
            "≥1,000 / 200,000 / 50,000 / 20,000",
            Some(
                counts.users >= 1000
                    && counts.messages >= 200_000
                    && counts.files >= 50_000
                    && counts.chat_messages >= 20_000,
            ),
        ),
        row(
            "tool calls/s through the connector",
            format!("{:.0}", connector.calls_per_sec),
            "≥ 5,000",
            Some(connector.calls_per_sec >= 5000.0),
        ),
        row(
            "Graph-equivalent calls/s direct",
            format!("{:.0}", direct_side.calls_per_sec),
            "",
            None,
        ),
        row(
            "throughput connector / direct",
            format!("{:.1} %", tput_ratio * 100.0),
            "≥ 70 %",
            Some(tput_ratio >= 0.70),
        ),
        row(
            "p50 connector / direct",
            format!(
                "{:.2} ms / {:.2} ms = {:.2}×",
                connector.p50_ms, direct_side.p50_ms, p50_ratio
            ),
            "≤ 1.15× at 32 callers",
            c32.then_some(p50_ratio <= 1.15),
        ),
        row(
            "p95 connector / direct",
            format!(
                "{:.2} ms / {:.2} ms = {:.2}×",
                connector.p95_ms, direct_side.p95_ms, p95_ratio
            ),
            "",
            None,
        ),
        row(
            "p99 connector / direct",
            format!(
                "{:.2} ms / {:.2} ms = {:.2}×",
                connector.p99_ms, direct_side.p99_ms, p99_ratio
            ),
            "",
            None,
        ),
        row(
            "tool calls (connector / direct replay)",
            format!("{} / {}", connector.calls, direct_side.calls),
            "",
            None,
        ),
        row(
            "errors through the connector",
            format!("{conn_errors} {error_kinds:?}"),
            "0",
            Some(conn_errors == 0),
        ),
        row(
            "errors direct",
            format!("{direct_errors} {direct_error_kinds:?}"),
            "0",
            Some(direct_errors == 0),
        ),
        row(
            "OBO exchanges per user (min / mean / max)",
            format!(
                "{obo_min} / {obo_mean:.2} / {obo_max} over {} scope set(s); {repeated_same_scopes} user×scope repeats; {obo_refused} refused",
                scope_sets.len()
            ),
            "exactly 1 per user (per scope set) per max-reuse window",
            Some(
                repeated_same_scopes == 0
                    && obo_min >= 1
                    && obo_refused == 0
                    && obo_max <= scope_sets.len().max(1),
            ),
        ),
        row(
            "OBO cache hit rate (/metrics)",
            format!("{:.2} % ({cache_hits:.0} hits, {exchanges:.0} exchanges)", hit_rate * 100.0),
            "",
            None,
        ),
        row(
            "connector peak RSS (VmHWM)",
            format!("{:.1} MiB (idle {:.1} MiB)", hwm as f64 / 1024.0, idle_rss as f64 / 1024.0),
            "",
            None,
        ),
        row(
            "RSS growth per concurrent caller",
            format!("{per_caller_kib:.1} KiB"),
            "≤ 64 KiB at 1,000 callers",
            c1000.then_some(per_caller_kib <= 64.0),
        ),
        row(
            "connector CPU s per 1,000 calls",
            format!("{cpu_per_1000:.3} s ({cpu:.1} s total)"),
            "",
            None,
        ),
        row(
            "baseline Graph tokens",
            format!(
                "{} utis: {} by our own OBO exchange, {} minted",
                token_stats.connector_utis, token_stats.obo_exchanged, token_stats.minted
            ),
            "",
            None,
        ),
        row(
            "journal → call matching",
            format!(
                "{} of {} entries matched; {} POSTs without a captured body; {} calls without Graph requests",
                match_stats.matched_entries,
                match_stats.journal_entries,
                match_stats.posts_without_body,
                match_stats.calls_without_graph_requests
            ),
            "",
            None,
        ),
        row(
            "Redis L2 lookups (hits / misses), Redis errors",
            format!("{l2_hits:.0} / {l2_misses:.0}, {redis_errors:.0}"),
            "",
            None,
        ),
        row("load average (/proc/loadavg at end)", load_avg.clone(), "", None),
    ];
    let mut shapes: Vec<(String, f64, f64, u64)> = graph_by_path
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let n = v["count"].as_u64().unwrap_or(0);
                    let mean = v["mean_ms"].as_f64().unwrap_or(0.0);
                    (k.clone(), mean * n as f64, mean, n)
                })
                .collect()
        })
        .unwrap_or_default();
    shapes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut hot = String::from(
        "\n| Graph request (connector run) | count | fake-graph mean handling ms |\n|---|---|---|\n",
    );
    for (k, _, mean, n) in shapes.iter().take(8) {
        hot.push_str(&format!("| `{k}` | {n} | {mean:.1} |\n"));
    }
    let markdown = format!(
        "{}{hot}\nTool mix: {}\n\nInbound tokens: fake-entra `user_token(tid, oid)` (no interactive sign-in). Baseline tokens: {}.\nDirect replay sends each call's Graph requests sequentially with the same concurrency; connector-side OBO and audit costs are included only on the connector side.\n",
        report::markdown("m365-bench: connector vs. direct Graph", &rows),
        per_tool.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        token_stats.method
    );
    let json = json!({
        "callers": callers,
        "instances": layout.instances,
        "redis_shared": layout.redis,
        "seconds": opts.seconds,
        "active_callers": active_users,
        "world": counts,
        "fakes_start_secs": fakes_secs,
        "templates": templates.iter().map(|t| json!({"tool": t.tool, "args": t.args, "weight": t.weight})).collect::<Vec<_>>(),
        "calibration_errors": calibration_errors,
        "calls_per_tool": per_tool,
        "connector": connector,
        "direct": direct_side,
        "ratios": {"p50": p50_ratio, "p95": p95_ratio, "p99": p99_ratio, "throughput": tput_ratio},
        "errors": {"connector": error_kinds, "direct": direct_error_kinds},
        "obo": {
            "per_user_min": obo_min, "per_user_mean": obo_mean, "per_user_max": obo_max,
            "scope_sets": scope_sets, "user_scope_repeats": repeated_same_scopes, "refused": obo_refused,
            "cache_hits": cache_hits, "exchanges_metric": exchanges, "cache_hit_rate": hit_rate,
        },
        "rss": {"idle_kib": idle_rss, "peak_kib": hwm, "peak_sampled_kib": peak_sampled.load(Ordering::Relaxed), "growth_per_caller_kib": per_caller_kib},
        "cpu": {"secs": cpu, "secs_per_1000_calls": cpu_per_1000},
        "redis": {"l2_hits": l2_hits, "l2_misses": l2_misses, "errors": redis_errors},
        "baseline_tokens": token_stats,
        "matching": match_stats,
        "graph_by_path": graph_by_path,
        "loadavg": load_avg,
        "connector_log_tail_on_error": if conn_errors > 0 { Value::String(connector_log_tail) } else { Value::Null },
    });
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("bench.md"), &markdown)?;
    std::fs::write(out.join("latency.svg"), &svg)?;
    Ok(Outcome { callers, layout, census: None, json, markdown, svg })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

fn row(metric: &str, value: String, target: &str, met: Option<bool>) -> Row {
    Row { metric: metric.to_owned(), value, target: target.to_owned(), met }
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
