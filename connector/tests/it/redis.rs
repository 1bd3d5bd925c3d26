//! Scale-out through a real `redis-server` (Debian package; `.ci/run` installs it): the L2
//! token cache, the cross-instance exchange lock, tenant epochs, the shared rate limit, and
//! what Redis holds. Each "instance" is its own `TokenProvider` + `SharedStore`, as two
//! processes would have; only Redis and the cache keys are shared.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use connector::{
    auth::rate_limit::RateLimiter,
    clock::Clock,
    domain::{Caller, ObjectId, ScopeSet, TenantId, UserAssertion},
    metrics::{Metrics, names},
    obo::{
        CacheKeys, ClientCredential, EncryptionKey, OboSettings, TokenCache, TokenCacheKey,
        TokenProvider,
    },
    shared::{REDIS_ERRORS, RedisConfig, SharedStore, tiered::TieredTokenCache},
};
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_string_contains, method},
};

/// A `redis-server` on a random loopback port with its own temporary directory and no
/// persistence; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Extra `redis-server` arguments (e.g. `--requirepass`).
    args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("m365-redis-it-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let mut server = Self { child: None, port, dir, args };
        server.restart();
        server
    }

    /// Starts the server (again) on the same port; waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install -y redis-server)");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(_) => return,
                    // Up, and asking for the password it was started with.
                    Err(e) if !e.is_io_error() => return,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on port {}", self.port);
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

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// Every key with its value (string keys only hold values the connector wrote).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        keys.into_iter()
            .map(|k| {
                let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap_or_default();
                (k, v)
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TID: &str = "0c8a3b7e-6f4a-4b8e-9d2c-1a2b3c4d5e6f";
const OID: &str = "00000000-0000-0000-0000-0000000000a1";

fn caller_of(tid: &str, oid: &str, assertion: &str) -> Caller {
    Caller {
        tenant_id: TenantId::parse(tid).unwrap(),
        object_id: ObjectId::parse(oid).unwrap(),
        client_id: Uuid::nil(),
        scopes: ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        assertion: UserAssertion::new(assertion.into()),
    }
}

fn keys() -> CacheKeys {
    CacheKeys::new(EncryptionKey::new("shared", [42; 32]).unwrap(), vec![]).unwrap()
}

/// One connector instance's view: its own store (connection, breaker, epoch cache) and
/// provider with a fresh L1.
struct Instance {
    store: SharedStore,
    cache: Arc<TieredTokenCache>,
    provider: TokenProvider,
    metrics: Arc<Metrics>,
}

fn config(redis: &RedisServer) -> RedisConfig {
    let mut config = RedisConfig::new(redis.url());
    config.breaker_cooldown = Duration::from_millis(200);
    config.lock_wait = Duration::from_secs(5);
    config
}

fn instance(entra: &MockServer, config: RedisConfig) -> Instance {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::new());
    let store = SharedStore::new(config, keys(), metrics.clone()).unwrap();
    let cache = Arc::new(TieredTokenCache::new(store.clone(), 1000));
    let mut settings = OboSettings::new(
        Url::parse(&entra.uri()).unwrap(),
        Uuid::from_u128(7),
        ClientCredential::Secret(SecretString::from("test-only-secret".to_owned())),
    );
    settings.cache_keys = keys();
    let http = reqwest::Client::builder().build().unwrap();
    let provider = TokenProvider::new(settings, http, Clock::system(), metrics.clone())
        .with_cache(cache.clone());
    Instance { store, cache, provider, metrics }
}

/// Answers every exchange with a token naming the assertion it was asked for.
async fn entra_minting(delay: Duration, assertions: &[&str]) -> MockServer {
    let entra = MockServer::start().await;
    for assertion in assertions {
        Mock::given(method("POST"))
            .and(body_string_contains(format!("assertion={assertion}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_delay(delay)
                    .set_body_json(serde_json::json!({
                        "token_type": "Bearer", "scope": "https://graph.microsoft.com/Mail.Read",
                        "expires_in": 3599, "access_token": format!("graph-token-for-{assertion}")})),
            )
            .mount(&entra)
            .await;
    }
    entra
}

async fn exchanges(entra: &MockServer) -> usize {
    entra.received_requests().await.map_or(0, |r| r.len())
}

fn mail() -> ScopeSet {
    ScopeSet::from_scp("Mail.Read")
}

#[tokio::test]
async fn a_second_instance_is_served_from_l2_without_an_exchange() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &["alice-signin"]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    let alice = caller_of(TID, OID, "alice-signin");

    let first = a.provider.graph_token(&alice, &mail(), None).await.unwrap();
    let second = b.provider.graph_token(&alice, &mail(), None).await.unwrap();

    assert_eq!(first.expose(), "graph-token-for-alice-signin");
    assert_eq!(second.expose(), first.expose());
    assert_eq!(exchanges(&entra).await, 1);
    assert_eq!(b.metrics.counter(names::OBO_CACHE_HITS, &[]), 1);
    // The L2 entry lives no longer than the entry may be used (max reuse: 300 s).
    let mut c = redis.connection();
    let (name, _) = redis.dump().into_iter().find(|(k, _)| k.starts_with("m365:tok:")).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&name).query(&mut c).unwrap();
    assert!(ttl > 290_000 && ttl <= 300_000, "{ttl}");
}

#[tokio::test]
async fn concurrent_first_calls_on_two_instances_exchange_once() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::from_millis(300), &["alice-signin"]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    let alice = caller_of(TID, OID, "alice-signin");

    let mut calls = Vec::new();
    for i in 0..20 {
        let p = if i % 2 == 0 { a.provider.clone() } else { b.provider.clone() };
        let caller = alice.clone();
        calls.push(tokio::spawn(async move { p.graph_token(&caller, &mail(), None).await }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().expose(), "graph-token-for-alice-signin");
    }

    assert_eq!(exchanges(&entra).await, 1);
    // The lock was released (compare-and-delete), not left to expire.
    assert!(redis.dump().iter().all(|(k, _)| !k.starts_with("m365:lock:")));
}

#[tokio::test]
async fn disabling_a_tenant_on_one_instance_makes_the_others_entries_misses() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &["alice-signin"]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    let alice = caller_of(TID, OID, "alice-signin");
    a.provider.graph_token(&alice, &mail(), None).await.unwrap();
    b.provider.graph_token(&alice, &mail(), None).await.unwrap(); // L2 hit, now in b's L1
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    b.store.on_epoch_change(move |t| {
        sink.lock().unwrap().push(t);
        async {}
    });

    a.provider.purge_tenant(alice.tenant_id);
    for _ in 0..100 {
        if a.store.epoch(alice.tenant_id).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // b trusts the epoch it read for at most one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    b.provider.graph_token(&alice, &mail(), None).await.unwrap();

    assert_eq!(exchanges(&entra).await, 2, "b's L1 entry of the old epoch was used");
    assert_eq!(*seen.lock().unwrap(), vec![alice.tenant_id]);
}

#[tokio::test]
async fn the_rate_check_carries_the_epoch_so_a_bump_is_seen_on_the_next_call() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &[]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    let tenant = TenantId::parse(TID).unwrap();
    let limiter = RateLimiter::new(600, 100).with_shared(Some(b.store.clone()));
    assert_eq!(b.store.epoch(tenant).await, 0);

    a.store.bump_epoch(tenant).await.unwrap();
    limiter.check(tenant, ObjectId::parse(OID).unwrap()).await.unwrap();

    // Within the one-second trust window, yet b already knows the new epoch.
    assert_eq!(b.store.epoch(tenant).await, 1);
}

