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

/// The outcome of one call: `Ok(body)` (the JSON-RPC response, unparsed beyond the error
/// check) or an error category. Parse the body with [`result_of`] only when its content is
/// needed: a full `Value` tree per call would make the load generator a noticeable share of
/// the connector side's CPU, and the direct replay does not parse its bodies either.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: u64,
    tool: &str,
    args: &Value,
) -> Result<Vec<u8>, String> {
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
    let body = r.bytes().await.map_err(|_| "body read".to_owned())?;
    if status != 200 {
        return Err(format!("http {status}"));
    }
    let json = json_of(&body).ok_or_else(|| "unparsable body".to_owned())?.to_vec();
    // Only the fields that decide success are read; everything else is skipped unallocated.
    #[derive(serde::Deserialize)]
    struct Head {
        error: Option<ErrorHead>,
        result: Option<ResultHead>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorHead {
        #[serde(default)]
        code: i64,
    }
    #[derive(serde::Deserialize)]
    struct ResultHead {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    let head: Head = serde_json::from_slice(&json).map_err(|_| "unparsable body".to_owned())?;
    if let Some(e) = head.error {
        return Err(format!("jsonrpc {}", e.code));
    }
    if head.result.is_some_and(|r| r.is_error) {
        return Err(format!("tool error ({tool})"));
    }
    Ok(json)
}

/// The JSON text of a response body: the body itself, or the first SSE `data:` line.
fn json_of(body: &[u8]) -> Option<&[u8]> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") {
        return Some(trimmed);
    }
    body.split(|b| *b == b'\n').find_map(|line| line.strip_prefix(b"data:")).map(<[u8]>::trim_ascii)
}

/// The `result` of a successful call's body (from [`call`]), parsed.
pub fn result_of(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("result").map(Value::take))
        .unwrap_or(Value::Null)
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
    urls: std::sync::Arc<Vec<String>>,
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
        // Round-robin over the instances, one request at a time (offset per caller so the
        // instances share the load evenly).
        let url = &urls[(caller + id as usize) % urls.len().max(1)];
        let outcome = call(&http, url, &token, id, tool, &args).await;
        let latency = began.elapsed();
        let end = Utc::now();
        let error = match outcome {
            Ok(body) => {
                if tool != "read_resource" && found.len() < 64 {
                    let mut more = Vec::new();
                    uris(&result_of(&body), &mut more);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_of_reads_plain_and_sse_bodies() {
        let plain = br#"  {"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(json_of(plain), Some(&br#"{"jsonrpc":"2.0","id":1,"result":{}}"#[..]));
        let sse = b"event: message\ndata: {\"id\":2}\n\n";
        assert_eq!(json_of(sse), Some(&b"{\"id\":2}"[..]));
        assert_eq!(json_of(b"event: ping\n\n"), None);
    }

    #[test]
    fn result_of_takes_the_result_and_finds_its_uris() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"structuredContent":{"items":[{"uri":"m365://mail/a"},{"uri":"https://x"}]}}}"#;
        let mut found = Vec::new();
        uris(&result_of(body), &mut found);
        assert_eq!(found, vec!["m365://mail/a".to_owned()]);
        assert_eq!(result_of(b"not json"), Value::Null);
    }
}
