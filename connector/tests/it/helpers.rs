//! The test harness: a wiremock Entra (discovery + JWKS), TEST-ONLY signing keys, a token
//! minter, and [`TestApp`], the connector on a random loopback port.

use std::{
    path::PathBuf,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use connector::testing::SettingsBuilder;
use connector::{
    clock::Clock,
    config::{RawSettings, Settings},
    policy::{Policy, PolicyStore},
    server::{Application, Dependencies},
};
use fake_entra::keys::{KeyState, SigningKey};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

pub const CLIENT_ID: &str = "0d6dfcf5-cc5f-4d1b-9101-42c950cf2ac8";
pub const MCP_CLIENT_ID: &str = "bc2309af-91dc-487a-afe2-6a2745bde402";
pub const CONTOSO: &str = "2dafe747-82eb-4139-95a6-9c4ded21e24c";
pub const FABRIKAM: &str = "0088983a-6e02-4923-9236-e690a86a45e5";
pub const TAILSPIN: &str = "f7d61373-35a1-4c8c-b5a5-0b9ba1e9945d";
pub const CONSUMER: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
pub const ADELE: &str = "0b0e3069-0ba6-4a90-9981-dae77a1c0ad0";
pub const JWKS_PATH: &str = "/common/discovery/v2.0/keys";
pub const DISCOVERY_PATH: &str = "/common/v2.0/.well-known/openid-configuration";

/// A TEST-ONLY RSA key: fake-entra's signing key, published under this suite's kid.
pub struct TestKey {
    pub kid: &'static str,
    pub n: String,
    pub e: String,
    signing: SigningKey,
}

impl TestKey {
    fn load(kid: &'static str, pem: &'static str) -> Self {
        let signing = SigningKey::from_pem(pem, KeyState::Active).expect("TEST-ONLY key parses");
        Self { kid, n: signing.n.clone(), e: signing.e.clone(), signing }
    }

    pub fn jwk(&self, issuer: &str) -> Value {
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e, "issuer": issuer})
    }

    /// The public key as the JWK JSON bytes, used as an HMAC secret by the confusion attack.
    pub fn public_material(&self) -> Vec<u8> {
        format!("{}.{}", self.n, self.e).into_bytes()
    }
}

// The workspace's one TEST-ONLY key set (fake-entra/src/test_keys/), under this suite's kids:
// the wiremock Entra publishes them by these names.
pub static PRIMARY: LazyLock<TestKey> =
    LazyLock::new(|| TestKey::load("primary-kid", fake_entra::keys::TEST_KEY_1));
pub static ROTATED: LazyLock<TestKey> =
    LazyLock::new(|| TestKey::load("rotated-kid", fake_entra::keys::TEST_KEY_2));
pub static ATTACKER: LazyLock<TestKey> =
    LazyLock::new(|| TestKey::load("attacker-kid", fake_entra::keys::ATTACKER_KEY));

/// Signs `claims` with `key` (RS256) under `kid`, with fake-entra's minter.
pub fn sign(claims: &Value, key: &TestKey, kid: &str) -> String {
    fake_entra::tokens::sign_as(&key.signing, kid, claims)
}

/// Builds an unsigned-looking token from raw header and payload JSON with any signature bytes.
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A clock the test can move.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.0.load(Ordering::SeqCst)
    }
    pub fn clock(&self) -> Clock {
        let offset = self.0.clone();
        Clock::from_fn(move || {
            chrono::Utc::now() + chrono::Duration::seconds(offset.load(Ordering::SeqCst))
        })
    }
}

/// What a test can change before the app starts.
pub struct Options {
    pub policy: String,
    pub policy_file: bool,
    pub max_in_flight: usize,
    pub max_body_bytes: usize,
    pub allowed_origins: Vec<String>,
    pub per_minute: u32,
    pub burst: u32,
    pub jwks_floor_secs: u64,
    pub mount_entra: bool,
    /// Last edits to the settings before validation (audit options, timeouts).
    pub edit: fn(&mut RawSettings),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: default_policy(),
            policy_file: false,
            max_in_flight: 64,
            max_body_bytes: 64 * 1024,
            allowed_origins: vec!["https://claude.ai".into()],
            per_minute: 600,
            burst: 100,
            jwks_floor_secs: 60,
            mount_entra: true,
            edit: |_| {},
        }
    }
}

pub fn default_policy() -> String {
    format!(
        r#"
        [[tenants]]
        id = "{CONTOSO}"
        name = "contoso"
        [[tenants]]
        id = "{FABRIKAM}"
        name = "fabrikam"
        tools = ["sharepoint_search"]
        [[tenants]]
        id = "{TAILSPIN}"
        name = "tailspin"
        enabled = false
        "#
    )
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub entra: MockServer,
    pub graph: MockServer,
    pub http: reqwest::Client,
    pub clock: TestClock,
    pub dir: PathBuf,
    pub audit_path: PathBuf,
    pub policy_path: PathBuf,
    pub metrics: Arc<connector::metrics::Metrics>,
    pub policy: Arc<PolicyStore>,
    pub stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Mounts discovery and a JWKS holding [`PRIMARY`] (templated issuer).
pub async fn mount_entra(entra: &MockServer) {
    let base = entra.uri();
    Mock::given(method("GET"))
        .and(path(DISCOVERY_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": format!("{base}/{{tenantid}}/v2.0"),
            "jwks_uri": format!("{base}{JWKS_PATH}"),
        })))
        .mount(entra)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&base, &[&PRIMARY])))
        .named("jwks")
        .mount(entra)
        .await;
}