#[tokio::test]
async fn the_per_user_budget_holds_across_instances() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &[]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    // 6 per minute (one per 10 s), burst 4: nothing refills during the test.
    let limiters = [
        RateLimiter::new(6, 4).with_shared(Some(a.store.clone())),
        RateLimiter::new(6, 4).with_shared(Some(b.store.clone())),
    ];
    let (t, u) = (TenantId::parse(TID).unwrap(), ObjectId::parse(OID).unwrap());
    let mut admitted = 0;
    let mut waits = Vec::new();
    for i in 0..20 {
        match limiters[i % 2].check(t, u).await {
            Ok(()) => admitted += 1,
            Err(wait) => waits.push(wait),
        }
    }
    assert_eq!(admitted, 4, "the two instances together admitted more than the burst");
    assert!(waits.iter().all(|w| *w > Duration::ZERO && *w <= Duration::from_secs(10)));
    // Another user is unaffected.
    assert!(limiters[0].check(t, ObjectId::parse(OTHER_TID).unwrap()).await.is_ok());
}

#[tokio::test]
async fn the_tenant_budget_holds_across_users_and_instances() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &[]).await;
    let mut with_tenant_budget = config(&redis);
    with_tenant_budget.tenant_rate = Some((6, 3));
    let (a, b) =
        (instance(&entra, with_tenant_budget.clone()), instance(&entra, with_tenant_budget));
    let limiters = [
        RateLimiter::new(600, 100).with_shared(Some(a.store.clone())),
        RateLimiter::new(600, 100).with_shared(Some(b.store.clone())),
    ];
    let t = TenantId::parse(TID).unwrap();
    let mut admitted = 0;
    for i in 0..10u128 {
        let user = ObjectId::from(Uuid::from_u128(i + 1));
        if limiters[(i % 2) as usize].check(t, user).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
}

