//! The baseline: the identical Graph requests, straight to fake-graph.
//!
//! After the connector phase, fake-graph's journal says exactly which requests the connector
//! made, for whom (`oid`) and with which token (`uti`). Each caller ran its calls one after
//! another, so a journal entry of user U received between the start and the end of one of
//! U's calls belongs to that call. The replay sends each call's requests in order, with
//! Graph tokens for the same user and the same scopes, from the same number of concurrent
//! callers, and times each call's group of requests as one "direct tool call".

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use axum::body::Bytes;
use fake_entra::FakeEntra;
use fake_graph::JournalEntry;
use serde_json::Value;
use uuid::Uuid;

use super::load::CallRecord;

/// One Graph request to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub method: String,
    pub uri: String,
    pub uti: Option<String>,
    pub body: Option<Bytes>,
    /// The status fake-graph gave the connector: the replay expects the same.
    pub status: u16,
}

/// The requests of one connector tool call.
#[derive(Debug, Clone, Default)]
pub struct ReplayCall {
    pub requests: Vec<ReplayRequest>,
}

/// What matching the journal to the calls found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MatchStats {
    pub journal_entries: usize,
    pub matched_entries: usize,
    /// POSTs whose body calibration did not capture (sent with the template's first body or
    /// an empty object).
    pub posts_without_body: usize,
    pub calls_without_graph_requests: usize,
}

/// Groups the journal by call. `bodies[template]` are the POST bodies calibration captured
/// for that template, in order.
pub fn group(
    records: &[Vec<CallRecord>],
    oids: &[Uuid],
    journal: &[JournalEntry],
    bodies: &HashMap<usize, Vec<Bytes>>,
) -> (Vec<Vec<ReplayCall>>, MatchStats) {
    let mut stats = MatchStats { journal_entries: journal.len(), ..Default::default() };
    let mut by_user: HashMap<Uuid, Vec<&JournalEntry>> = HashMap::new();
    for e in journal {
        if let Some(oid) = e.user_id {
            by_user.entry(oid).or_default().push(e);
        }
    }
    for list in by_user.values_mut() {
        list.sort_by_key(|e| e.time);
    }
    let mut out = Vec::with_capacity(records.len());
    for (caller, calls) in records.iter().enumerate() {
        let entries = by_user.get(&oids[caller]).map(Vec::as_slice).unwrap_or_default();
        let mut next = 0;
        let mut groups = Vec::with_capacity(calls.len());
        for call in calls {
            while next < entries.len() && entries[next].time < call.start {
                next += 1;
            }
            let mut requests = Vec::new();
            let mut posts = 0;
            while next < entries.len() && entries[next].time <= call.end {
                let e = entries[next];
                let body = if e.request_method == "POST" {
                    let b = bodies.get(&call.template).and_then(|b| b.get(posts)).cloned();
                    posts += 1;
                    if b.is_none() {
                        stats.posts_without_body += 1;
                    }
                    Some(b.unwrap_or_else(|| Bytes::from_static(b"{}")))
                } else {
                    None
                };
                requests.push(ReplayRequest {
                    method: e.request_method.clone(),
                    uri: e.request_uri.clone(),
                    uti: e.sign_in_activity_id.clone(),
                    body,
                    status: e.response_status_code,
                });
                next += 1;
            }
            stats.matched_entries += requests.len();
            if requests.is_empty() {
                stats.calls_without_graph_requests += 1;
            }
            groups.push(ReplayCall { requests });
        }
        out.push(groups);
    }
    (out, stats)
}

/// How the baseline's Graph tokens were obtained.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TokenStats {
    /// Distinct Graph tokens (`uti`s) the connector used.
    pub connector_utis: usize,
    /// Tokens obtained by our own OBO exchange against fake-entra.
    pub obo_exchanged: usize,
    /// Tokens minted with `FakeEntra::graph_token` (fallback when our exchange failed).
    pub minted: usize,
    pub method: &'static str,
}

