//! `sharepoint_search` and `sharepoint_folder_search` (conformance S01, S02, R01, R08).
//!
//! # Design
//! Both tools run one Microsoft Search request (`POST /search/query`, `graph.md` §9.1–§9.2)
//! with the OBO scope `Sites.Read.All` only, so revoking it stops them (R01):
//! * documents and pages: `entityTypes ["driveItem","listItem"]` with `isDocument=true`;
//!   sites, when asked for, are a **separate** request (`["site"]`) on the first page, reported
//!   as their own source so a failure there does not lose the documents;
//! * folders: `["driveItem"]` with `IsContainer:true`, then the connector keeps only hits
//!   that carry Graph's `folder` facet (stated as a connector-applied filter).
//!
//! The KQL is built from typed arguments only: the free text becomes quoted terms
//! ([`Kql::terms`](crate::graph::query::kql::Kql::terms): letters and digits, operator keywords lower-cased), file types must be short alphanumerics, the site restriction must be an
//! `https://…sharepoint.com` URL without quotes, the date a real date. `path:` is a relevance
//! filter, not a security boundary (`graph.md` §8.2); the tenant policy's site allow-list is
//! enforced by the connector on the results.
//!
//! # Layout
//! `documents` and `folders` hold each tool's descriptor, arguments and checks; this file
//! holds the search both run, its hits and its answer.
//!
//! Paging is by `from` offset sealed in a cursor bound to the caller and the query.
//! When the OBO exchange or Graph refuses the permission, the answer names `Sites.Read.All`
//! and says why `Sites.Selected` cannot serve a tenant-wide search (R08).

mod documents;
mod folders;

use rmcp::{ErrorData as McpError, schemars};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    cursor::{Cursor, CursorBinding, context_key},
    mailbox::MailboxZone,
    pipeline::{Answer, CallSession, Checks, Scope, ToolError},
    shaping::{
        AppliedFilter, ByteBudget, DEFAULT_RESULT_BUDGET, DateTimes, Page, SourceStatus,
        Truncation, clean_summary, refuse_filter,
    },
};
use crate::domain::uri::M365Uri;
use crate::graph::{GraphFailure, GraphPath, GraphRequest};
use crate::graph::{
    model::{DriveItem, Site},
    query::search::{SearchAnswer, SearchHit},
};

pub use documents::{SHAREPOINT_SEARCH, SharePointSearchArgs, documents_route};
pub use folders::{FolderSearchArgs, SHAREPOINT_FOLDER_SEARCH, folders_route};

/// The one Graph permission both tools ask OBO for.
pub const SITES_READ_ALL: &str = "Sites.Read.All";
const DEFAULT_PAGE: u32 = 25;
const MAX_PAGE: u32 = 50;
const SITE_HITS: u32 = 10;

/// One document, page or folder.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DriveHit {
    /// `m365://drive/{driveId}/item/{itemId}`: pass it to `read_resource`. Absent when Graph
    /// gave no usable ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// File or folder name.
    pub name: String,
    /// `file`, `page` (a `.aspx` site page) or `folder`.
    pub kind: &'static str,
    /// Where it lives, from the library root (e.g. `Project Falcon/Specs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The site id (`host,siteGuid,webGuid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// The browser link (for the user; the connector never fetches it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Size in bytes (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Last modification, in UTC and the mailbox time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTimes>,
    /// Who modified it last (display name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_by: Option<String>,
    /// The matching snippet, as plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// One SharePoint site.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SiteHit {
    /// Site display name.
    pub name: String,
    /// The site id (`host,siteGuid,webGuid`).
    pub site_id: String,
    /// The site's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Site description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The result of both SharePoint tools.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SharePointSearchResult {
    /// Which tool answered (the text names documents or folders); not part of the output.
    #[serde(skip)]
    #[schemars(skip)]
    pub folders: bool,
    /// The hits of this page, most relevant first.
    pub items: Vec<DriveHit>,
    /// Matching sites (`sharepoint_search` with `include_sites`, first page only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteHit>,
    /// Paging: `has_more`, counts, the next cursor.
    pub page: Page,
    /// Every filter that shaped the results, and who applied it.
    pub filters: Vec<AppliedFilter>,
    /// Each Graph source and whether it answered.
    pub sources: Vec<SourceStatus>,
    /// Whether the byte budget cut the page.
    pub truncation: Truncation,
    /// Remarks (e.g. the time zone used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Documents,
    Folders,
}

