//! Throughput of fake-graph on this machine: requests/s for `GET /me/messages?$top=25` and the
//! latency of searches over a 100,000-message generated mailbox. Run: `cargo bench -p fake-graph`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fake_graph::{CaeSync, FakeGraph};

const MESSAGES: usize = 100_000;
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
    (Arc::new(world), tid, owner)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = Instant::now();
        let (world, tid, oid) = big_world();
        let entra = fake_entra::FakeEntra::builder().world(world.clone()).start().await;
        let graph = FakeGraph::builder().world(world).entra(&entra.uri()).cae_sync(CaeSync::Off).start().await.expect("start");
        println!("world with {MESSAGES} messages indexed and served in {:?}", built.elapsed());
        let token = entra.graph_token(tid, oid, &["User.Read", "Mail.Read"], false);
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let url = format!("{}/v1.0/me/messages?$top=25&$select=id,subject,from,receivedDateTime", graph.uri());
        graph.set_mailbox_concurrency(0);

        // Simple GETs: 16 concurrent clients for 5 seconds.
        let deadline = Instant::now() + Duration::from_secs(5);
        let start = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let r = client.get(&url).bearer_auth(&token).send().await.expect("send");
                        assert!(r.status().is_success());
                        let _ = r.bytes().await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        let secs = start.elapsed().as_secs_f64();
        println!("GET /me/messages?$top=25: {total} requests in {secs:.1} s = {:.0} requests/s (client and server share 2 cores)", total as f64 / secs);

        // Searches, one at a time.
        let search_url = format!("{}/v1.0/search/query", graph.uri());
        let mut lat = Vec::new();
        for i in 0..200 {
            let q = format!("{} {}", WORDS[i % WORDS.len()], WORDS[(i * 7 + 3) % WORDS.len()]);
            let body = serde_json::json!({"requests":[{"entityTypes":["message"],"query":{"queryString": q},"from":0,"size":25}]});
            let t0 = Instant::now();
            let r = client.post(&search_url).bearer_auth(&token).json(&body).send().await.expect("send");
            assert!(r.status().is_success());
            let _ = r.bytes().await;
            lat.push(t0.elapsed());
        }
        lat.sort();
        println!("POST /search/query (message, 2 terms, 100k mailbox): p50 {:?}, p95 {:?}", percentile(&lat, 0.5), percentile(&lat, 0.95));
        let mut lat = Vec::new();
        for i in 0..100 {
            let u = format!("{}/v1.0/me/messages?$search=\"{}\"&$top=25", graph.uri(), WORDS[i % WORDS.len()]);
            let t0 = Instant::now();
            let r = client.get(&u).bearer_auth(&token).send().await.expect("send");
            assert!(r.status().is_success());
            let _ = r.bytes().await;
            lat.push(t0.elapsed());
        }
        lat.sort();
        println!("GET /me/messages?$search (1 term, 100k mailbox): p50 {:?}, p95 {:?}", percentile(&lat, 0.5), percentile(&lat, 0.95));
    });
}
