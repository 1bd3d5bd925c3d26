//! One measured step: fresh connectors (empty caches), the load, the OBO census from
//! fake-entra's journal, the direct replay (the baseline), then the figures and the report.
//!
//! The targets in the report are issue 13's: connector CPU ≤ 0.20 ms per tool call at 32
//! callers, p50 ≤ 1.4× direct and throughput ≥ 75 % of direct at 32 callers, ≤ 0.3 ms added
//! to p50 at 1 caller, RSS growth ≤ 96 KiB per concurrent caller at 1,000 callers.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use fake_entra::JournalEntry;
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Layout, Options, Outcome, Prepared, load, procfs,
    replay::{self, MatchStats, TokenStats},
    report::{self, Row, Side},
    setup::{self, ConnectorSetup},
};

/// Runs one step and writes `bench.json`, `bench.md` and `latency.svg` into `out`.
pub(super) async fn measure(
    p: &Prepared,
    opts: &Options,
    callers: usize,
    layout: Layout,
    redis_url: Option<String>,
    out: &Path,
) -> Result<Outcome> {
    p.entra.clear_journal();
    p.graph.clear_journal();
    let load = run_load(p, opts, callers, layout, redis_url).await?;
    let entra_journal = p.entra.journal();
    let obo = OboCensus::count(&entra_journal, &p.oids[..callers]);
    let baseline = replay_direct(p, &load.records, callers, &entra_journal).await?;
    let figures = Figures::new(&load, &baseline);

    let rows = rows(p, opts, callers, layout, &figures, &obo, &baseline);
    let markdown = markdown(&rows, &figures, &baseline);
    let json = report_json(p, opts, callers, layout, &load, &figures, &obo, &baseline);
    let svg = report::histogram_svg(&figures.connector_latencies, &figures.direct_latencies);
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    std::fs::write(out.join("bench.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out.join("bench.md"), &markdown)?;
    std::fs::write(out.join("latency.svg"), &svg)?;
    Ok(Outcome { callers, layout, census: None, json, markdown, svg })
}

/// What the connectors did under load: the callers' records and the processes' costs.
struct LoadRun {
    records: Vec<Vec<load::CallRecord>>,
    wall: Duration,
    idle_rss_kib: u64,
    /// The kernel's own peak (VmHWM), summed over the instances.
    peak_rss_kib: u64,
    /// The largest of the 100 ms samples (the shape, not the peak).
    peak_sampled_kib: u64,
    cpu_secs: f64,
    /// Every instance's `/metrics`, one after the other.
    metrics: String,
    log_tail: String,
}

/// Starts the step's connectors (one step's instances share their keys and Redis), drives
/// `callers` callers for `opts.seconds` round-robin over them, and reads their costs.
async fn run_load(
    p: &Prepared,
    opts: &Options,
    callers: usize,
    layout: Layout,
    redis_url: Option<String>,
) -> Result<LoadRun> {
    let (cache_key, cursor_key) = (setup::random_key(), setup::random_key());
    let mut conns = Vec::with_capacity(layout.instances);
    for _ in 0..layout.instances {
        let config = ConnectorSetup {
            bin: &opts.connector_bin,
            authority: p.entra.uri(),
            graph_base: format!("{}/v1.0", p.graph.uri()),
            client_id: p.client_id.clone(),
            client_secret: p.secret.clone(),
            tenants: p.tenants.clone(),
            obo_max_reuse_secs: opts.obo_max_reuse_secs,
            max_in_flight: (callers + 64).max(256),
            cache_key: cache_key.clone(),
            cursor_key: cursor_key.clone(),
            redis_url: redis_url.clone(),
        };
        conns.push(setup::spawn_connector(&config, &p.http).await?);
    }
    let pids: Vec<u32> = conns.iter().map(setup::ConnectorProcess::pid).collect();
    let rss = |pids: &[u32]| -> (u64, u64) {
        pids.iter()
            .filter_map(|&pid| procfs::rss_kib(pid))
            .fold((0, 0), |(r, h), (rss, hwm)| (r + rss, h + hwm))
    };
    let cpu = |pids: &[u32]| -> f64 {
        pids.iter().map(|&pid| procfs::cpu_secs(pid).unwrap_or(0.0)).sum()
    };
    let (idle_rss_kib, _) = rss(&pids);
    let cpu_before = cpu(&pids);
    eprintln!(
        "load: {} callers for {} s over {} templates of {:?}, {}",
        callers,
        opts.seconds,
        p.templates.len(),
        p.templates.iter().map(|t| t.tool).collect::<BTreeSet<_>>(),
        layout.label()
    );

    let sampling = Arc::new(AtomicBool::new(true));
    let peak_sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pids) = (sampling.clone(), peak_sampled.clone(), pids.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss(&pids).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let templates = Arc::new(p.templates.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.seconds);
    let urls: Arc<Vec<String>> = Arc::new(conns.iter().map(|c| c.mcp_url()).collect());
    let tasks: Vec<_> = p.tokens[..callers]
        .iter()
        .enumerate()
        .map(|(i, token)| {
            tokio::spawn(load::run_caller(
                i,
                p.http.clone(),
                urls.clone(),
                token.clone(),
                templates.clone(),
                deadline,
            ))
        })
        .collect();
    let mut records = Vec::with_capacity(callers);
    for task in tasks {
        records.push(task.await.context("caller task")?);
    }
    let wall = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let cpu_secs = cpu(&pids) - cpu_before;
    let (_, peak_rss_kib) = rss(&pids);
    let mut metrics = String::new();
    for conn in &conns {
        let url = format!("{}/metrics", conn.base_url);
        let text = p.http.get(url).send().await.context("GET /metrics")?.text().await?;
        metrics.push_str(&text);
        metrics.push('\n');
    }
    let log_tail =
        conns.iter().map(setup::ConnectorProcess::log_tail).collect::<Vec<_>>().join("\n---\n");
    Ok(LoadRun {
        records,
        wall,
        idle_rss_kib,
        peak_rss_kib,
        peak_sampled_kib: peak_sampled.load(Ordering::Relaxed),
        cpu_secs,
        metrics,
        log_tail,
    })
}

/// OBO exchanges per user, from fake-entra's journal.
#[derive(Serialize)]
struct OboCensus {
    per_user_min: usize,
    per_user_mean: f64,
    per_user_max: usize,
    scope_sets: BTreeSet<Vec<String>>,
    /// (user, scope set) pairs exchanged more than once.
    user_scope_repeats: usize,
    refused: usize,
}

impl OboCensus {
    fn count(journal: &[JournalEntry], oids: &[uuid::Uuid]) -> Self {
        let mut per_user: HashMap<uuid::Uuid, usize> = HashMap::new();
        let mut per_user_scopes: HashMap<(uuid::Uuid, Vec<String>), usize> = HashMap::new();
        let mut refused = 0;
        for e in journal.iter().filter(|e| e.grant == "on_behalf_of") {
            if !e.issued() {
                refused += 1;
                continue;
            }
            if let Some(oid) = e.user_id {
                *per_user.entry(oid).or_default() += 1;
                let mut scopes = e.scopes.clone();
                scopes.sort();
                *per_user_scopes.entry((oid, scopes)).or_default() += 1;
            }
        }
        let counts: Vec<usize> =
            oids.iter().map(|o| per_user.get(o).copied().unwrap_or(0)).collect();
        Self {
            per_user_min: counts.iter().copied().min().unwrap_or(0),
            per_user_mean: counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64,
            per_user_max: counts.iter().copied().max().unwrap_or(0),
            scope_sets: per_user_scopes.keys().map(|(_, s)| s.clone()).collect(),
            user_scope_repeats: per_user_scopes.values().filter(|n| **n > 1).count(),
            refused,
        }
    }

    /// Exactly one exchange per user and scope set, none refused.
    fn as_promised(&self) -> bool {
        self.user_scope_repeats == 0
            && self.per_user_min >= 1
            && self.refused == 0
            && self.per_user_max <= self.scope_sets.len().max(1)
    }
}

/// The baseline: the identical Graph requests replayed straight to fake-graph.
struct Baseline {
    records: Vec<replay::DirectRecord>,
    wall: Duration,
    graph_by_path: Value,
    match_stats: MatchStats,
    token_stats: TokenStats,
}

async fn replay_direct(
    p: &Prepared,
    records: &[Vec<load::CallRecord>],
    callers: usize,
    entra_journal: &[JournalEntry],
) -> Result<Baseline> {
    eprintln!("replaying the identical Graph requests direct …");
    let journal = p.graph.journal();
    let graph_by_path = replay::by_path(&journal);
    let (groups, match_stats) = replay::group(records, &p.oids[..callers], &journal, &p.bodies);
    let utis: BTreeSet<String> = groups
        .iter()
        .flatten()
        .flat_map(|c| c.requests.iter().filter_map(|r| r.uti.clone()))
        .collect();
    let (graph_tokens, token_stats) =
        replay::tokens(&p.direct_http, &p.entra, entra_journal, utis, &p.client_id, &p.secret)
            .await?;
    let (records, wall) =
        replay::run(&p.direct_http, &p.graph.uri(), groups, Arc::new(graph_tokens)).await?;
    Ok(Baseline { records, wall, graph_by_path, match_stats, token_stats })
}

/// The step's numbers, both sides.
struct Figures {
    connector: Side,
    direct: Side,
    connector_latencies: Vec<Duration>,
    direct_latencies: Vec<Duration>,
    connector_errors: BTreeMap<String, usize>,
    direct_errors: BTreeMap<String, usize>,
    calls_per_tool: BTreeMap<&'static str, usize>,
    active_callers: usize,
    cpu_secs: f64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    peak_sampled_kib: u64,
    metrics: ConnectorMetrics,
    load_avg: String,
}

impl Figures {
    fn new(load: &LoadRun, baseline: &Baseline) -> Self {
        let calls: Vec<&load::CallRecord> = load.records.iter().flatten().collect();
        let mut connector_latencies: Vec<Duration> = calls.iter().map(|r| r.latency).collect();
        let connector_errors = count_kinds(calls.iter().filter_map(|r| r.error.as_ref()));
        let mut calls_per_tool: BTreeMap<&'static str, usize> = BTreeMap::new();
        for r in &calls {
            *calls_per_tool.entry(r.tool).or_default() += 1;
        }
        let connector =
            Side::from(&mut connector_latencies, connector_errors.values().sum(), load.wall);
        let mut direct_latencies: Vec<Duration> =
            baseline.records.iter().map(|r| r.latency).collect();
        let direct_errors = count_kinds(baseline.records.iter().filter_map(|r| r.error.as_ref()));
        let direct = Side::from(&mut direct_latencies, direct_errors.values().sum(), baseline.wall);
        Self {
            connector,
            direct,
            connector_latencies,
            direct_latencies,
            connector_errors,
            direct_errors,
            calls_per_tool,
            active_callers: load.records.iter().filter(|r| !r.is_empty()).count(),
            cpu_secs: load.cpu_secs,
            idle_rss_kib: load.idle_rss_kib,
            peak_rss_kib: load.peak_rss_kib,
            peak_sampled_kib: load.peak_sampled_kib,
            metrics: ConnectorMetrics::read(&load.metrics),
            load_avg: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }

    fn cpu_ms_per_call(&self) -> f64 {
        if self.connector.calls == 0 {
            return 0.0;
        }
        self.cpu_secs / self.connector.calls as f64 * 1e3
    }

    fn rss_growth_per_caller_kib(&self, callers: usize) -> f64 {
        self.peak_rss_kib.saturating_sub(self.idle_rss_kib) as f64 / callers.max(1) as f64
    }

    /// What the connector adds to the median call.
    fn added_p50_ms(&self) -> f64 {
        self.connector.p50_ms - self.direct.p50_ms
    }

    fn ratios(&self) -> Ratios {
        Ratios {
            p50: ratio(self.connector.p50_ms, self.direct.p50_ms),
            p95: ratio(self.connector.p95_ms, self.direct.p95_ms),
            p99: ratio(self.connector.p99_ms, self.direct.p99_ms),
            throughput: ratio(self.connector.calls_per_sec, self.direct.calls_per_sec),
        }
    }
}

#[derive(Serialize)]
struct Ratios {
    p50: f64,
    p95: f64,
    p99: f64,
    throughput: f64,
}

fn count_kinds<'a>(errors: impl Iterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for e in errors {
        *kinds.entry(e.clone()).or_default() += 1;
    }
    kinds
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// The counters the report reads from the instances' `/metrics`, summed over them.
#[derive(Serialize)]
struct ConnectorMetrics {
    cache_hits: f64,
    exchanges: f64,
    l2_hits: f64,
    l2_misses: f64,
    redis_errors: f64,
}

impl ConnectorMetrics {
    fn read(text: &str) -> Self {
        // `name` alone or `name{…}`, optionally only the series whose labels contain `label`.
        let sum = |name: &str, label: &str| -> f64 {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
                .filter(|l| l.contains(label))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum::<f64>()
                + 0.0 // an empty sum is -0.0, printed "-0"
        };
        Self {
            cache_hits: sum("m365_obo_cache_hits_total", ""),
            exchanges: sum("m365_obo_exchanges_total", ""),
            l2_hits: sum("m365_redis_l2_lookups_total", "outcome=\"hit\""),
            l2_misses: sum("m365_redis_l2_lookups_total", "outcome=\"miss\""),
            redis_errors: sum("m365_redis_errors_total", ""),
        }
    }

    fn hit_rate(&self) -> f64 {
        let lookups = self.cache_hits + self.exchanges;
        if lookups > 0.0 { self.cache_hits / lookups } else { 0.0 }
    }
}

fn row(metric: &str, value: String, target: &str, met: Option<bool>) -> Row {
    Row { metric: metric.to_owned(), value, target: target.to_owned(), met }
}

fn rows(
    p: &Prepared,
    opts: &Options,
    callers: usize,
    layout: Layout,
    f: &Figures,
    obo: &OboCensus,
    baseline: &Baseline,
) -> Vec<Row> {
    let counts = &p.counts;
    let ratios = f.ratios();
    let (at_1, at_32, at_1000) = (callers == 1, callers == 32, callers >= 1000);
    let (c, d) = (&f.connector, &f.direct);
    let side_by_side = |c: f64, d: f64, r: f64| format!("{c:.2} ms / {d:.2} ms = {r:.2}×");
    let m = &f.metrics;
    let (tokens, matching) = (&baseline.token_stats, &baseline.match_stats);
    vec![
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
                p.fakes_secs
            ),
            "≥1,000 / 200,000 / 50,000 / 20,000",
            Some(
                counts.users >= 1000
                    && counts.messages >= 200_000
                    && counts.files >= 50_000
                    && counts.chat_messages >= 20_000,
            ),
        ),
        row("tool calls/s through the connector", format!("{:.0}", c.calls_per_sec), "", None),
        row("Graph-equivalent calls/s direct", format!("{:.0}", d.calls_per_sec), "", None),
        row(
            "throughput connector / direct",
            format!("{:.1} %", ratios.throughput * 100.0),
            "≥ 75 % at 32 callers",
            at_32.then_some(ratios.throughput >= 0.75),
        ),
        row(
            "p50 connector / direct",
            side_by_side(c.p50_ms, d.p50_ms, ratios.p50),
            "≤ 1.4× at 32 callers",
            at_32.then_some(ratios.p50 <= 1.4),
        ),
        row(
            "p50 added by the connector",
            format!("{:.2} ms", f.added_p50_ms()),
            "≤ 0.3 ms at 1 caller",
            at_1.then_some(f.added_p50_ms() <= 0.3),
        ),
        row("p95 connector / direct", side_by_side(c.p95_ms, d.p95_ms, ratios.p95), "", None),
        row("p99 connector / direct", side_by_side(c.p99_ms, d.p99_ms, ratios.p99), "", None),
        row(
            "tool calls (connector / direct replay)",
            format!("{} / {}", c.calls, d.calls),
            "",
            None,
        ),
        row(
            "errors through the connector",
            format!("{} {:?}", c.errors, f.connector_errors),
            "0",
            Some(c.errors == 0),
        ),
        row(
            "errors direct",
            format!("{} {:?}", d.errors, f.direct_errors),
            "0",
            Some(d.errors == 0),
        ),
        row(
            "OBO exchanges per user (min / mean / max)",
            format!(
                "{} / {:.2} / {} over {} scope set(s); {} user×scope repeats; {} refused",
                obo.per_user_min,
                obo.per_user_mean,
                obo.per_user_max,
                obo.scope_sets.len(),
                obo.user_scope_repeats,
                obo.refused
            ),
            "exactly 1 per user (per scope set) per max-reuse window",
            Some(obo.as_promised()),
        ),
        row(
            "OBO cache hit rate (/metrics)",
            format!(
                "{:.2} % ({:.0} hits, {:.0} exchanges)",
                m.hit_rate() * 100.0,
                m.cache_hits,
                m.exchanges
            ),
            "",
            None,
        ),
        row(
            "connector peak RSS (VmHWM)",
            format!(
                "{:.1} MiB (idle {:.1} MiB)",
                f.peak_rss_kib as f64 / 1024.0,
                f.idle_rss_kib as f64 / 1024.0
            ),
            "",
            None,
        ),
        row(
            "RSS growth per concurrent caller",
            format!("{:.1} KiB", f.rss_growth_per_caller_kib(callers)),
            "≤ 96 KiB at 1,000 callers",
            at_1000.then_some(f.rss_growth_per_caller_kib(callers) <= 96.0),
        ),
        row(
            "connector CPU per tool call",
            format!("{:.3} ms ({:.1} s in all)", f.cpu_ms_per_call(), f.cpu_secs),
            "≤ 0.20 ms at 32 callers",
            at_32.then_some(f.cpu_ms_per_call() <= 0.20),
        ),
        row(
            "baseline Graph tokens",
            format!(
                "{} utis: {} by our own OBO exchange, {} minted",
                tokens.connector_utis, tokens.obo_exchanged, tokens.minted
            ),
            "",
            None,
        ),
        row(
            "journal → call matching",
            format!(
                "{} of {} entries matched; {} POSTs without a captured body; {} calls without Graph requests",
                matching.matched_entries,
                matching.journal_entries,
                matching.posts_without_body,
                matching.calls_without_graph_requests
            ),
            "",
            None,
        ),
        row(
            "Redis L2 lookups (hits / misses), Redis errors",
            format!("{:.0} / {:.0}, {:.0}", m.l2_hits, m.l2_misses, m.redis_errors),
            "",
            None,
        ),
        row("load average (/proc/loadavg at end)", f.load_avg.clone(), "", None),
    ]
}