#[tokio::test]
async fn redis_holds_only_sealed_blobs_under_names_that_name_no_one() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &["alice-signin", "bob-signin"]).await;
    let a = instance(&entra, config(&redis));
    let alice = caller_of(TID, OID, "alice-signin");
    let bob = caller_of(OTHER_TID, "00000000-0000-0000-0000-0000000000b2", "bob-signin");
    a.provider.graph_token(&alice, &mail(), None).await.unwrap();
    a.provider.graph_token(&bob, &mail(), None).await.unwrap();
    RateLimiter::new(60, 5)
        .with_shared(Some(a.store.clone()))
        .check(alice.tenant_id, alice.object_id)
        .await
        .unwrap();
    a.provider.purge_tenant(bob.tenant_id); // an epoch key too
    tokio::time::sleep(Duration::from_millis(100)).await;

    let dump = redis.dump();
    assert!(dump.len() >= 4, "{:?}", dump.iter().map(|(k, _)| k).collect::<Vec<_>>());
    let wrong_key =
        CacheKeys::new(EncryptionKey::new("shared", [43; 32]).unwrap(), vec![]).unwrap();
    for (name, value) in &dump {
        for id in [TID, OTHER_TID, OID, "b2", "alice", "bob", "Mail"] {
            assert!(!name.to_lowercase().contains(&id.to_lowercase()), "{name} names {id}");
        }
        let text = String::from_utf8_lossy(value);
        assert!(!text.contains("graph-token"), "plaintext token under {name}");
        assert!(!text.contains(TID) && !text.contains(OID), "an id in the value of {name}");
        if name.starts_with("m365:tok:") {
            let key = TokenCacheKey::for_caller(&alice, mail());
            assert!(wrong_key.open(&key, value).is_err());
        }
    }
}

#[tokio::test]
async fn a_blob_copied_to_another_users_name_is_refused() {
    let redis = RedisServer::start();
    let entra = entra_minting(Duration::ZERO, &["alice-signin", "mallory-signin"]).await;
    let a = instance(&entra, config(&redis));
    let alice = caller_of(TID, OID, "alice-signin");
    let mallory = caller_of(TID, "00000000-0000-0000-0000-0000000000c3", "mallory-signin");
    a.provider.graph_token(&alice, &mail(), None).await.unwrap();
    let alice_name = a.cache.entry_name(&TokenCacheKey::for_caller(&alice, mail()), 0);
    let mallory_name = a.cache.entry_name(&TokenCacheKey::for_caller(&mallory, mail()), 0);
    let mut c = redis.connection();
    let blob: Vec<u8> = redis::cmd("GET").arg(&alice_name).query(&mut c).unwrap();
    let _: () =
        redis::cmd("SET").arg(&mallory_name).arg(blob).arg("EX").arg(300).query(&mut c).unwrap();

    let fresh = instance(&entra, config(&redis)); // empty L1: only L2 can answer
    let token = fresh.provider.graph_token(&mallory, &mail(), None).await.unwrap();

    assert_eq!(token.expose(), "graph-token-for-mallory-signin");
    assert_eq!(exchanges(&entra).await, 2);
}

