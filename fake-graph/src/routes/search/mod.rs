//! Microsoft Search: `POST /search/query` for `message`, `event`, `chatMessage`, `driveItem`,
//! `listItem`, `list`, `drive`, `site` (graph.md §6). Validation first (one request, allowed
//! entity mixes, size caps, `from = 0` first, no sorting or aggregations where Graph refuses
//! them), then the KQL query runs over what the caller may see — trimming happens before paging,
//! so `total` and `moreResultsAvailable` never count hidden items.
//!
//! Matching never scans: each collection (a mailbox, a calendar, a chat or channel, a drive) has
//! an inverted index in the store; the query gives candidate positions from the postings
//! ([`kql::PostingIndex::candidates`]), which are verified with the compiled [`kql::Query`] in
//! position order, so the hits, their order and the totals equal a full scan's (`tests.rs`
//! checks it against the scan oracle).
//!
//! One module per workload builds the hits: `outlook` (messages, events), `chats` (chat and
//! channel messages), `sharepoint` (drive items, list items, sites, drives, lists).

mod chats;
mod outlook;
mod sharepoint;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};

use self::{
    chats::chat_hits,
    outlook::{event_hits, message_hits},
    sharepoint::sharepoint_hits,
};
use super::{Ctx, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult},
    kql,
};

#[derive(Deserialize)]
struct Body {
    requests: Vec<SearchRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    #[serde(default)]
    entity_types: Vec<String>,
    #[serde(default)]
    query: Option<QueryPart>,
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    sort_properties: Option<Vec<Value>>,
    #[serde(default)]
    aggregations: Option<Vec<Value>>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPart {
    #[serde(default)]
    query_string: Option<String>,
}

fn bad(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

const SHAREPOINT: &[&str] = &["driveitem", "listitem", "list", "drive", "site", "externalitem"];

pub fn query(ctx: &Ctx<'_>) -> GraphResult {
    let body: Body = serde_json::from_slice(ctx.body)
        .map_err(|e| bad(format!("Unable to read the search request: {e}")))?;
    if body.requests.len() != 1 {
        return Err(bad("Exactly one search request is supported per call."));
    }
    let req = &body.requests[0];
    if req.entity_types.is_empty() {
        return Err(bad("Requested entity types must not be empty."));
    }
    let kinds: Vec<String> = req.entity_types.iter().map(|e| e.to_ascii_lowercase()).collect();
    let unique: HashSet<&str> = kinds.iter().map(String::as_str).collect();
    let known = [
        "message",
        "event",
        "chatmessage",
        "person",
        "driveitem",
        "listitem",
        "list",
        "drive",
        "site",
        "externalitem",
        "acronym",
        "bookmark",
        "qna",
    ];
    if let Some(unknown) = kinds.iter().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!("Requested entity type '{unknown}' is not supported.")));
    }
    let alone = ["message", "event", "chatmessage", "person"];
    let family_ok = if unique.iter().any(|k| alone.contains(k)) {
        unique.len() == 1
    } else {
        unique.iter().all(|k| SHAREPOINT.contains(k))
            || unique.iter().all(|k| ["acronym", "bookmark", "qna"].contains(k))
    };
    if !family_ok {
        return Err(bad(format!(
            "The entity types combination '{}' is not supported.",
            req.entity_types.join(", ")
        )));
    }
    let outlookish = unique.iter().any(|k| ["message", "event", "chatmessage"].contains(k));
    if let Some(t) = ctx.store.tenant(ctx.caller.tid)
        && t.0.kind == fixtures::TenantKind::Consumer
    {
        return Err(bad("Search is not supported for personal Microsoft accounts."));
    }
    let qs = req.query.as_ref().and_then(|q| q.query_string.clone()).unwrap_or_default();
    if qs.trim().is_empty() {
        return Err(bad("The query string must not be empty."));
    }
    let from = req.from.unwrap_or(0);
    let size = req.size.unwrap_or(25);
    let max = if outlookish { 25 } else { 500 };
    if from < 0 {
        return Err(bad("The value of 'from' must not be negative."));
    }
    if !(1..=max).contains(&size) {
        return Err(bad(format!(
            "The value of 'size' must be between 1 and {max} for the requested entity types."
        )));
    }
    if outlookish && req.sort_properties.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(bad("Sorting is not supported for the requested entity types."));
    }
    if req.aggregations.as_ref().is_some_and(|a| !a.is_empty())
        && unique.iter().any(|k| ["message", "event", "chatmessage", "site", "drive"].contains(k))
    {
        return Err(bad("Aggregations are not supported for the requested entity types."));
    }
    // Permissions per entity type.
    for k in &unique {
        let perm = match *k {
            "message" => &perms::SEARCH_MESSAGES,
            "event" => &perms::SEARCH_EVENTS,
            "chatmessage" => &perms::SEARCH_CHAT,
            "driveitem" | "drive" => &perms::SEARCH_DRIVE_ITEMS,
            "listitem" | "list" | "site" => &perms::SEARCH_SITES,
            _ => {
                return Err(bad(format!(
                    "Requested entity type '{k}' is not supported by fake-graph."
                )));
            }
        };
        ctx.caller.require(perm)?;
    }
    let kind = kinds[0].clone();
    if ["message", "event"].contains(&kind.as_str()) {
        let key = (ctx.caller.tid, ctx.caller.oid, kind.clone(), qs.clone());
        let mut seen = ctx.shared.search_first_pages.lock().unwrap_or_else(|e| e.into_inner());
        if from == 0 {
            seen.insert(key);
        } else if !seen.contains(&key) {
            return Err(bad("The first page of a message or event search must start at 'from' 0."));
        }
    }
    let expr = kql::parse(&qs).map_err(|e| bad(format!("Invalid query string: {e}")))?;
    let (from, size) = (from as usize, size as usize);
    // Hits are built lazily so that only the requested page is rendered.
    let (total_matches, hits) = match kind.as_str() {
        "message" => message_hits(ctx, &expr, from, size)?,
        "event" => event_hits(ctx, &expr, from, size)?,
        "chatmessage" => chat_hits(ctx, &expr, from, size)?,
        _ => sharepoint_hits(ctx, &expr, &unique, from, size)?,
    };
    let terms = expr.highlight_terms();
    let page: Vec<Value> = hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let mut resource = h.resource;
            if let (Some(fields), Value::Object(map)) = (&req.fields, &mut resource) {
                map.retain(|k, _| k.starts_with('@') || k == "id" || fields.iter().any(|f| f.eq_ignore_ascii_case(k)));
            }
            json!({"hitId": h.hit_id, "rank": from + i + 1, "summary": kql::summary(&h.summary_text, &terms), "resource": resource})
        })
        .collect();
    let more = from + page.len() < total_matches;
    let total = if outlookish { page.len() } else { total_matches };
    let mut container = json!({"total": total, "moreResultsAvailable": more});
    if !page.is_empty() {
        container["hits"] = json!(page);
    }
    Ok(json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#search",
        "value": [{"searchTerms": kql::tokenize(&qs).into_iter().take(8).collect::<Vec<_>>(), "hitsContainers": [container]}],
    })))
}

/// One search hit; `summary_text` is highlighted only for the returned page.
struct Hit {
    hit_id: String,
    summary_text: String,
    resource: Value,
}
