//! Criterion micro-benchmarks of the scale-out paths (issue 12), against a real
//! `redis-server` started on a random loopback port (no persistence).
//!
//! Run: `cargo bench -p connector --bench shared -- --warm-up-time 1 --measurement-time 3`.
//!
//! * `shared/l1_hit`: a sealed blob served by the tiered cache from process memory.
//! * `shared/l2_hit`: the same blob from Redis (an L1 of capacity 0 never keeps it): the
//!   extra cost an instance pays for an entry another instance wrote.
//! * `shared/rate_check`: the GCRA script (per user, with the epoch) on one round trip.
//!
//! Each set-up checks the path it times really is the one named (a hit, an admitted call).

use std::{
    hint::black_box,
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use connector::{
    domain::{AssertionHash, ObjectId, ScopeSet, TenantId},
    metrics::Metrics,
    obo::{CacheKeys, TokenCache, TokenCacheKey},
    shared::{Budget, RedisConfig, SharedStore, tiered::TieredTokenCache},
};
use criterion::{Criterion, criterion_group, criterion_main};

struct RedisServer(Child, std::path::PathBuf);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_redis() -> (RedisServer, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("m365-redis-bench-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..200 {
        if redis::Client::open(url.as_str()).and_then(|c| c.get_connection()).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    (RedisServer(child, dir), url)
}

fn shared(c: &mut Criterion) {
    let (_server, url) = start_redis();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let mut config = RedisConfig::new(url);
    config.op_timeout = Duration::from_secs(1);
    let store = SharedStore::new(config, CacheKeys::ephemeral(), Arc::new(Metrics::new())).unwrap();
    let l1 = TieredTokenCache::new(store.clone(), 1000);
    let l2_only = TieredTokenCache::new(store.clone(), 0);
    let key = TokenCacheKey {
        tenant: TenantId::from(uuid::Uuid::from_u128(1)),
        user: ObjectId::from(uuid::Uuid::from_u128(2)),
        assertion: AssertionHash::from_bytes([7; 32]),
        scopes: ScopeSet::from_scp("Mail.Read User.Read"),
    };
    let blob = vec![0x5a; 2500]; // about the size of a sealed Graph token
    rt.block_on(l1.put(&key, blob.clone(), Duration::from_secs(600)));
    assert_eq!(rt.block_on(l1.get(&key)).as_deref(), Some(&blob[..]), "L1 miss");
    rt.block_on(async {
        // moka may admit the entry into a capacity-0 cache briefly; the epoch read settles too.
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert_eq!(rt.block_on(l2_only.get(&key)).as_deref(), Some(&blob[..]), "L2 miss");

    let mut group = c.benchmark_group("shared");
    group.bench_function("l1_hit", |b| b.iter(|| rt.block_on(black_box(&l1).get(&key))));
    group.bench_function("l2_hit", |b| b.iter(|| rt.block_on(black_box(&l2_only).get(&key))));
    let budget = Budget { per_minute: 60_000_000, burst: 1_000_000 };
    let (t, u) = (key.tenant, key.user);
    assert_eq!(rt.block_on(store.rate_check(t, u, budget)), Some(Ok(())), "not admitted");
    group.bench_function("rate_check", |b| {
        b.iter(|| rt.block_on(store.rate_check(t, u, black_box(budget))))
    });
    group.finish();
}

criterion_group!(benches, shared);
criterion_main!(benches);
