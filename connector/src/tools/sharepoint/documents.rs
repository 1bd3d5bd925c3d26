//! `sharepoint_search`: documents and pages (`entityTypes ["driveItem","listItem"]`,
//! `isDocument=true`), filtered by site, file types and modification date, with matching sites
//! on request. The search itself is shared with the folder search ([`super`]).

use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Mode, SITES_READ_ALL, SharePointSearch, SharePointSearchResult, page_size, permission_message,
    search, site_restriction,
};
use crate::domain::uri::ResourceKind;
use crate::graph::query::kql::Kql;
use crate::tools::{
    Connector,
    pipeline::{Checks, Tool, ToolArgs},
    shaping::{AppliedFilter, MAX_QUERY_CHARS, check_text, refuse_filter},
};

/// `sharepoint_search`.
pub static SHAREPOINT_SEARCH: Tool = Tool {
    name: "sharepoint_search",
    title: "SharePoint search",
    description: "Search SharePoint and OneDrive documents and pages the signed-in user can open, by keywords, optionally restricted to a site or folder URL, file types and a modified-after date. Every hit has an m365:// URI for read_resource. Needs the Sites.Read.All permission.",
    needs: &[&[SITES_READ_ALL]],
    governs: &[ResourceKind::DriveItem, ResourceKind::ListItem],
    forbidden_message: Some(permission_message),
};

const MAX_FILE_TYPES: usize = 10;

/// Arguments of `sharepoint_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharePointSearchArgs {
    /// Keywords to look for in document names and contents (at most 1024 characters). Every
    /// word must match; quotes and search operators are treated as plain words.
    pub query: String,
    /// Restrict to a site or folder: its `https://…sharepoint.com/…` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_url: Option<String>,
    /// Restrict to file extensions, e.g. `["docx", "pdf"]` (at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_types: Option<Vec<String>>,
    /// Only items modified on or after this date (`YYYY-MM-DD`, or an RFC 3339 date-time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
    /// Also list matching SharePoint sites (first page only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_sites: Option<bool>,
    /// Items per page (1–50, default 25, capped by the tenant policy).
    #[serde(default, skip_serializing)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, to continue the same search.
    #[serde(default, skip_serializing)]
    pub cursor: Option<String>,
}

impl ToolArgs for SharePointSearchArgs {
    type Valid = SharePointSearch;
    fn validate(self, checks: &Checks) -> Result<SharePointSearch, McpError> {
        let size = page_size(checks, self.limit)?;
        plan_documents(&self, size)
    }
    fn query_text(&self) -> Option<&str> {
        Some(&self.query)
    }
}

/// The router entry of `sharepoint_search`.
pub fn documents_route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        SHAREPOINT_SEARCH,
        SharePointSearchArgs,
        SharePointSearchResult,
        search
    )
}

fn plan_documents(args: &SharePointSearchArgs, size: u32) -> Result<SharePointSearch, McpError> {
    check_text("query", &args.query, MAX_QUERY_CHARS)?;
    let mut kql = vec![Kql::new().terms(&args.query).build(), "isDocument=true".to_owned()];
    let mut filters = vec![AppliedFilter::graph("documents_only", "isDocument=true")];
    if let Some(url) = &args.site_url {
        let url = site_restriction(url)?;
        kql.push(format!("path:\"{url}\""));
        filters.push(AppliedFilter::graph("site_url", url));
    }
    if let Some(types) = &args.file_types {
        let types = file_types(types)?;
        if !types.is_empty() {
            let ors: Vec<String> = types.iter().map(|t| format!("filetype:{t}")).collect();
            kql.push(format!("({})", ors.join(" OR ")));
            filters.push(AppliedFilter::graph("file_types", types.join(",")));
        }
    }
    if let Some(date) = &args.modified_after {
        let date = day("modified_after", date)?;
        kql.push(format!("LastModifiedTime>={date}"));
        filters.push(AppliedFilter::graph("modified_after", date));
    }
    Ok(SharePointSearch {
        mode: Mode::Documents,
        kql: kql.join(" "),
        filters,
        site_kql: args
            .include_sites
            .unwrap_or(false)
            .then(|| Kql::new().terms(&args.query).build()),
        size,
        cursor: args.cursor.clone(),
        binding_query: serde_json::to_value(args).unwrap_or(Value::Null),
    })
}

fn file_types(types: &[String]) -> Result<Vec<String>, McpError> {
    if types.len() > MAX_FILE_TYPES {
        return Err(refuse_filter("file_types", format!("at most {MAX_FILE_TYPES} types")));
    }
    types
        .iter()
        .map(|t| {
            let t = t.trim().trim_start_matches('.').to_ascii_lowercase();
            if (1..=10).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(t)
            } else {
                Err(refuse_filter("file_types", "each type is an extension such as docx or pdf"))
            }
        })
        .collect()
}

/// `YYYY-MM-DD` from a date or an RFC 3339 date-time.
fn day(field: &str, raw: &str) -> Result<String, McpError> {
    let raw = raw.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d.format("%Y-%m-%d").to_string());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string());
    }
    Err(refuse_filter(field, "expected a date as YYYY-MM-DD or an RFC 3339 date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kql_is_built_from_typed_arguments_only() {
        let args = SharePointSearchArgs {
            query: "budget\" OR path:\"https://evil\"".into(),
            site_url: Some("https://contoso.sharepoint.com/sites/Finance/".into()),
            file_types: Some(vec![".XLSX".into(), "pdf".into()]),
            modified_after: Some("2026-01-02T10:00:00Z".into()),
            ..Default::default()
        };
        let plan = plan_documents(&args, 25).expect("valid");
        assert_eq!(
            plan.kql,
            "budget or path https evil isDocument=true \
             path:\"https://contoso.sharepoint.com/sites/Finance\" \
             (filetype:xlsx OR filetype:pdf) LastModifiedTime>=2026-01-02"
        );
    }

    #[test]
    fn filters_that_cannot_be_honoured_are_refused() {
        let base = || SharePointSearchArgs { query: "x".into(), ..Default::default() };
        for args in [
            SharePointSearchArgs { site_url: Some("https://evil.com/sites/x".into()), ..base() },
            SharePointSearchArgs {
                site_url: Some("http://contoso.sharepoint.com/x".into()),
                ..base()
            },
            SharePointSearchArgs {
                site_url: Some("https://contoso.sharepoint.com/x\" OR x".into()),
                ..base()
            },
            SharePointSearchArgs { file_types: Some(vec!["docx OR".into()]), ..base() },
            SharePointSearchArgs { modified_after: Some("yesterday".into()), ..base() },
            SharePointSearchArgs { query: " ".into(), ..Default::default() },
        ] {
            assert!(plan_documents(&args, 25).is_err(), "{args:?}");
        }
    }
}
