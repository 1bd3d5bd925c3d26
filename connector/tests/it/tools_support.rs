//! The tools test world: fake-entra and fake-graph in-process on the standard fixtures, the
//! connector pointed at both, one shared clock, and typed MCP calls.
//!
//! ```ignore
//! let world = ToolsWorld::start().await;
//! let adele = world.persona("adele@contoso.com");
//! let result = world.call_tool(&adele, "sharepoint_search", json!({"query": "budget"})).await;
//! ```
//! `call_tool` returns the JSON-RPC `result` (or `error`) object; [`redact`] hides volatile
//! values (cursors, request ids) for insta snapshots.

use std::sync::Arc;

use connector::{
    clock::Clock,
    policy::{Policy, PolicyStore},
    server::{Application, Dependencies},
    testing::SettingsBuilder,
};
use fake_entra::FakeEntra;
use fake_graph::FakeGraph;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{init_crypto, temp_dir};

/// TEST-ONLY: the connector's fixture secret (fixtures/tenants/apps.toml).
const CONNECTOR_SECRET: &str = "TEST-ONLY-connector-secret-not-for-production-7Qm2~xV9";

/// A signed-in fixture user.
#[derive(Clone, Debug)]
pub struct Persona {
    pub upn: String,
    pub tid: Uuid,
    pub oid: Uuid,
    pub token: String,
}

pub struct ToolsWorld {
    pub entra: FakeEntra,
    pub graph: FakeGraph,
    pub clock: fixtures::Clock,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub dir: std::path::PathBuf,
    stop: CancellationToken,
}

impl Drop for ToolsWorld {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ToolsWorld {
    pub async fn start() -> Self {
        Self::start_with_policy("").await
    }

    /// Like [`Self::start`], with `contoso_extra` (TOML lines, e.g. `tools = [...]`) added to
    /// Contoso's policy entry.
    pub async fn start_with_policy(contoso_extra: &str) -> Self {
        init_crypto();
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
            .clock(clock.clone())
            .start()
            .await
            .expect("fake-graph starts");
        let dir = temp_dir();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let contoso = entra.tenant_id("contoso").expect("contoso");
        let fabrikam = entra.tenant_id("fabrikam").expect("fabrikam");
        let policy_text = format!(
            "[[tenants]]\nid = \"{contoso}\"\nname = \"contoso\"\n{contoso_extra}\n[[tenants]]\nid = \"{fabrikam}\"\nname = \"fabrikam\"\n"
        );
        let settings = SettingsBuilder::new(addr)
            .entra(&entra.uri(), entra.connector_id(), CONNECTOR_SECRET)
            .graph(&format!("{}/v1.0", graph.uri()))
            .download_hosts(&["127.0.0.1"])
            .cache_key([7; 32])
            .policy(&dir.join("policy.toml"), 2)
            .audit(&dir.join("audit.jsonl"), false)
            .per_caller_rate(6000, 1000)
            .shutdown_grace_secs(1)
            .settings()
            .expect("valid settings");
        let policy_path = dir.join("policy.toml");
        std::fs::write(&policy_path, &policy_text).expect("policy written");
        let policy = Arc::new(PolicyStore::fixed(
            Policy::parse(&policy_text, &policy_path).expect("policy"),
        ));
        let shared = clock.clone();
        let deps = Dependencies {
            clock: Clock::from_fn(move || shared.now()),
            listener: Some(listener),
            policy: Some(policy),
            ..Dependencies::default()
        };
        let app = Application::build(settings, deps).await.expect("app builds");
        let stop = CancellationToken::new();
        let signal = stop.clone();
        tokio::spawn(app.run_until_stopped(async move { signal.cancelled().await }));
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        Self { entra, graph, clock, addr, http, dir, stop }
    }

    /// A persona by UPN, with a fresh connector-audience token.
    pub fn persona(&self, upn: &str) -> Persona {
        let (tid, oid) = self.entra.persona(upn).unwrap_or_else(|| panic!("persona {upn}"));
        Persona { upn: upn.to_owned(), tid, oid, token: self.entra.user_token(tid, oid) }
    }

    /// Sends one JSON-RPC request and returns the whole response object.
    pub async fn rpc(&self, who: &Persona, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self
            .http
            .post(format!("http://{}/mcp", self.addr))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .bearer_auth(&who.token)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        serde_json::from_str(&text)
            .unwrap_or_else(|_| json!({"http_status": status.as_u16(), "body": text}))
    }

    /// `tools/call`; returns `result` or, for a protocol error, `{"error": …}`.
    pub async fn call_tool(&self, who: &Persona, name: &str, arguments: Value) -> Value {
        let response =
            self.rpc(who, "tools/call", json!({"name": name, "arguments": arguments})).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => json!({"error": response.get("error").cloned().unwrap_or(response)}),
        }
    }

    /// The structured content of a successful tool call (panics with the result otherwise).
    pub async fn structured(&self, who: &Persona, name: &str, arguments: Value) -> Value {
        let result = self.call_tool(who, name, arguments).await;
        assert_ne!(
            result.get("isError"),
            Some(&json!(true)),
            "{name} failed for {}: {result:#}",
            who.upn
        );
        result
            .get("structuredContent")
            .cloned()
            .unwrap_or_else(|| panic!("no structuredContent: {result:#}"))
    }

    /// The text of the first content block.
    pub fn text(result: &Value) -> String {
        result.pointer("/content/0/text").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    /// Graph requests the fake saw for `who`, as `METHOD path`.
    pub fn graph_calls(&self, who: &Persona) -> Vec<String> {
        self.graph
            .requests_for_user(who.tid, who.oid)
            .iter()
            .map(|e| format!("{} {}", e.request_method, e.path))
            .collect()
    }
}

/// Replaces volatile values (cursors, request ids, long opaque ids) with placeholders.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "next_cursor" | "cursor" => json!("[cursor]"),
                        _ => redact(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}