#[tokio::test]
async fn the_same_oid_in_two_tenants_never_shares_an_entry() {
    let redis = RedisServer::start();
    // Even with an identical assertion hash, the tenant alone keeps the entries apart.
    let entra = entra_minting(Duration::ZERO, &["same-signin"]).await;
    let (a, b) = (instance(&entra, config(&redis)), instance(&entra, config(&redis)));
    let home = caller_of(TID, OID, "same-signin");
    let guest = caller_of(OTHER_TID, OID, "same-signin");

    a.provider.graph_token(&home, &mail(), None).await.unwrap();
    b.provider.graph_token(&guest, &mail(), None).await.unwrap();

    assert_eq!(exchanges(&entra).await, 2, "the guest tenant was served the home tenant's entry");
    let entries = redis.dump().into_iter().filter(|(k, _)| k.starts_with("m365:tok:")).count();
    assert_eq!(entries, 2);
}

#[tokio::test]
async fn redis_stopped_mid_run_fails_no_call_and_is_used_again_once_back() {
    let mut redis = RedisServer::start();
    let entra =
        entra_minting(Duration::ZERO, &["alice-signin", "bob-signin", "carol-signin"]).await;
    let a = instance(&entra, config(&redis));
    let alice = caller_of(TID, OID, "alice-signin");
    let bob = caller_of(TID, "00000000-0000-0000-0000-0000000000b2", "bob-signin");
    let limiter = RateLimiter::new(600, 100).with_shared(Some(a.store.clone()));
    a.provider.graph_token(&alice, &mail(), None).await.unwrap();

    redis.stop();
    for _ in 0..10 {
        a.provider.graph_token(&alice, &mail(), None).await.expect("served from L1");
        a.provider.graph_token(&bob, &mail(), None).await.expect("exchanged directly");
        limiter.check(alice.tenant_id, alice.object_id).await.expect("local limiter");
    }
    assert!(a.store.degraded());
    assert!(a.metrics.counter(REDIS_ERRORS, &[("op", "get")]) >= 1);
    assert_eq!(exchanges(&entra).await, 2, "alice from L1, bob exchanged once then L1");

    redis.restart();
    tokio::time::sleep(Duration::from_millis(300)).await; // the breaker's cool-down
    let carol = caller_of(TID, "00000000-0000-0000-0000-0000000000c3", "carol-signin");
    a.provider.graph_token(&carol, &mail(), None).await.unwrap();
    let fresh = instance(&entra, config(&redis));
    fresh.provider.graph_token(&carol, &mail(), None).await.unwrap();
    assert_eq!(exchanges(&entra).await, 3, "a wrote carol's entry to L2 again; fresh read it");
    assert!(!a.store.degraded());
}

#[tokio::test]
async fn an_unreachable_redis_at_start_only_degrades() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let entra = entra_minting(Duration::ZERO, &["alice-signin"]).await;
    let a = instance(&entra, RedisConfig::new(format!("redis://127.0.0.1:{port}")));
    let alice = caller_of(TID, OID, "alice-signin");
    for _ in 0..5 {
        a.provider.graph_token(&alice, &mail(), None).await.unwrap();
    }
    assert_eq!(exchanges(&entra).await, 1);
    assert!(a.store.degraded());
    assert!(a.cache.snapshot().len() == 1);
}

