//! Throughput of fake-graph on this machine: requests/s for `GET /me/messages?$top=25` and the
//! latency of `/search/query` for every Outlook/Teams/files entity type: a 100,000-message
//! generated mailbox, a OneDrive with 55,000 extra text files, 5,000 extra events and 21,000
//! extra chat messages (the m365-bench world's size). Also prints the heap size of the search
//! indexes. Run: `cargo bench -p fake-graph`.
//!
//! The GET load comes from a minimal HTTP/1.1 keep-alive client (one connection per task, no
//! pool, no TLS) so that the client's own cost stays small next to the server's. It is measured
//! twice: with the server in this process (one runtime for both), and with the server in a child
//! process (this executable re-run with `FAKE_GRAPH_BENCH_ROLE=server`). For the child the bench
//! also reads the server's CPU time from `/proc`, so it can report requests per server CPU-second:
//! the server's capacity independent of how many cores the client took.
//!
//! Environment: `FAKE_GRAPH_BENCH_SECS` (GET phase length, default 5), `FAKE_GRAPH_BENCH_TASKS`
//! (concurrent connections, default 16), `FAKE_GRAPH_BENCH_ONLY=get|search` (skip the rest).

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use fake_graph::{CaeSync, FakeGraph};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader},
    net::TcpStream,
};

const MESSAGES: usize = 100_000;
/// Text files added to the mailbox owner's OneDrive for the driveItem search phase.
const DRIVE_ITEMS: usize = 55_000;
/// Events added to the mailbox owner's calendar for the event search phase.
const EVENTS: usize = 5_000;
/// Messages added, round-robin, to the chats of the mailbox owner for the chatMessage phase.
const CHAT_MESSAGES: usize = 21_000;
const ROLE_ENV: &str = "FAKE_GRAPH_BENCH_ROLE";
const WORDS: &[&str] = &[
    "budget",
    "roadmap",
    "falcon",
    "invoice",
    "hiring",
    "contract",
    "forecast",
    "launch",
    "review",
    "offsite",
    "pricing",
    "security",
    "migration",
    "quarterly",
    "design",
    "customer",
    "renewal",
    "training",
    "benefits",
    "audit",
];
const GET_PATH: &str = "/v1.0/me/messages?$top=25&$select=id,subject,from,receivedDateTime";

fn big_world() -> (Arc<fixtures::World>, uuid::Uuid, uuid::Uuid) {
    let mut world = (*fixtures::standard_world()).clone();
    let tenant = world.tenants.iter_mut().find(|t| t.name == "contoso").expect("contoso");
    let owner = tenant.users.iter().find(|u| u.upn.starts_with("adele@")).expect("adele").oid;
    let tid = tenant.id;
    let mb = tenant.content.mailboxes.iter_mut().find(|m| m.owner == owner).expect("mailbox");
    let template = mb.messages[0].clone();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    mb.messages = (0..MESSAGES)
        .map(|i| {
            let mut m = template.clone();
            m.id = format!("AAMkBench{i:08}=");
            m.immutable_id = format!("AAkALgBench{i:08}=");
            let w = |n: u64| WORDS[(n % WORDS.len() as u64) as usize];
            m.subject = format!("{} {} {i}", w(next()), w(next()));
            m.body = format!(
                "Please look at the {} and the {} before the {} meeting. Ref {i}.",
                w(next()),
                w(next()),
                w(next())
            );
            m.received -= chrono::Duration::minutes(i as i64);
            m.sent = m.received;
            m
        })
        .collect();
    let drive = tenant
        .content
        .drives
        .iter_mut()
        .find(|d| d.owner == Some(owner) && d.drive_type == fixtures::DriveType::Business)
        .expect("onedrive");
    let root = drive.items.iter().find(|i| i.parent_id.is_none()).expect("root").id.clone();
    let file = drive
        .items
        .iter()
        .find(|i| i.mime_type.as_deref().is_some_and(|m| m.starts_with("text/")))
        .expect("a text file")
        .clone();
    for i in 0..DRIVE_ITEMS {
        let mut it = file.clone();
        let w = |n: u64| WORDS[(n % WORDS.len() as u64) as usize];
        it.id = format!("01BENCH{i:08}");
        it.name = format!("{} {} notes {i}.txt", w(next()), w(next()));
        it.parent_id = Some(root.clone());
        it.bytes = Some(
            format!(
                "Notes on the {} and the {} for the {} plan. Ref {i}.",
                w(next()),
                w(next()),
                w(next())
            )
            .into_bytes(),
        );
        drive.items.push(it);
    }
    let w = |n: u64| WORDS[(n % WORDS.len() as u64) as usize];
    let calendar =
        tenant.content.calendars.iter_mut().find(|c| c.owner == owner).expect("calendar");
    let template = calendar.events[0].clone();
    for i in 0..EVENTS {
        let mut e = template.clone();
        e.id = format!("AAMkEvent{i:08}=");
        e.subject = format!("{} {} sync {i}", w(next()), w(next()));
        e.body_preview = format!("Agenda: the {} and the {}.", w(next()), w(next()));
        e.start -= chrono::Duration::hours(i as i64);
        e.end -= chrono::Duration::hours(i as i64);
        calendar.events.push(e);
    }
    let mut chats: Vec<&mut fixtures::Chat> =
        tenant.content.chats.iter_mut().filter(|c| c.members.contains(&owner)).collect();
    let template = chats[0].messages[0].clone();
    let n = chats.len();
    for i in 0..CHAT_MESSAGES {
        let mut m = template.clone();
        m.id = format!("{}", 1_600_000_000_000u64 + i as u64);
        m.body = format!("<p>Can we talk about the {} and the {}? ({i})</p>", w(next()), w(next()));
        m.created -= chrono::Duration::minutes(i as i64);
        chats[i % n].messages.push(m);
    }
    (Arc::new(world), tid, owner)
}