/// Mounts Contoso's OBO token endpoint on `entra` and `/me` + `/me/mailboxSettings` on `graph`.
pub async fn mount_graph(entra: &MockServer, graph: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!("/{CONTOSO}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "scope": "https://graph.microsoft.com/User.Read",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": "graph-access-token-for-adele",
        })))
        .mount(entra)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("request-id", "graph-req-me").set_body_json(
                json!({
                    "id": ADELE,
                    "displayName": "Adele Vance",
                    "userPrincipalName": "adele@contoso.com",
                    "mail": "adele@contoso.com",
                }),
            ),
        )
        .mount(graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me/mailboxSettings"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"timeZone": "Pacific Standard Time"})),
        )
        .mount(graph)
        .await;
}

pub fn jwks(base: &str, keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk(&format!("{base}/{{tenantid}}/v2.0"))).collect::<Vec<_>>()})
}

/// Raw settings for an app at `addr` whose Entra is `entra`.
pub fn raw_settings(
    entra: &str,
    graph: &str,
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    o: &Options,
) -> RawSettings {
    SettingsBuilder::new(addr)
        .allowed_origins(&o.allowed_origins)
        .entra(entra, CLIENT_ID, "TEST-ONLY-secret")
        .jwks_refresh_floor_secs(o.jwks_floor_secs)
        .graph(&format!("{graph}/v1.0"))
        .cache_key([7; 32])
        .policy(&dir.join("policy.toml"), 2)
        .audit(&dir.join("audit.jsonl"), false)
        .max_in_flight(o.max_in_flight)
        .set("limits", "max_body_bytes", o.max_body_bytes as i64)
        .per_caller_rate(o.per_minute, o.burst)
        .shutdown_grace_secs(5)
        .set("limits", "header_timeout_secs", 1)
        .raw()
        .expect("test settings parse")
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m365-connector-it-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(o: Options) -> TestApp {
    init_crypto();
    let entra = MockServer::start().await;
    if o.mount_entra {
        mount_entra(&entra).await;
    }
    let graph = MockServer::start().await;
    mount_graph(&entra, &graph).await;
    let dir = temp_dir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut raw = raw_settings(&entra.uri(), &graph.uri(), addr, &dir, &o);
    (o.edit)(&mut raw);
    let settings = Settings::from_raw(raw).expect("valid test settings");
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, &o.policy).unwrap();
    let policy = if o.policy_file {
        Arc::new(PolicyStore::open(&policy_path).unwrap())
    } else {
        Arc::new(PolicyStore::fixed(Policy::parse(&o.policy, &policy_path).unwrap()))
    };
    let clock = TestClock::default();
    let metrics = Arc::new(connector::metrics::Metrics::new());
    let deps = Dependencies {
        clock: clock.clock(),
        listener: Some(listener),
        metrics: Some(metrics.clone()),
        policy: Some(policy.clone()),
        ..Dependencies::default()
    };
    let app = Application::build(settings, deps).await.expect("app builds");
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(app.run_until_stopped(async move { signal.cancelled().await }));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    TestApp {
        addr,
        entra,
        graph,
        http,
        clock,
        audit_path: dir.join("audit.jsonl"),
        policy_path,
        dir,
        metrics,
        policy,
        stop,
    }
}

impl TestApp {
    pub fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.addr)
    }

    pub fn issuer(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.entra.uri())
    }

    /// Claims of a good v2 user token for the connector.
    pub fn claims(&self, tid: &str, oid: &str) -> Value {
        let now = self.clock.now();
        json!({
            "aud": CLIENT_ID,
            "iss": self.issuer(tid),
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "azp": MCP_CLIENT_ID,
            "name": "Adele Vance",
            "oid": oid,
            "scp": "access_as_user",
            "sub": "pairwise-sub",
            "tid": tid,
            "uti": "AbCdEf123",
            "ver": "2.0",
        })
    }

    pub fn token(&self, tid: &str, oid: &str) -> String {
        sign(&self.claims(tid, oid), &PRIMARY, PRIMARY.kid)
    }

    pub fn token_with(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.claims(CONTOSO, ADELE);
        edit(claims.as_object_mut().unwrap());
        sign(&claims, &PRIMARY, PRIMARY.kid)
    }

    /// POSTs a legacy `initialize` to `/mcp` with an optional bearer token.
    pub async fn post_mcp(&self, token: Option<&str>) -> reqwest::Response {
        self.post_mcp_with(token, |r| r).await
    }

    pub async fn post_mcp_with(
        &self,
        token: Option<&str>,
        edit: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(initialize_body().to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        edit(req).send().await.expect("request sent")
    }

    /// POSTs `tools/call` with the headers a Streamable HTTP client sends; the HTTP response.
    pub async fn call_tool_raw(
        &self,
        token: &str,
        name: &str,
        arguments: Value,
    ) -> reqwest::Response {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}});
        self.http
            .post(self.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn jwks_requests(&self) -> usize {
        self.entra
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == JWKS_PATH)
            .count()
    }
}

pub fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "it", "version": "0"}
        }
    })
}

/// The `WWW-Authenticate` header of a response, parsed.
pub fn challenge(response: &reqwest::Response) -> connector::auth::Challenge {
    let value = response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap();
    connector::auth::Challenge::parse(value).expect("a Bearer challenge with resource_metadata")
}
