//! [`Session`]: one signed-in persona. MCP calls go through rmcp's Streamable HTTP client with
//! the bearer token; protocol-level checks use [`Session::raw_post`] and
//! [`Session::call_tool_http`], which expose the HTTP status and headers.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientConfig, ReadResourceRequestParams, Tool},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::signin::{Discovery, OAuthClient, SignInError, Tokens, challenge_param};
pub use crate::signin::{RAW_PROTOCOL_VERSION, initialize_body};

type Client = RunningService<rmcp::RoleClient, ClientConfig>;

/// An HTTP response, read fully.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl RawResponse {
    pub async fn read(r: reqwest::Response) -> Result<Self> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.context("response body")?;
        Ok(Self { status, headers, text })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A parameter of the `WWW-Authenticate` challenge.
    pub fn challenge(&self, param: &str) -> Option<String> {
        self.header("www-authenticate").and_then(|h| challenge_param(h, param))
    }

    /// The body as JSON; an SSE body yields its first `data:` event.
    pub fn json(&self) -> Result<Value> {
        if let Ok(v) = serde_json::from_str(&self.text) {
            return Ok(v);
        }
        let data = self
            .text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .ok_or_else(|| anyhow!("body is neither JSON nor SSE: {}", truncate(&self.text)))?;
        serde_json::from_str(data.trim()).context("SSE data is not JSON")
    }

    /// For a JSON-RPC `tools/call` answer: the result object.
    pub fn tool_result(&self) -> Result<Value> {
        let v = self.json()?;
        if let Some(e) = v.get("error") {
            return Err(anyhow!("JSON-RPC error: {e}"));
        }
        v.get("result").cloned().ok_or_else(|| anyhow!("no result in {}", truncate(&self.text)))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(400).collect()
}

/// POSTs a body to the MCP endpoint with the headers a Streamable HTTP client sends.
pub async fn raw_post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<RawResponse> {
    let mut req = http.post(url);
    let overridden = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !overridden("content-type") {
        req = req.header("content-type", "application/json");
    }
    if !overridden("accept") {
        req = req.header("accept", "application/json, text/event-stream");
    }
    if !overridden("mcp-protocol-version") {
        req = req.header("mcp-protocol-version", RAW_PROTOCOL_VERSION);
    }
    if let Some(t) = token
        && !overridden("authorization")
    {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // A pooled connection the server closed (e.g. after refusing an oversized body) fails
    // the next request before anything is sent; clients retry that once on a new connection.
    let retry = req.try_clone();
    let r = match req.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) if error_chain(&e).contains("connection closed before message completed") => {
            match retry {
                Some(again) => again.body(body).send().await.context("POST /mcp (retried)")?,
                None => return Err(anyhow::Error::new(e).context("POST /mcp")),
            }
        }
        Err(e) => return Err(anyhow::Error::new(e).context("POST /mcp")),
    };
    RawResponse::read(r).await
}

/// An error and its sources, as one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// A tool call's result as plain data.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    pub is_error: bool,
    pub text: String,
    pub structured: Option<Value>,
}