/// A validated SharePoint search: everything both tools share once the arguments are checked.
pub struct SharePointSearch {
    mode: Mode,
    kql: String,
    filters: Vec<AppliedFilter>,
    /// The site search's KQL (the same keywords, without document-only restrictions), when
    /// sites are asked for.
    site_kql: Option<String>,
    /// The page size, capped by the tenant policy.
    size: u32,
    cursor: Option<String>,
    binding_query: Value,
}

impl Answer for SharePointSearchResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// A site or folder URL for `path:"…"`: https, a SharePoint host, nothing that could close
/// the quoted value or add another restriction.
fn site_restriction(raw: &str) -> Result<String, McpError> {
    let raw = raw.trim().trim_end_matches('/');
    let refuse = |why: &str| refuse_filter("site_url", why.to_owned());
    if raw.len() > 1024 || raw.chars().any(|c| c.is_control() || matches!(c, '"' | '\\')) {
        return Err(refuse("must be a plain URL without quotes or control characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| refuse("is not a URL"))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https"
        || !host.ends_with(".sharepoint.com")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.port().is_some()
    {
        return Err(refuse(
            "must be an https://….sharepoint.com site or folder address without query or fragment",
        ));
    }
    Ok(raw.to_owned())
}

fn page_size(checks: &Checks, limit: Option<u32>) -> Result<u32, McpError> {
    let policy_max = checks.max_results.clamp(1, MAX_PAGE);
    match limit {
        None => Ok(DEFAULT_PAGE.min(policy_max)),
        Some(0) => Err(refuse_filter("limit", "must be at least 1")),
        Some(n) => Ok(n.min(policy_max)),
    }
}

/// The user-facing message when SharePoint access is refused (R01, R08).
pub fn permission_message(_failure: &GraphFailure) -> String {
    // Only a Graph 403 comes here: a missing consent is a token error, which the pipeline
    // answers per scope with the admin-consent URL.
    format!(
        "SharePoint search needs the delegated Microsoft Graph permission {SITES_READ_ALL}, which \
         the connector does not have for you. Search runs across the whole tenant, so a \
         Sites.Selected grant (access to chosen sites only) cannot serve it. An administrator \
         can grant {SITES_READ_ALL} to the connector in Microsoft Entra admin center \
         (Enterprise applications)."
    )
}

/// Both tools' body: one search request (plus the sites on the first page), the policy's
/// site and drive rules applied to the hits.
async fn search(
    call: Scope<'_>,
    plan: SharePointSearch,
) -> Result<SharePointSearchResult, ToolError> {
    let ctx = call.ctx;
    let caller = call.caller();
    let tool = call.tool.name;
    let size = plan.size;
    let binding = CursorBinding::new(caller, tool, &plan.binding_query);
    let key = context_key(ctx);
    let state = Cursor::open_arg(&key, &binding, plan.cursor.as_deref())?;
    let from = state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64).unwrap_or(0);
    if from > 10_000 {
        return Err(refuse_filter("cursor", "the search cannot page further").into());
    }
    let session = call.session(&[SITES_READ_ALL]);
    let entity_types = match plan.mode {
        Mode::Documents => json!(["driveItem", "listItem"]),
        Mode::Folders => json!(["driveItem"]),
    };
    let body = json!({"requests": [{
        "entityTypes": entity_types,
        "query": {"queryString": plan.kql},
        "from": from,
        "size": size,
    }]});
    let req = GraphRequest::query_post(GraphPath::fixed("/search/query"), body)
        .map_err(|e| ToolError::Graph(GraphFailure::new(e)))?;
    let response = session.post_json::<SearchAnswer<DriveItem>>(&req).await?;
    let mut sources = vec![SourceStatus::ok("search")];

    // The zone after the search: the search's failure is the one worth reporting.
    let zone = call.zone().await;
    let policy = ctx.policy.current();
    // A tenant the policy no longer lists or enables reads nothing (never "no restriction").
    let Some(rules) = policy.enabled_tenant(&caller.tenant_id).cloned() else {
        return Err(ToolError::Refused(
            "The Microsoft 365 connector is not enabled for your organization.".into(),
        ));
    };
    drop(policy);
    let mut filters = plan.filters;
    if let crate::policy::Allow::Only(_) = &rules.sites {
        filters
            .push(AppliedFilter::connector("policy_sites", "sites allowed by your organization"));
    }
    if let crate::policy::Allow::Only(_) = &rules.drives {
        filters
            .push(AppliedFilter::connector("policy_drives", "drives allowed by your organization"));
    }
    let mut site_unknown = 0usize;

    let (hits, graph_more, total) = match response.body.into_first_container() {
        Some(c) => (c.hits, c.more_results_available.unwrap_or(false), c.total),
        None => (Vec::new(), false, None),
    };
    let mut budget = ByteBudget::new(DEFAULT_RESULT_BUDGET);
    let mut items = Vec::new();
    let mut consumed = 0u64;
    for hit in &hits {
        let Some(item) = drive_hit(hit, &zone) else {
            consumed += 1;
            continue;
        };
        if plan.mode == Mode::Folders && item.kind != "folder" {
            consumed += 1;
            continue;
        }
        let drive = hit.resource.as_ref().and_then(DriveItem::drive_id);
        match rules.content_allowed(drive, item.site_id.as_deref()) {
            Ok(()) => {}
            Err(withheld) => {
                site_unknown += usize::from(withheld == crate::policy::Withheld::SiteUnknown);
                consumed += 1;
                continue;
            }
        }
        if !budget.admit(&item) {
            break;
        }
        consumed += 1;
        items.push(item);
    }
    let truncation = budget.truncation();
    let has_more = graph_more || consumed < hits.len() as u64;
    let next_from = from + consumed.max(1);
    let next_cursor = has_more.then(|| Cursor::seal(&key, &binding, json!({"from": next_from})));

    let mut sites = Vec::new();
    if let Some(site_kql) = plan.site_kql.as_deref().filter(|_| from == 0) {
        match search_sites(&session, site_kql).await {
            Ok(found) => {
                sources.push(SourceStatus::ok("site search"));
                sites = found.into_iter().filter(|s| rules.site_allowed(&s.site_id)).collect();
            }
            Err(failure) => {
                if let Some(claims) = failure.claims_challenge() {
                    call.auth.challenge.request_claims(claims);
                }
                sources.push(SourceStatus::failed("site search", failure.user_message()));
            }
        }
    }

    let mut notes = Vec::new();
    notes.extend(zone.note.clone());
    if site_unknown > 0 {
        notes.push(format!(
            "{site_unknown} result{} withheld: your organization restricts which sites may be \
             read and Graph did not say which site {} to",
            if site_unknown == 1 { " was" } else { "s were" },
            if site_unknown == 1 { "it belongs" } else { "they belong" }
        ));
    }
    let results = SharePointSearchResult {
        folders: plan.mode == Mode::Folders,
        page: Page { has_more, returned: items.len() as u32, total_estimate: total, next_cursor },
        items,
        sites,
        filters,
        sources,
        truncation,
        notes,
    };
    Ok(results)
}

async fn search_sites(session: &CallSession, kql: &str) -> Result<Vec<SiteHit>, ToolError> {
    let body = json!({"requests": [{
        "entityTypes": ["site"],
        "query": {"queryString": kql},
        "from": 0,
        "size": SITE_HITS,
    }]});
    let req = GraphRequest::query_post(GraphPath::fixed("/search/query"), body)
        .map_err(|e| ToolError::Graph(GraphFailure::new(e)))?;
    let response = session.post_json::<SearchAnswer<Site>>(&req).await?;
    let hits = response.body.into_first_container().map(|c| c.hits).unwrap_or_default();
    let sites = hits
        .into_iter()
        .filter_map(|h| {
            let r = h.resource?;
            Some(SiteHit {
                name: r.display_name.or(r.name)?,
                site_id: r.id?,
                web_url: r.web_url,
                description: r.description.filter(|d| !d.is_empty()),
            })
        })
        .collect();
    Ok(sites)
}

/// One search hit as a [`DriveHit`]; `None` for hits that are not drive items.
fn drive_hit(hit: &SearchHit<DriveItem>, zone: &MailboxZone) -> Option<DriveHit> {
    let r = hit.resource.as_ref()?;
    let name = r.name.clone()?;
    let kind = if r.folder {
        "folder"
    } else if name.to_ascii_lowercase().ends_with(".aspx") {
        "page"
    } else {
        "file"
    };
    let parent = r.parent_reference.as_ref();
    let uri = match (parent.and_then(|p| p.drive_id.as_deref()), r.id.as_deref()) {
        (Some(drive), Some(item)) => {
            let uri = M365Uri::drive_item(drive.to_owned(), item.to_owned());
            uri.is_valid().then(|| uri.to_string())
        }
        _ => None,
    };
    let path = parent.and_then(|p| p.path.as_deref()).map(|p| {
        let rel = p.split_once("root:").map(|(_, rest)| rest).unwrap_or(p);
        rel.trim_start_matches('/').to_owned()
    });
    Some(DriveHit {
        uri,
        name,
        kind,
        path: path.filter(|p| !p.is_empty()),
        site_id: parent.and_then(|p| p.site_id.clone()),
        web_url: r.web_url.clone(),
        size: r.size.filter(|_| kind != "folder"),
        modified: r.last_modified_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
        modified_by: r.last_modified_by.as_ref().and_then(|b| b.user_name()).map(str::to_owned),
        summary: hit.summary.as_deref().map(clean_summary).filter(|s| !s.is_empty()),
    })
}

fn render(r: &SharePointSearchResult) -> String {
    let noun = match r.folders {
        false => "document",
        true => "folder",
    };
    let mut out = format!(
        "{} {noun}{} on this page{}.",
        r.page.returned,
        if r.page.returned == 1 { "" } else { "s" },
        if r.page.has_more { "; more are available (pass next_cursor as cursor)" } else { "" }
    );
    for (i, item) in r.items.iter().enumerate() {
        out.push_str(&format!("\n{}. {}", i + 1, item.name));
        if let Some(path) = &item.path {
            out.push_str(&format!(" (in {path})"));
        }
        if let Some(m) = &item.modified {
            out.push_str(&format!(" — modified {}", m.local));
        }
        if let Some(uri) = &item.uri {
            out.push_str(&format!("\n   {uri}"));
        }
    }
    if !r.sites.is_empty() {
        out.push_str("\nSites:");
        for s in &r.sites {
            out.push_str(&format!("\n- {}", s.name));
            if let Some(url) = &s.web_url {
                out.push_str(&format!(" ({url})"));
            }
        }
    }
    for s in r.sources.iter().filter(|s| s.message.is_some()) {
        out.push_str(&format!("\n[{}: {}]", s.source, s.message.as_deref().unwrap_or_default()));
    }
    if let Some(reason) = &r.truncation.reason {
        out.push_str(&format!("\n[truncated: {reason}]"));
    }
    for note in &r.notes {
        out.push_str(&format!("\n[note: {note}]"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_hits_decode_leniently_from_a_search_answer() {
        let body = json!({"value": [{"hitsContainers": [{
            "moreResultsAvailable": true,
            "total": 7,
            "hits": [
                {"hitId": "1", "summary": "<c0>Budget</c0> plan", "resource": {
                    "@odata.type": "#microsoft.graph.driveItem",
                    "id": "01ITEM", "name": "Budget.xlsx", "size": 1234,
                    "webUrl": "https://contoso.sharepoint.com/x",
                    "lastModifiedDateTime": "2026-06-01T16:00:00Z",
                    "lastModifiedBy": {"user": {"displayName": "Megan"}},
                    "parentReference": {"driveId": "b!drive", "siteId": "site-1",
                        "path": "/drives/b!drive/root:/Finance"},
                    "fields": {"ignored": [1, 2, {"deep": null}]}
                }},
                {"hitId": "2", "resource": {"name": "Plans", "folder": null, "size": 9,
                    "webUrl": 42, "parentReference": {"driveId": 7}}},
                {"hitId": "3", "summary": null, "resource": null}
            ]
        }]}]});
        let answer: SearchAnswer<DriveItem> =
            serde_json::from_value(body).expect("a search answer");
        let container = answer.into_first_container().expect("a container");
        assert_eq!((container.more_results_available, container.total), (Some(true), Some(7)));
        let zone = MailboxZone::resolve(Some("Pacific Standard Time"));
        let hits: Vec<Option<DriveHit>> =
            container.hits.iter().map(|h| drive_hit(h, &zone)).collect();
        let file = hits[0].as_ref().expect("a file");
        assert_eq!((file.name.as_str(), file.kind), ("Budget.xlsx", "file"));
        assert_eq!(file.path.as_deref(), Some("Finance"));
        assert_eq!(file.size, Some(1234));
        assert_eq!(file.modified_by.as_deref(), Some("Megan"));
        assert_eq!(file.site_id.as_deref(), Some("site-1"));
        assert!(file.uri.as_deref().is_some_and(|u| u.starts_with("m365://drive/")));
        assert_eq!(file.summary.as_deref(), Some("Budget plan"));
        // A `folder` facet counts even when null; mistyped fields are absent, not errors.
        let folder = hits[1].as_ref().expect("a folder");
        assert_eq!(folder.kind, "folder");
        assert_eq!(
            (folder.size, folder.web_url.as_deref(), folder.uri.as_deref()),
            (None, None, None)
        );
        assert!(hits[2].is_none());
    }
}
