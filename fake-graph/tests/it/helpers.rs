//! The test world: fake-entra and fake-graph on 127.0.0.1:0 over the standard fixture world,
//! sharing one clock; typed request helpers.

use std::sync::Arc;

use fake_entra::FakeEntra;
use fake_graph::FakeGraph;
use fixtures::{Clock, World};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use uuid::Uuid;

pub const MAIL: &[&str] = &["User.Read", "Mail.Read"];
pub const ALL: &[&str] = &[
    "User.Read",
    "User.ReadBasic.All",
    "Mail.Read",
    "MailboxSettings.Read",
    "Calendars.Read",
    "Files.Read.All",
    "Sites.Read.All",
    "Chat.Read",
    "ChannelMessage.Read.All",
    "Channel.ReadBasic.All",
];

pub struct TestWorld {
    pub entra: FakeEntra,
    pub graph: FakeGraph,
    pub world: Arc<World>,
    pub http: reqwest::Client,
    pub clock: Clock,
}

/// A response: status, headers, JSON body (`Null` when not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl TestWorld {
    pub async fn start() -> Self {
        Self::start_with(|b| b).await
    }

    pub async fn start_with(
        f: impl FnOnce(fake_graph::FakeGraphBuilder) -> fake_graph::FakeGraphBuilder,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let world = fixtures::standard_world();
        let clock = Clock::system();
        let entra = FakeEntra::builder()
            .world(world.clone())
            .clock(clock.clone())
            .start()
            .await
            .expect("fake-entra starts");
        let graph =
            f(FakeGraph::builder().world(world.clone()).entra(&entra.uri()).clock(clock.clone()))
                .start()
                .await
                .expect("fake-graph starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("client");
        Self { entra, graph, world, http, clock }
    }

    /// `(tid, oid)` of `local@{tenant}.com`.
    pub fn persona(&self, tenant: &str, local: &str) -> (Uuid, Uuid) {
        self.entra.persona(&format!("{local}@{tenant}.com")).expect("persona exists")
    }

    pub fn token(&self, tenant: &str, local: &str, scopes: &[&str]) -> String {
        let (tid, oid) = self.persona(tenant, local);
        self.entra.graph_token(tid, oid, scopes, false)
    }

    pub fn tenant(&self, name: &str) -> &fixtures::Tenant {
        self.world.tenants.iter().find(|t| t.name == name).expect("tenant exists")
    }

    pub async fn send(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.graph.uri())
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, headers, body }
    }

    pub async fn get(&self, token: &str, path: &str) -> Resp {
        self.send(Method::GET, Some(token), path, None, &[]).await
    }

    pub async fn get_h(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, Some(token), path, None, headers).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Resp {
        self.send(Method::POST, Some(token), path, Some(body), &[]).await
    }
}

/// Percent-encodes one path segment.
pub fn seg(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}