impl ToolOutcome {
    /// From a `CallToolResult` JSON object.
    pub fn from_json(v: &Value) -> Self {
        let text = v["content"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Self {
            is_error: v["isError"].as_bool().unwrap_or(false),
            text,
            structured: v.get("structuredContent").cloned(),
        }
    }
}

/// A signed-in persona.
pub struct Session {
    pub upn: String,
    pub tenant_id: Uuid,
    pub object_id: Uuid,
    mcp_url: String,
    http: reqwest::Client,
    oauth: Option<(OAuthClient, Discovery)>,
    tokens: Mutex<Tokens>,
    client: tokio::sync::Mutex<Option<(String, Arc<Client>)>>,
    secrets: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("upn", &self.upn).finish_non_exhaustive()
    }
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        upn: String,
        tenant_id: Uuid,
        object_id: Uuid,
        mcp_url: String,
        http: reqwest::Client,
        oauth: OAuthClient,
        discovery: Discovery,
        tokens: Tokens,
        secrets: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        Self {
            upn,
            tenant_id,
            object_id,
            mcp_url,
            http,
            oauth: Some((oauth, discovery)),
            tokens: Mutex::new(tokens),
            client: tokio::sync::Mutex::new(None),
            secrets,
        }
    }

    pub(crate) fn with_token(
        upn: String,
        tenant_id: Uuid,
        object_id: Uuid,
        mcp_url: String,
        http: reqwest::Client,
        token: String,
        secrets: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let tokens = Tokens {
            access_token: token,
            refresh_token: None,
            expires_in: 0,
            scope: String::new(),
        };
        Self {
            upn,
            tenant_id,
            object_id,
            mcp_url,
            http,
            oauth: None,
            tokens: Mutex::new(tokens),
            client: tokio::sync::Mutex::new(None),
            secrets,
        }
    }

    /// The current access token.
    pub fn token(&self) -> String {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).access_token.clone()
    }

    /// `expires_in` of the last token response.
    pub fn expires_in(&self) -> i64 {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).expires_in
    }

    /// What discovery found (sessions made from a minted token have none).
    pub fn discovery(&self) -> Option<&Discovery> {
        self.oauth.as_ref().map(|(_, d)| d)
    }

    fn store(&self, t: Tokens) {
        {
            let mut s = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            s.push(t.access_token.clone());
            if let Some(r) = &t.refresh_token {
                s.push(r.clone());
            }
        }
        let mut cur = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let keep_refresh = t.refresh_token.is_none().then(|| cur.refresh_token.clone()).flatten();
        *cur = t;
        if keep_refresh.is_some() {
            cur.refresh_token = keep_refresh;
        }
    }

    /// The refresh-token grant, as a client does after a 401.
    pub async fn refresh(&self) -> Result<(), SignInError> {
        let (oauth, d) =
            self.oauth.as_ref().ok_or_else(|| anyhow!("this session has no OAuth state"))?;
        let rt = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refresh_token
            .clone()
            .ok_or_else(|| anyhow!("no refresh token"))?;
        let t = oauth.refresh(d, &rt).await?;
        self.store(t);
        Ok(())
    }

    /// Signs in again (interactive sign-in after a refusal), optionally with `claims`.
    pub async fn sign_in_again(&self, extra: &[(&str, &str)]) -> Result<(), SignInError> {
        let (oauth, d) =
            self.oauth.as_ref().ok_or_else(|| anyhow!("this session has no OAuth state"))?;
        let t = oauth.authorize(d, &self.upn, extra).await?;
        self.store(t);
        Ok(())
    }

    /// Step-up: re-authorize with the `claims` of a challenge (base64 or JSON).
    pub async fn step_up(&self, claims: &str) -> Result<(), SignInError> {
        let json = decode_claims(claims);
        self.sign_in_again(&[("claims", &json)]).await
    }

    /// The rmcp client for the current token (re-created after a token change).
    async fn client(&self) -> Result<Arc<Client>> {
        let token = self.token();
        let mut slot = self.client.lock().await;
        if let Some((t, c)) = &*slot
            && *t == token
        {
            return Ok(c.clone());
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.mcp_url.clone())
                .auth_header(token.clone()),
        );
        let client = ClientConfig::default()
            .serve(transport)
            .await
            .map_err(|e| anyhow!("MCP initialize: {e:?}"))?;
        let client = Arc::new(client);
        *slot = Some((token, client.clone()));
        Ok(client)
    }

    /// `tools/list` through the MCP client.
    pub async fn list_tools(&self) -> Result<Vec<Tool>> {
        let c = self.client().await?;
        c.list_all_tools().await.map_err(|e| anyhow!("tools/list: {e:?}"))
    }

    /// Tool names, sorted.
    pub async fn tool_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> =
            self.list_tools().await?.into_iter().map(|t| t.name.to_string()).collect();
        names.sort();
        Ok(names)
    }

    /// `tools/call` through the MCP client.
    pub async fn call_tool(&self, name: &str, args: Value) -> Result<ToolOutcome> {
        let c = self.client().await?;
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        let r = c.call_tool(params).await.map_err(|e| anyhow!("tools/call {name}: {e:?}"))?;
        let v = serde_json::to_value(&r)?;
        Ok(ToolOutcome::from_json(&v))
    }

    /// `resources/read` through the MCP client.
    pub async fn read_resource(&self, uri: &str) -> Result<Value> {
        let c = self.client().await?;
        let r = c
            .read_resource(ReadResourceRequestParams::new(uri.to_owned()))
            .await
            .map_err(|e| anyhow!("resources/read {uri}: {e:?}"))?;
        Ok(serde_json::to_value(&r)?)
    }

    /// A raw POST with this session's bearer token (unless `headers` sets `Authorization`).
    pub async fn raw_post(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<RawResponse> {
        raw_post(&self.http, &self.mcp_url, Some(&self.token()), body, headers).await
    }

    /// `tools/call` as one raw JSON-RPC POST: the HTTP status and challenge stay visible.
    pub async fn call_tool_http(&self, name: &str, args: Value) -> Result<RawResponse> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": args}
        });
        self.raw_post(body.to_string().into_bytes(), &[]).await
    }

    /// `tools/list` as one raw JSON-RPC POST.
    pub async fn list_tools_http(&self) -> Result<RawResponse> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
        self.raw_post(body.to_string().into_bytes(), &[]).await
    }

    /// Calls a tool over raw HTTP and returns its outcome, failing on any non-200.
    pub async fn call_ok(&self, name: &str, args: Value) -> Result<ToolOutcome> {
        let r = self.call_tool_http(name, args).await?;
        if r.status != 200 {
            return Err(anyhow!("{name}: HTTP {} {}", r.status, truncate(&r.text)));
        }
        Ok(ToolOutcome::from_json(&r.tool_result()?))
    }

    /// Stops the MCP client.
    pub async fn close(&self) {
        if let Some((_, c)) = self.client.lock().await.take()
            && let Ok(c) = Arc::try_unwrap(c)
        {
            let _ = c.cancel().await;
        }
    }
}

/// A `claims` challenge value is base64 of JSON; authorize wants the JSON.
pub fn decode_claims(claims: &str) -> String {
    use base64::Engine;
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    for e in engines {
        if let Ok(bytes) = e.decode(claims.trim())
            && let Ok(text) = String::from_utf8(bytes)
            && text.trim_start().starts_with('{')
        {
            return text;
        }
    }
    claims.to_owned()
}