/// The table, the Graph requests that took most of fake-graph's time, and the tool mix.
fn markdown(rows: &[Row], f: &Figures, baseline: &Baseline) -> String {
    let mut shapes: Vec<(String, f64, f64, u64)> = baseline
        .graph_by_path
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
    let mix: Vec<String> = f.calls_per_tool.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "{}{hot}\nTool mix: {}\n\nInbound tokens: fake-entra `user_token(tid, oid)` (no interactive sign-in). Baseline tokens: {}.\nDirect replay sends each call's Graph requests sequentially with the same concurrency; connector-side OBO and audit costs are included only on the connector side.\n",
        report::markdown("m365-bench: connector vs. direct Graph", rows),
        mix.join(", "),
        baseline.token_stats.method
    )
}

#[allow(clippy::too_many_arguments)]
fn report_json(
    p: &Prepared,
    opts: &Options,
    callers: usize,
    layout: Layout,
    load: &LoadRun,
    f: &Figures,
    obo: &OboCensus,
    baseline: &Baseline,
) -> Value {
    let m = &f.metrics;
    let mut obo_json = serde_json::to_value(obo).unwrap_or(Value::Null);
    obo_json["cache_hits"] = json!(m.cache_hits);
    obo_json["exchanges_metric"] = json!(m.exchanges);
    obo_json["cache_hit_rate"] = json!(m.hit_rate());
    json!({
        "callers": callers,
        "instances": layout.instances,
        "redis_shared": layout.redis,
        "seconds": opts.seconds,
        "active_callers": f.active_callers,
        "world": p.counts,
        "fakes_start_secs": p.fakes_secs,
        "templates": p.templates.iter().map(|t| json!({"tool": t.tool, "args": t.args, "weight": t.weight})).collect::<Vec<_>>(),
        "calibration_errors": p.calibration_errors,
        "calls_per_tool": f.calls_per_tool,
        "connector": f.connector,
        "direct": f.direct,
        "ratios": f.ratios(),
        "added_p50_ms": f.added_p50_ms(),
        "errors": {"connector": f.connector_errors, "direct": f.direct_errors},
        "obo": obo_json,
        "rss": {
            "idle_kib": f.idle_rss_kib,
            "peak_kib": f.peak_rss_kib,
            "peak_sampled_kib": f.peak_sampled_kib,
            "growth_per_caller_kib": f.rss_growth_per_caller_kib(callers),
        },
        "cpu": {
            "secs": f.cpu_secs,
            "secs_per_1000_calls": f.cpu_ms_per_call(),
            "ms_per_call": f.cpu_ms_per_call(),
        },
        "redis": {"l2_hits": m.l2_hits, "l2_misses": m.l2_misses, "errors": m.redis_errors},
        "baseline_tokens": baseline.token_stats,
        "matching": baseline.match_stats,
        "graph_by_path": baseline.graph_by_path,
        "loadavg": f.load_avg,
        "connector_log_tail_on_error": if f.connector.errors > 0 { Value::String(load.log_tail.clone()) } else { Value::Null },
    })
}
