//! `sharepoint_folder_search`: folders by name (`entityTypes ["driveItem"]`,
//! `IsContainer:true`, then only hits with Graph's `folder` facet). The search itself is shared
//! with the document search ([`super`]).

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
    shaping::{AppliedFilter, MAX_QUERY_CHARS, check_text},
};

/// `sharepoint_folder_search`.
pub static SHAREPOINT_FOLDER_SEARCH: Tool = Tool {
    name: "sharepoint_folder_search",
    title: "SharePoint folder search",
    description: "Find SharePoint and OneDrive folders by name, with their path and site. Every hit has an m365:// URI. Needs the Sites.Read.All permission.",
    needs: &[&[SITES_READ_ALL]],
    governs: &[ResourceKind::DriveItem, ResourceKind::ListItem],
    forbidden_message: Some(permission_message),
};

/// Arguments of `sharepoint_folder_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderSearchArgs {
    /// Words of the folder name (at most 1024 characters); every word must match.
    pub name: String,
    /// Restrict to a site or parent folder: its `https://…sharepoint.com/…` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_url: Option<String>,
    /// Items per page (1–50, default 25, capped by the tenant policy).
    #[serde(default, skip_serializing)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, to continue the same search.
    #[serde(default, skip_serializing)]
    pub cursor: Option<String>,
}

impl ToolArgs for FolderSearchArgs {
    type Valid = SharePointSearch;
    fn validate(self, checks: &Checks) -> Result<SharePointSearch, McpError> {
        let size = page_size(checks, self.limit)?;
        plan_folders(&self, size)
    }
    fn query_text(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// The router entry of `sharepoint_folder_search`.
pub fn folders_route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        SHAREPOINT_FOLDER_SEARCH,
        FolderSearchArgs,
        SharePointSearchResult,
        search
    )
}

fn plan_folders(args: &FolderSearchArgs, size: u32) -> Result<SharePointSearch, McpError> {
    check_text("name", &args.name, MAX_QUERY_CHARS)?;
    let mut kql = vec![Kql::new().terms(&args.name).build(), "IsContainer:true".to_owned()];
    let mut filters = vec![
        AppliedFilter::graph("folders_only", "IsContainer:true"),
        AppliedFilter::connector("folder_facet", "hits without a folder facet removed"),
    ];
    if let Some(url) = &args.site_url {
        let url = site_restriction(url)?;
        kql.push(format!("path:\"{url}\""));
        filters.push(AppliedFilter::graph("site_url", url));
    }
    Ok(SharePointSearch {
        mode: Mode::Folders,
        kql: kql.join(" "),
        filters,
        site_kql: None,
        size,
        cursor: args.cursor.clone(),
        binding_query: serde_json::to_value(args).unwrap_or(Value::Null),
    })
}