/// fake-entra and fake-graph serving the big world, with a Mail.Read token for its owner.
struct Served {
    _entra: fake_entra::FakeEntra,
    graph: FakeGraph,
    token: String,
}

async fn serve() -> Served {
    let built = Instant::now();
    let (world, tid, oid) = big_world();
    let index_bytes = fake_graph::search_index_bytes(&world);
    eprintln!(
        "search indexes (text + postings, every tenant): {:.1} MiB",
        index_bytes as f64 / 1048576.0
    );
    let entra = fake_entra::FakeEntra::builder()
        .world(world.clone())
        .start()
        .await
        .expect("fake-entra starts");
    let graph = FakeGraph::builder()
        .world(world)
        .entra(&entra.uri())
        .cae_sync(CaeSync::Background(Duration::from_secs(1)))
        .mailbox_concurrency(0)
        .start()
        .await
        .expect("start");
    eprintln!("world with {MESSAGES} messages indexed and served in {:?}", built.elapsed());
    let token = entra.graph_token(
        tid,
        oid,
        &["User.Read", "Mail.Read", "Files.Read.All", "Calendars.Read", "Chat.Read"],
        false,
    );
    Served { _entra: entra, graph, token }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// User + system CPU seconds of a process so far (Linux `/proc/{pid}/stat`).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One keep-alive HTTP/1.1 connection sending the same GET; returns the responses read.
async fn get_loop(addr: SocketAddr, request: Arc<Vec<u8>>, deadline: Instant) -> u64 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (rd, mut wr) = stream.into_split();
    let mut rd = TokioBufReader::with_capacity(64 * 1024, rd);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut n = 0;
    while Instant::now() < deadline {
        wr.write_all(&request).await.expect("write");
        line.clear();
        rd.read_line(&mut line).await.expect("status line");
        assert!(line.starts_with("HTTP/1.1 200"), "unexpected status: {line}");
        let mut length = None;
        loop {
            line.clear();
            rd.read_line(&mut line).await.expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.expect("the server sends Content-Length for JSON bodies");
        body.resize(length, 0);
        rd.read_exact(&mut body).await.expect("body");
        n += 1;
    }
    n
}

/// Drives `tasks` keep-alive connections for `secs`; returns (requests, elapsed seconds).
async fn get_load(addr: SocketAddr, token: &str, tasks: u64, secs: u64) -> (u64, f64) {
    let request = Arc::new(
        format!(
            "GET {GET_PATH} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: application/json\r\n\r\n"
        )
        .into_bytes(),
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> =
        (0..tasks).map(|_| tokio::spawn(get_loop(addr, request.clone(), deadline))).collect();
    let mut total = 0;
    for h in handles {
        total += h.await.expect("task");
    }
    (total, start.elapsed().as_secs_f64())
}

/// `n` two-term `/search/query` requests for `entity`; prints p50/p95.
async fn search_phase(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    entity: &str,
    n: usize,
    what: &str,
) {
    let mut lat = Vec::new();
    for i in 0..n {
        let q = format!("{} {}", WORDS[i % WORDS.len()], WORDS[(i * 7 + 3) % WORDS.len()]);
        let body = serde_json::json!({"requests":[{"entityTypes":[entity],"query":{"queryString": q},"from":0,"size":25}]});
        let t0 = Instant::now();
        let r = client.post(url).bearer_auth(token).json(&body).send().await.expect("send");
        assert!(r.status().is_success(), "{entity} search failed: {}", r.status());
        let _ = r.bytes().await.expect("body");
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "POST /search/query ({entity}, 2 terms, {what}): p50 {:?}, p95 {:?} (load average {})",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        load_average()
    );
}

async fn searches(base: &str, token: &str) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let url = format!("{base}/v1.0/search/query");
    let files = format!("{DRIVE_ITEMS} extra OneDrive files");
    search_phase(&client, &url, token, "driveItem", 100, &files).await;
    search_phase(&client, &url, token, "message", 200, "100k mailbox").await;
    let events = format!("{EVENTS} extra events");
    search_phase(&client, &url, token, "event", 200, &events).await;
    let chats = format!("{CHAT_MESSAGES} extra chat messages");
    search_phase(&client, &url, token, "chatMessage", 200, &chats).await;
    let mut lat = Vec::new();
    for i in 0..100 {
        let u = format!("{base}/v1.0/me/messages?$search=\"{}\"&$top=25", WORDS[i % WORDS.len()]);
        let t0 = Instant::now();
        let r = client.get(&u).bearer_auth(token).send().await.expect("send");
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "GET /me/messages?$search (1 term, 100k mailbox): p50 {:?}, p95 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95)
    );
}

/// Child role: serve, print `READY <addr> <token>`, stop when stdin closes.
fn run_server() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let served = serve().await;
        println!("READY {} {}", served.graph.address(), served.token);
        std::io::stdout().flush().expect("flush");
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
        })
        .await
        .expect("stdin watcher");
    });
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("server") {
        return run_server();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env_num("FAKE_GRAPH_BENCH_SECS", 5);
    let tasks = env_num("FAKE_GRAPH_BENCH_TASKS", 16);
    let only = std::env::var("FAKE_GRAPH_BENCH_ONLY").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("load average before: {}", load_average());

    // 1. Server and load generator in one process (one runtime, two cores).
    rt.block_on(async {
        let served = serve().await;
        if only != "search" {
            let (n, s) = get_load(served.graph.address(), &served.token, tasks, secs).await;
            println!(
                "in-process  GET /me/messages?$top=25: {n} requests in {s:.1} s = {:.0} requests/s \
                 ({tasks} keep-alive connections; load average {})",
                n as f64 / s,
                load_average()
            );
        }
        if only != "get" {
            searches(&served.graph.uri(), &served.token).await;
        }
    });
    if only == "search" {
        return;
    }

    // 2. Server in a child process; this process only generates load.
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(ROLE_ENV, "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server process");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("child stdout"))
        .read_line(&mut ready)
        .expect("READY line");
    let mut parts = ready.split_whitespace();
    assert_eq!(parts.next(), Some("READY"), "server did not start: {ready}");
    let addr: SocketAddr = parts.next().expect("addr").parse().expect("socket address");
    let token = parts.next().expect("token").to_owned();
    let pid = child.id().to_string();
    let self_pid = std::process::id().to_string();
    let (cpu0, own0) = (cpu_seconds(&pid), cpu_seconds(&self_pid));
    let (n, s) = rt.block_on(get_load(addr, &token, tasks, secs));
    let (cpu1, own1) = (cpu_seconds(&pid), cpu_seconds(&self_pid));
    println!(
        "two-process GET /me/messages?$top=25: {n} requests in {s:.1} s = {:.0} requests/s \
         ({tasks} keep-alive connections; load average {})",
        n as f64 / s,
        load_average()
    );
    if let (Some(a), Some(b), Some(c), Some(d)) = (cpu0, cpu1, own0, own1) {
        let server = b - a;
        println!(
            "  server used {server:.2} CPU-s ({:.0} µs/request = {:.0} requests per server CPU-second), \
             load generator {:.2} CPU-s",
            server * 1e6 / n as f64,
            n as f64 / server.max(0.01),
            d - c
        );
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