#[tokio::test]
async fn a_second_instance_does_not_retry_a_union_the_first_found_refused() {
    let redis = RedisServer::start();
    // Entra refuses any request with Chat.Read for consent and grants the rest.
    let entra = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Chat.Read"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"})))
        .with_priority(1)
        .mount(&entra)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "scope": "https://graph.microsoft.com/Mail.Read",
            "expires_in": 3599, "access_token": "graph-token"})))
        .mount(&entra)
        .await;
    let union = ScopeSet::from_scp("Mail.Read Chat.Read");
    let with_union = |i: Instance| Instance { provider: i.provider.with_union(union.clone()), ..i };
    let a = with_union(instance(&entra, config(&redis)));
    let b = with_union(instance(&entra, config(&redis)));
    let alice = caller_of(TID, OID, "alice-signin");
    let alice_elsewhere = caller_of(TID, OID, "alice-second-signin");

    a.provider.graph_token(&alice, &mail(), None).await.expect("per-scope fallback on a");
    b.provider.graph_token(&alice, &mail(), None).await.expect("served on b");
    b.provider.graph_token(&alice_elsewhere, &mail(), None).await.expect("new sign-in on b");
    let whole = b.provider.graph_token(&alice, &union, None).await;
    let union_asks = |asked: &[wiremock::Request]| {
        asked.iter().filter(|r| String::from_utf8_lossy(&r.body).contains("Chat.Read")).count()
    };

    let asked = entra.received_requests().await.unwrap_or_default();
    assert_eq!(union_asks(&asked), 1, "b asked Entra for the union a had found refused");
    // a: union (refused) + Mail.Read; b: L2 hit, then Mail.Read for the second sign-in.
    assert_eq!(asked.len(), 3);
    assert!(matches!(whole, Err(connector::obo::OboError::ConsentRequired { code: 65001, .. })));
    let refused = redis.dump().into_iter().filter(|(k, _)| k.starts_with("m365:refused:")).count();
    assert_eq!(refused, 1, "one refusal per user, whatever the sign-in");
    // The same object id in another tenant is another user: its union is asked for.
    let guest = caller_of(OTHER_TID, OID, "guest-signin");
    b.provider.graph_token(&guest, &mail(), None).await.expect("guest per-scope fallback");
    let asked = entra.received_requests().await.unwrap_or_default();
    assert_eq!(union_asks(&asked), 2, "another tenant's user inherited the refusal");
}

#[tokio::test]
async fn check_config_pings_redis_with_the_configured_credentials() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain = RedisServer::start();
    let report = connector::shared::check(&config(&plain)).await.expect("reachable");
    assert!(report.contains("PONG") && report.contains("server version 7"), "{report}");

    let guarded = RedisServer::start_with(&["--requirepass", "right-password-sentinel"]);
    let with_password = |password: Option<&str>| {
        let mut c = config(&guarded);
        c.password = password.map(|p| SecretString::from(p.to_owned()));
        c
    };
    let report = connector::shared::check(&with_password(Some("right-password-sentinel")))
        .await
        .expect("the right password");
    assert!(report.contains("PONG") && report.contains("password"), "{report}");
    for wrong in [Some("wrong-password-sentinel"), None] {
        let err = connector::shared::check(&with_password(wrong)).await.expect_err("refused");
        assert!(err.contains("redis.url") && err.contains("failed"), "{err}");
        assert!(!err.contains("sentinel"), "a password in the message: {err}");
    }

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = RedisConfig::new(format!("redis://127.0.0.1:{port}"));
    let err = connector::shared::check(&closed).await.expect_err("nothing listens");
    assert!(err.contains("redis.url") && err.contains(&port.to_string()), "{err}");
}

/// The policy re-read an epoch change triggers applies a file only once two reads a gap
/// apart agree: a file still changing (caught mid-write) is left to the poll.
#[tokio::test]
async fn the_policy_reload_an_epoch_triggers_waits_for_the_file_to_settle() {
    use connector::{
        domain::TenantId,
        policy::{PolicyStore, Reload},
        shared::reload_policy_settled,
    };
    let dir = crate::helpers::temp_dir();
    let file = dir.join("policy.toml");
    let policy = |enabled: bool, marker: &str| {
        format!(
            "# {marker}\n[defaults]\nmax_results = 25\n\n[[tenants]]\nid = \"{TID}\"\nname = \"contoso\"\nenabled = {enabled}\ntools = [\"*\"]\n"
        )
    };
    std::fs::write(&file, policy(true, "v0")).unwrap();
    let store = std::sync::Arc::new(PolicyStore::open(&file).unwrap());
    let contoso = TenantId::parse(TID).unwrap();
    let gap = Duration::from_millis(300);

    // A file that changes again during the gap is not applied.
    std::fs::write(&file, policy(false, "v1")).unwrap();
    let writer = {
        let file = file.clone();
        let text = policy(false, "v2");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(&file, text).unwrap();
        })
    };
    let changing = reload_policy_settled(&store, gap).await.unwrap();
    writer.await.unwrap();
    assert_eq!(changing, Reload::Unchanged);
    assert!(store.current().is_enabled(&contoso), "a file still being written was applied");

    // The same content twice, a gap apart: applied on that very call.
    let settled = reload_policy_settled(&store, gap).await.unwrap();
    assert_eq!(settled, Reload::Applied { disabled: vec![contoso] });
    assert!(!store.current().is_enabled(&contoso));
    let _ = std::fs::remove_dir_all(&dir);
}

