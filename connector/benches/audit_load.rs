//! Audit load test (issue 11): a flood of refused bearer tokens must neither slow a valid
//! caller down nor grow the audit log beyond the aggregation budget, and no refusal may go
//! uncounted.
//!
//! Run: `cargo bench -p connector --bench audit_load -- --flood 2000 --seconds 15`.
//!
//! The connector (fsync on, default `[audit]` settings, `max_in_flight` above the flood so
//! every request reaches the auth middleware) runs on its own 2-worker runtime against
//! in-process fake-entra and fake-graph. A valid client (Adele, on its own thread) calls
//! `get_me` back to back: first alone (baseline), then while `--flood` tasks send
//! `Authorization: Bearer x` as fast as the connector answers, all from 127.0.0.1 like the
//! valid client (the harder case: the flood's address is the valid caller's). After the
//! flood the connector shuts down, which closes the aggregation windows, and the log is read
//! back: the counts of `token_refused` records must add up to the refused requests, every
//! successful `get_me` must have its `tool_call` record, and the chain must verify.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use connector::{
    policy::{Policy, PolicyStore},
    server::{Application, Dependencies},
    testing::SettingsBuilder,
};
use fake_entra::FakeEntra;
use fake_graph::FakeGraph;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// TEST-ONLY: the connector's fixture secret (fixtures/tenants/apps.toml).
const CONNECTOR_SECRET: &str = "TEST-ONLY-connector-secret-not-for-production-7Qm2~xV9";

struct Args {
    flood: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args { flood: 2000, seconds: 15 };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        match pair[0].as_str() {
            "--flood" => a.flood = pair[1].parse().unwrap_or(a.flood),
            "--seconds" => a.seconds = pair[1].parse().unwrap_or(a.seconds),
            _ => {}
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn get_me_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_me", "arguments": {}}})
    .to_string()
}

/// Calls `get_me` back to back on its own thread until `stop`; returns the latencies of the
/// calls that succeeded and the number that did not.
fn valid_client(url: String, token: String, stop: Arc<AtomicBool>) -> (Vec<Duration>, u64) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let mut latencies = Vec::new();
        let mut failed = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let response = http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2025-06-18")
                .bearer_auth(&token)
                .body(get_me_body())
                .send()
                .await;
            let ok = match response {
                Ok(r) if r.status() == 200 => r.json::<Value>().await.is_ok_and(|v| {
                    v["result"]["isError"] != json!(true) && v["result"].is_object()
                }),
                _ => false,
            };
            if ok {
                latencies.push(started.elapsed());
            } else {
                failed += 1;
            }
        }
        (latencies, failed)
    })
}

/// Runs the valid client for `seconds` on its own thread.
fn measure(url: &str, token: &str, seconds: u64) -> (Vec<Duration>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (url, token, stop) = (url.to_owned(), token.to_owned(), stop.clone());
        std::thread::spawn(move || valid_client(url, token, stop))
    };
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, failed) = handle.join().expect("valid client");
    latencies.sort_unstable();
    (latencies, failed)
}

