//! The load phase: C concurrent callers, each signed in as a different user, issuing a mix of
//! tool calls as stateless Streamable HTTP POSTs (one JSON-RPC `tools/call` a request, no
//! `initialize`, protocol 2025-06-18) over one shared keep-alive client.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The protocol revision of the bench's requests: the legacy era, which rmcp's stateless mode
/// serves without `initialize` or `Mcp-Method` headers (mcp.md §4.5).
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Words that occur in generated mail subjects, file names, events and chats.
const WORDS: [&str; 4] = ["budget", "forecast", "travel", "onboarding"];

/// One call shape of the mix. `read_resource` is filled in per call from the caller's hits.
#[derive(Debug, Clone)]
pub struct Template {
    pub tool: &'static str,
    pub args: Value,
    pub weight: u32,
}

/// Weights of an assistant's questions: mostly searches, a read of something found for
/// every few searches, the odd "who am I".
fn weight(tool: &str) -> u32 {
    match tool {
        "outlook_email_search" => 25,
        "sharepoint_search" => 20,
        "read_resource" => 20,
        "outlook_calendar_search" => 10,
        "chat_message_search" => 10,
        "sharepoint_folder_search" => 5,
        "find_meeting_availability" => 0,
        "get_me" => 10,
        _ => 0,
    }
}

/// The templates for the tools the connector lists (unknown tools are left out).
pub fn templates(listed: &[String]) -> Vec<Template> {
    let mut out = Vec::new();
    let has = |t: &str| listed.iter().any(|l| l == t);
    for tool in [
        "outlook_email_search",
        "sharepoint_search",
        "outlook_calendar_search",
        "chat_message_search",
        "sharepoint_folder_search",
    ] {
        if !has(tool) || weight(tool) == 0 {
            continue;
        }
        for w in WORDS {
            let args = match tool {
                "sharepoint_folder_search" => json!({"name": w}),
                _ => json!({"query": w}),
            };
            let tool: &'static str = tool;
            out.push(Template { tool, args, weight: weight(tool) });
        }
    }
    if has("get_me") {
        out.push(Template { tool: "get_me", args: json!({}), weight: weight("get_me") * 4 });
    }
    if has("read_resource") {
        out.push(Template {
            tool: "read_resource",
            args: Value::Null,
            weight: weight("read_resource") * 4,
        });
    }
    out
}

/// One tool call as the caller saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub caller: usize,
    /// Index into the templates.
    pub template: usize,
    pub tool: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub latency: Duration,
    /// `None` on success; otherwise a short category (`http 503`, `jsonrpc`, `tool error`, …).
    pub error: Option<String>,
}

/// The JSON-RPC body of one `tools/call`.
pub fn call_body(id: u64, tool: &str, args: &Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
    .to_string()
    .into_bytes()
}

/// The outcome of one call: `Ok(result)` or an error category.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: u64,
    tool: &str,
    args: &Value,
) -> Result<Value, String> {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .bearer_auth(token)
        .body(call_body(id, tool, args))
        .send()
        .await
        .map_err(|e| format!("transport: {}", short(&e.to_string())))?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|_| "body read".to_owned())?;
    if status != 200 {
        return Err(format!("http {status}"));
    }
    let v: Value = serde_json::from_str(&text)
        .ok()
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("data:"))
                .and_then(|d| serde_json::from_str(d.trim()).ok())
        })
        .ok_or_else(|| "unparsable body".to_owned())?;
    if let Some(e) = v.get("error") {
        let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
        return Err(format!("jsonrpc {code}"));
    }
    let result = v.get("result").cloned().unwrap_or(Value::Null);
    if result.get("isError").and_then(Value::as_bool).unwrap_or(false) {
        return Err(format!("tool error ({tool})"));
    }
    Ok(result)
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// Every `m365://` URI in a result (what `read_resource` accepts).
pub fn uris(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("m365://") => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| uris(x, out)),
        Value::Object(o) => o.values().for_each(|x| uris(x, out)),
        _ => {}
    }
}

/// A tiny deterministic PRNG per caller (SplitMix64), so a run's mix is reproducible.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Runs one caller until `deadline`; returns its records.
pub async fn run_caller(
    caller: usize,
    http: reqwest::Client,
    url: String,
    token: String,
    templates: std::sync::Arc<Vec<Template>>,
    deadline: Instant,
) -> Vec<CallRecord> {
    let total: u64 = templates.iter().map(|t| u64::from(t.weight)).sum::<u64>().max(1);
    let mut mix = Mix(0xB3C4_0000 + caller as u64);
    let mut found: Vec<String> = Vec::new();
    let mut records = Vec::new();
    let mut id = 0u64;
    while Instant::now() < deadline {
        let mut pick = mix.next() % total;
        let mut index = 0;
        for (i, t) in templates.iter().enumerate() {
            if pick < u64::from(t.weight) {
                index = i;
                break;
            }
            pick -= u64::from(t.weight);
        }
        let t = &templates[index];
        let args = if t.tool == "read_resource" {
            if found.is_empty() {
                // Nothing found yet: search first, as an assistant would.
                match templates.iter().position(|t| t.tool != "read_resource" && t.tool != "get_me")
                {
                    Some(i) => {
                        index = i;
                        templates[i].args.clone()
                    }
                    None => continue,
                }
            } else {
                let u = &found[(mix.next() % found.len() as u64) as usize];
                json!({"uri": u})
            }
        } else {
            t.args.clone()
        };
        let tool = templates[index].tool;
        id += 1;
        let start = Utc::now();
        let began = Instant::now();
        let outcome = call(&http, &url, &token, id, tool, &args).await;
        let latency = began.elapsed();
        let end = Utc::now();
        let error = match outcome {
            Ok(result) => {
                if tool != "read_resource" && found.len() < 64 {
                    let mut more = Vec::new();
                    uris(&result, &mut more);
                    more.truncate(8);
                    found.extend(more);
                }
                None
            }
            Err(e) => Some(e),
        };
        records.push(CallRecord { caller, template: index, tool, start, end, latency, error });
    }
    records
}