// ─── The [redis] section ────────────────────────────────────────────────────────────────

mod config {
    use connector::config::{ConfigError, Overrides, Settings};

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    fn load(redis: &str, cursor_key: bool) -> Result<Settings, ConfigError> {
        let cursor =
            if cursor_key { format!("[tools]\ncursor_key = \"{KEY}\"\n") } else { String::new() };
        let text = format!(
            "[entra]\nclient_id = \"{}\"\nclient_secret = \"TEST-ONLY-secret\"\n[obo]\ncache_keys = [\"{KEY}\"]\n{cursor}{redis}",
            crate::helpers::CLIENT_ID
        );
        let dir = crate::helpers::temp_dir();
        let file = dir.join("connector.toml");
        std::fs::write(&file, text).unwrap();
        let result = Settings::load(Some(&file), Vec::new(), &Overrides::default());
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn refusal(redis: &str) -> String {
        load(redis, true).expect_err("should be refused").to_string()
    }

    #[test]
    fn without_a_redis_section_nothing_is_shared() {
        assert!(load("", false).unwrap().redis.is_none());
    }

    #[test]
    fn a_full_section_is_read_with_credentials_redacted() {
        let s = load(
            "[redis]\nurl = \"rediss://cache.example.net:6380\"\nusername = \"acl-user-sentinel\"\npassword = \"acl-password-sentinel\"\nkey_prefix = \"tenant-a:\"\nop_timeout_ms = 100\ntenant_per_minute = 600\ntenant_burst = 100\n",
            true,
        )
        .unwrap();
        let redis = s.redis.clone().unwrap();
        assert_eq!(redis.url, "rediss://cache.example.net:6380");
        assert_eq!(redis.key_prefix, "tenant-a:");
        assert_eq!(redis.op_timeout.as_millis(), 100);
        assert_eq!(redis.tenant_rate, Some((600, 100)));
        assert!(!format!("{s:?}").contains("sentinel"));
    }

    #[test]
    fn unsafe_or_incomplete_sections_are_refused_by_name() {
        let err = refusal("[redis]\nurl = \"http://cache:6379\"\n");
        assert!(err.contains("redis.url") && err.contains("rediss://"), "{err}");
        let err = refusal("[redis]\nurl = \"redis://user:pw@cache:6379\"\n");
        assert!(err.contains("redis.url") && err.contains("redis.password"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        let err = refusal("[redis]\nurl = \"redis://cache:6379\"\nop_timeout_ms = 0\n");
        assert!(err.contains("redis.op_timeout_ms"), "{err}");
        let err = refusal("[redis]\nurl = \"redis://cache:6379\"\ntenant_per_minute = 5\n");
        assert!(err.contains("redis.tenant_burst"), "{err}");
        let err = refusal("[redis]\nurl = \"redis://cache:6379\"\nsentinel = true\n");
        assert!(err.contains("sentinel"), "{err}");
        let err = refusal("[redis]\nkey_prefix = \"x\"\n");
        assert!(err.contains("url"), "{err}");
        let err = load("[redis]\nurl = \"redis://cache:6379\"\n", false).unwrap_err().to_string();
        assert!(err.contains("tools.cursor_key"), "{err}");
        let text = format!(
            "[entra]\nclient_id = \"{}\"\nclient_secret = \"TEST-ONLY-secret\"\n[tools]\ncursor_key = \"{KEY}\"\n[redis]\nurl = \"redis://cache:6379\"\n",
            crate::helpers::CLIENT_ID
        );
        let dir = crate::helpers::temp_dir();
        let file = dir.join("connector.toml");
        std::fs::write(&file, text).unwrap();
        let err = Settings::load(Some(&file), Vec::new(), &Overrides::default());
        let _ = std::fs::remove_dir_all(&dir);
        let err = err.expect_err("no cache keys").to_string();
        assert!(err.contains("obo.cache_keys"), "{err}");
    }
}
