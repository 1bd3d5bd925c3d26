//! `read_resource` of a OneDrive or SharePoint file (as text) or folder (its children), and
//! of a SharePoint list item (its fields).

use rmcp::ErrorData as McpError;
use serde_json::{Value, json};

use super::{CHILDREN, ChildRef, MAX_FILE_BYTES, ReadOptions, ReadResult, put, set_text};
use crate::domain::uri::M365Uri;
use crate::extract::{self, ExtractError, FileKind, Limits};
use crate::graph::{
    GraphPath, GraphRequest,
    model::{DriveItem, ListItem, ODataPage},
};
use crate::policy::TenantPolicy;
use crate::tools::{
    mailbox::MailboxZone,
    pipeline::{Scope, ToolError},
    shaping::{DateTimes, SourceStatus, Truncation},
};

/// A drive item to read and the tenant rules its site is checked against.
pub(super) struct DrivePlace<'a> {
    pub uri: &'a M365Uri,
    pub drive: &'a str,
    pub item: &'a str,
    pub rules: &'a TenantPolicy,
}

/// One drive item: metadata first (its site checked before anything else is read), then a
/// folder's children or a file's text.
pub(super) async fn read_drive_item(
    call: &Scope<'_>,
    place: DrivePlace<'_>,
    zone: &MailboxZone,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let DrivePlace { uri, drive, item, .. } = place;
    let session = call.session(&["Files.Read.All"]);
    let req = GraphRequest::get(uri.graph_path()).select(&[
        "id",
        "name",
        "size",
        "file",
        "folder",
        "webUrl",
        "lastModifiedDateTime",
        "lastModifiedBy",
        "parentReference",
    ]);
    let meta = session.get_json::<DriveItem>(&req).await?.body;
    // The site is known only now: check it before any content or child is read.
    place
        .rules
        .content_allowed(Some(drive), meta.site_id())
        .map_err(|w| ToolError::Refused(w.to_string()))?;
    let name = meta.name.clone().unwrap_or_default();
    result.title = Some(name.clone());
    result.web_url = meta.web_url.clone();
    let modified_by = meta.last_modified_by.as_ref().and_then(|b| b.user_name());
    put(result, "modified_by", modified_by.map(str::to_owned));
    if let Some(d) = meta.last_modified_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone))
    {
        result.dates.insert("modified".into(), d);
    }
    if meta.folder {
        // The tenant's max_results caps every list a call returns.
        let listed = CHILDREN.min(place.rules.max_results);
        let req = GraphRequest::get(
            GraphPath::fixed("/drives").segment(drive).then("items").segment(item).then("children"),
        )
        .select(&["id", "name", "size", "folder", "file"])
        .top(listed);
        let children = session.get_json::<ODataPage<DriveItem>>(&req).await?.body;
        for c in children.value {
            let Some(child_name) = c.name else { continue };
            let is_folder = c.folder;
            result.children.push(ChildRef {
                uri: c
                    .id
                    .map(|id| M365Uri::drive_item(drive, id))
                    .filter(M365Uri::is_valid)
                    .map(|u| u.to_string()),
                name: child_name,
                kind: if is_folder { "folder" } else { "file" },
                size: c.size.filter(|_| !is_folder),
            });
        }
        if children.next_link.is_some() {
            result.notes.push(format!("only the first {listed} children are listed"));
        }
        result.text = result
            .children
            .iter()
            .map(|c| format!("{} ({})", c.name, c.kind))
            .collect::<Vec<_>>()
            .join("\n");
        result.sources.push(SourceStatus::ok("folder listing"));
        return Ok(());
    }
    let size = meta.size.unwrap_or(0);
    put(result, "size", Some(size.to_string()));
    let mime = meta.file.and_then(|f| f.mime_type);
    put(result, "content_type", mime.clone());
    if size > MAX_FILE_BYTES {
        return Err(ToolError::Refused(format!(
            "The file {name:?} is {size} bytes; the connector reads files up to {MAX_FILE_BYTES} bytes. \
             Open it in the browser instead{}.",
            result.web_url.as_deref().map(|u| format!(": {u}")).unwrap_or_default()
        )));
    }
    let content_path =
        GraphPath::fixed("/drives").segment(drive).then("items").segment(item).then("content");
    let download = session.download(&content_path).await?;
    let content_type = mime.or(download.body.content_type.clone());
    extract_into(result, download.body.bytes, &name, content_type.as_deref(), options).await?;
    result.sources.push(SourceStatus::ok("file content"));
    Ok(())
}

/// Extracts `bytes` into `result.text`, recording parts and truncation.
pub(super) async fn extract_into(
    result: &mut ReadResult,
    bytes: Vec<u8>,
    name: &str,
    content_type: Option<&str>,
    options: &ReadOptions,
) -> Result<(), ToolError> {
    let kind = FileKind::from_extension(name)
        .or_else(|| content_type.and_then(FileKind::from_mime))
        .or_else(|| FileKind::detect(name, content_type, &bytes))
        .ok_or_else(|| {
            ToolError::Refused(format!(
                "{name:?} is not a format the connector turns into text (docx, xlsx, pptx, pdf, csv, md, txt, html)."
            ))
        })?;
    let limits = Limits { max_output_chars: options.max_chars as usize, ..Limits::default() };
    let extracted = extract::extract_blocking(bytes, kind, options.selection.clone(), limits)
        .await
        .map_err(|e| match e {
            ExtractError::InvalidSelection { .. } => ToolError::InvalidArgs(
                McpError::invalid_params(e.to_string(), Some(json!({"field": "pages"}))),
            ),
            other => ToolError::Refused(format!("Could not read {name:?} as text: {other}.")),
        })?;
    result.fields.insert("format".into(), kind.name().into());
    result.total_parts = Some(extracted.total_parts);
    result.text = extracted.to_text();
    if let Some(reason) = extracted.truncated {
        result.truncation = Truncation::because(reason.to_string());
    }
    result.notes.extend(extracted.notes);
    Ok(())
}

/// One list item: its fields as text.
pub(super) async fn read_list_item(
    call: &Scope<'_>,
    uri: &M365Uri,
    zone: &MailboxZone,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Sites.Read.All"]);
    let req = GraphRequest::get(uri.graph_path()).query("$expand", "fields");
    let item = session.get_json::<ListItem>(&req).await?.body;
    result.web_url = item.web_url;
    if let Some(d) = item.last_modified_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone))
    {
        result.dates.insert("modified".into(), d);
    }
    let fields = item.fields.unwrap_or_default();
    result.title = fields.get("Title").and_then(Value::as_str).map(str::to_owned);
    let text: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !k.starts_with('@') && !k.starts_with('_'))
        .map(|(k, v)| {
            format!("{k}: {}", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
        })
        .collect();
    set_text(result, &text.join("\n"), options.max_chars);
    result.sources.push(SourceStatus::ok("list item"));
    Ok(())
}