fn audit_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().to_string_lossy().ends_with(".jsonl"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn audit_records(dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("audit dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn main() {
    let args = args();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fakes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("fakes runtime");
    let (entra, graph) = fakes.block_on(async {
        let world = fixtures::standard_world();
        let clock = fixtures::Clock::system();
        let entra = FakeEntra::builder()
            .world(world.clone())
            .clock(clock.clone())
            .start()
            .await
            .expect("fake-entra starts");
        let graph = FakeGraph::builder()
            .world(world)
            .entra(&entra.uri())
            .clock(clock)
            .start()
            .await
            .expect("fake-graph starts");
        (entra, graph)
    });

    let dir = std::env::temp_dir().join(format!("m365-audit-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let contoso = entra.tenant_id("contoso").expect("contoso");
    let policy_text = format!("[[tenants]]\nid = \"{contoso}\"\nname = \"contoso\"\n");
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, &policy_text).expect("policy");
    let settings = SettingsBuilder::new(addr)
        .entra(&entra.uri(), entra.connector_id(), CONNECTOR_SECRET)
        .graph(&format!("{}/v1.0", graph.uri()))
        .cache_key([7; 32])
        .policy(&policy_path, 2)
        .audit(&dir.join("audit.jsonl"), true)
        .max_in_flight(args.flood + 64)
        .per_caller_rate(60_000, 10_000)
        .shutdown_grace_secs(5)
        .settings()
        .expect("valid settings");
    let interval = settings.audit.refusal_interval;
    let budget = settings.audit.refusals_per_peer;

    // The connector on its own runtime, as in production.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let stop = CancellationToken::new();
    let stopped = {
        let policy = Arc::new(PolicyStore::fixed(
            Policy::parse(&policy_text, &policy_path).expect("policy"),
        ));
        let deps = Dependencies {
            listener: Some(listener),
            policy: Some(policy),
            ..Dependencies::default()
        };
        let app = server.block_on(Application::build(settings, deps)).expect("app builds");
        let signal = stop.clone();
        server.spawn(app.run_until_stopped(async move { signal.cancelled().await }))
    };

    let url = format!("http://{addr}/mcp");
    let (tid, oid) = entra.persona("adele@contoso.com").expect("adele");
    let token = entra.user_token(tid, oid);

    // Warm-up: the token verifies, the OBO exchange happens, the cache is hot.
    let (warm, warm_failed) = measure(&url, &token, 1);
    assert!(!warm.is_empty() && warm_failed == 0, "the valid client cannot call get_me");

    println!("Audit load test: {} flood tasks, {} s per phase", args.flood, args.seconds);
    let (alone, alone_failed) = measure(&url, &token, args.seconds);
    let bytes_before = audit_bytes(&dir);

    // The flood, on its own runtime.
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("load runtime");
    let flood_stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<[AtomicU64; 4]> = Arc::new(Default::default()); // 401, 429, other, error
    let flood_tasks: Vec<_> = {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(args.flood)
            .build()
            .expect("flood client");
        (0..args.flood)
            .map(|_| {
                let (http, url, stop, statuses) =
                    (http.clone(), url.clone(), flood_stop.clone(), statuses.clone());
                load.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let response = http
                            .post(&url)
                            .header("accept", "application/json, text/event-stream")
                            .header("content-type", "application/json")
                            .header("authorization", "Bearer x")
                            .body(get_me_body())
                            .send()
                            .await;
                        let slot = match response.map(|r| r.status().as_u16()) {
                            Ok(401) => 0,
                            Ok(429) => 1,
                            Ok(_) => 2,
                            Err(_) => 3,
                        };
                        statuses[slot].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect()
    };
    let flood_started = Instant::now();
    let (flooded, flooded_failed) = measure(&url, &token, args.seconds);
    flood_stop.store(true, Ordering::Relaxed);
    load.block_on(async {
        for t in flood_tasks {
            let _ = t.await;
        }
    });
    let flood_elapsed = flood_started.elapsed();
    let bytes_after_flood = audit_bytes(&dir);
    let during: Vec<Value> = audit_records(&dir);
    let refusal_records_during = during.iter().filter(|r| r["event"] == "token_refused").count();
    // Records are compact JSON with sorted keys: re-serializing gives the line back.
    let refusal_bytes_during: usize = during
        .iter()
        .filter(|r| r["event"] == "token_refused")
        .map(|r| r.to_string().len() + 1)
        .sum();

    // Shut down: the aggregation windows close and their counts are written.
    stop.cancel();
    let _ = server.block_on(stopped);
    let records = audit_records(&dir);
    let refused_counted: u64 = records
        .iter()
        .filter(|r| r["event"] == "token_refused")
        .filter_map(|r| r["count"].as_u64())
        .sum();
    let refusal_records = records.iter().filter(|r| r["event"] == "token_refused").count();
    let tool_calls = records.iter().filter(|r| r["event"] == "tool_call").count();
    let verdict = connector::audit::verify(&dir, None).expect("audit readable");

    let [r401, r429, other, errors] = [0, 1, 2, 3].map(|i| statuses[i].load(Ordering::Relaxed));
    let flood_total = r401 + r429 + other + errors;
    let calls_ok = warm.len() + alone.len() + flooded.len();
    println!();
    println!("| phase | get_me calls | failed | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for (name, l, failed) in
        [("alone", &alone, alone_failed), ("during the flood", &flooded, flooded_failed)]
    {
        println!(
            "| {name} | {} | {failed} | {} | {} | {} |",
            l.len(),
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99)),
            ms(l.last().copied().unwrap_or_default())
        );
    }
    println!();
    println!(
        "Flood: {flood_total} requests in {:.1} s ({:.0}/s): {r401} × 401, {r429} × 429, {other} other, {errors} transport errors",
        flood_elapsed.as_secs_f64(),
        flood_total as f64 / flood_elapsed.as_secs_f64()
    );
    println!(
        "Audit log: {} bytes before the flood, {} after it (+{} bytes, of which {refusal_bytes_during} bytes in {refusal_records_during} token_refused records, the rest the valid client's tool_call records); {refusal_records} token_refused records after shutdown (budget: one per (peer, reason) per {} s, {budget} refusals per peer per window before 429)",
        bytes_before,
        bytes_after_flood,
        bytes_after_flood.saturating_sub(bytes_before),
        interval.as_secs()
    );
    println!(
        "Nothing lost: token_refused counts add up to {refused_counted} of {} refused requests; {tool_calls} tool_call records for {calls_ok} successful get_me calls; verify: {verdict:?}",
        r401 + r429
    );
    let p99 = percentile(&flooded, 0.99);
    let lost = refused_counted != r401 + r429 || tool_calls < calls_ok;
    println!(
        "Verdict: p99 during the flood {} (< 1 s: {}), nothing lost: {}",
        ms(p99),
        if p99 < Duration::from_secs(1) { "yes" } else { "NO" },
        if lost { "NO" } else { "yes" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(graph);
    drop(entra);
    if lost || p99 >= Duration::from_secs(1) {
        std::process::exit(1);
    }
}