/// For every `uti` the connector used, a Graph token for the same user, scopes and `cp1`:
/// obtained by performing the OBO exchange ourselves with the connector app's TEST-ONLY
/// secret and a fresh user assertion (fallback: minted with the same scopes).
pub async fn tokens(
    http: &reqwest::Client,
    entra: &FakeEntra,
    entra_journal: &[fake_entra::JournalEntry],
    utis: impl IntoIterator<Item = String>,
    client_id: &str,
    client_secret: &str,
) -> Result<(HashMap<String, String>, TokenStats)> {
    let mut stats = TokenStats {
        method: "OBO exchange against fake-entra with the connector app's TEST-ONLY secret \
                 (same user, scopes and cp1 as the connector's exchange)",
        ..Default::default()
    };
    let by_uti: HashMap<&str, &fake_entra::JournalEntry> = entra_journal
        .iter()
        .filter(|e| e.grant == "on_behalf_of")
        .filter_map(|e| e.uti.as_deref().map(|u| (u, e)))
        .collect();
    let mut out = HashMap::new();
    for uti in utis {
        stats.connector_utis += 1;
        let Some(e) = by_uti.get(uti.as_str()) else { continue };
        let (Some(tid), Some(oid)) = (e.tenant_id, e.user_id) else { continue };
        let assertion = entra.user_token(tid, oid);
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()),
            ("client_id", client_id.to_owned()),
            ("client_secret", client_secret.to_owned()),
            ("assertion", assertion),
            ("scope", e.scopes.join(" ")),
            ("requested_token_use", "on_behalf_of".to_owned()),
        ];
        if e.cp1 {
            form.push(("claims", r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#.to_owned()));
        }
        let exchanged = async {
            let r =
                http.post(entra.token_endpoint(&tid.to_string())).form(&form).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            let v: Value = r.json().await.ok()?;
            v.get("access_token").and_then(Value::as_str).map(str::to_owned)
        }
        .await;
        let token = match exchanged {
            Some(t) => {
                stats.obo_exchanged += 1;
                t
            }
            None => {
                stats.minted += 1;
                let short: Vec<&str> = e
                    .scopes
                    .iter()
                    .map(|s| s.rsplit('/').next().unwrap_or(s))
                    .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access"))
                    .collect();
                entra.graph_token(tid, oid, &short, e.cp1)
            }
        };
        out.insert(uti, token);
    }
    if stats.minted > 0 {
        stats.method = "OBO exchange against fake-entra with the connector app's TEST-ONLY secret; \
                        fallback FakeEntra::graph_token with the same scopes where it failed";
    }
    Ok((out, stats))
}

/// Graph requests of the connector run by path shape: count, non-2xx/3xx, fake-graph's own
/// mean handling time. Shows where the physical limit itself is spent.
pub fn by_path(journal: &[JournalEntry]) -> serde_json::Value {
    let mut acc: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for e in journal {
        let shape: Vec<String> = e
            .path
            .split('/')
            .map(|seg| {
                let idish = seg.len() >= 16
                    || seg.contains(['!', ':', '@', '='])
                    || (seg.len() >= 8 && seg.chars().any(|c| c.is_ascii_digit()));
                if idish { "{id}".to_owned() } else { seg.to_owned() }
            })
            .collect();
        let key = format!("{} {}", e.request_method, shape.join("/"));
        let a = acc.entry(key).or_default();
        a.0 += 1;
        if e.response_status_code >= 400 {
            a.1 += 1;
        }
        a.2 += e.duration_ms;
    }
    acc.into_iter()
        .map(|(k, (n, bad, ms))| {
            (k, serde_json::json!({"count": n, "status_ge_400": bad, "mean_ms": ms as f64 / n as f64}))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One replayed call.
#[derive(Debug, Clone)]
pub struct DirectRecord {
    pub latency: Duration,
    pub error: Option<String>,
}

/// Replays every caller's calls with the same concurrency; returns records and wall time.
pub async fn run(
    http: &reqwest::Client,
    graph_base: &str,
    calls: Vec<Vec<ReplayCall>>,
    tokens: Arc<HashMap<String, String>>,
) -> Result<(Vec<DirectRecord>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(calls.len());
    for list in calls {
        let http = http.clone();
        let base = graph_base.to_owned();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(list.len());
            for call in list {
                let began = Instant::now();
                let mut error = None;
                for r in &call.requests {
                    let method = reqwest::Method::from_bytes(r.method.as_bytes())
                        .unwrap_or(reqwest::Method::GET);
                    let mut req = http.request(method, format!("{base}{}", r.uri));
                    if let Some(t) = r.uti.as_ref().and_then(|u| tokens.get(u)) {
                        req = req.bearer_auth(t);
                    }
                    // The journal keeps no request headers. The connector asks Outlook for
                    // immutable ids, so the ids in its later paths are immutable ones: replay
                    // that preference, or those paths answer 404 directly.
                    if is_outlook_item_path(&r.uri) {
                        req = req.header("prefer", "IdType=\"ImmutableId\"");
                    }
                    if let Some(b) = &r.body {
                        req = req.header("content-type", "application/json").body(b.clone());
                    }
                    match req.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let _ = resp.bytes().await;
                            // A redirect the client followed counts as the 302 it began as;
                            // otherwise any status other than the connector's is an error.
                            let same =
                                status == r.status || (r.status / 100 == 3 && status / 100 == 2);
                            if !same && error.is_none() {
                                error = Some(format!("http {status} (connector saw {})", r.status));
                            }
                        }
                        Err(_) => error = Some("transport".to_owned()),
                    }
                }
                out.push(DirectRecord { latency: began.elapsed(), error });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("replay task")?);
    }
    Ok((all, started.elapsed()))
}

/// Paths whose ids the connector obtained with `Prefer: IdType="ImmutableId"`.
fn is_outlook_item_path(uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    ["/messages", "/events", "/calendarView", "/mailFolders"].iter().any(|p| path.contains(p))
}
