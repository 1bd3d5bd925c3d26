//! `read_resource`: one mail (with its attachments), attachment, event, file, list item, chat
//! or chat message, as text (conformance S07, F06, I01–I03, D02).
//!
//! # Design
//! * Input is an `m365://` URI or a pasted web link, parsed by [`parse_link`] **before any
//!   network work**: a refused input is `invalid_params` naming `uri`, with zero egress (F06).
//!   A SharePoint/OneDrive link is resolved through `GET /shares/u!…/driveItem` on the
//!   configured Graph host; the link itself is never fetched.
//! * Each kind asks OBO for exactly its scope (`graph.md` §9.7), plus `MailboxSettings.Read`
//!   for the time zone in the same exchange: mail `Mail.Read`, events `Calendars.Read`, files
//!   `Files.Read.All` (so revoking it stops file reads, R04), list items `Sites.Read.All`,
//!   chats `Chat.Read` ([`target_scope`]). Mail and chats go through `/me` and the chat id only.
//! * Files: metadata first; folders return their children; a file above the size cap is
//!   refused before download; text comes from [`crate::extract`] on the blocking pool with
//!   page/slide/sheet selection. Nothing is cached: every read is fresh Graph traffic (D02).
//! * A mail's attachments are listed with their own URIs; failures to list them are a
//!   per-source status, not a failed read.
//! * Output text is capped (`max_chars`) and the cut is stated in `truncation`.
//!
//! [`read_target`] is shared with MCP `resources/read` (see `resources.rs`).
//!
//! # Layout
//! This file: the tool, its arguments, the policy checks and the dispatch by kind, the
//! result and its text. One file per kind of item: `mail` (messages, attachments),
//! `event`, `file` (drive items, list items, text extraction), `chat`.

mod chat;
mod event;
mod file;
mod mail;

use std::{collections::BTreeMap, ops::RangeInclusive};

use futures::FutureExt;
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Connector,
    pipeline::{Answer, Checks, Scope, Tool, ToolArgs, ToolError, route as tool_route},
    shaping::{DateTimes, SourceStatus, Truncation, truncate_text},
};
use crate::domain::uri::{LinkTarget, M365Uri, ResourceKind, parse_link};
use crate::{
    extract::Selection,
    graph::{
        GraphError, GraphFailure, GraphRequest,
        model::{DriveItem, Recipient},
    },
    policy::{TenantPolicy, Withheld},
};

/// `read_resource`.
pub static READ_RESOURCE: Tool = Tool {
    name: "read_resource",
    title: "Read a Microsoft 365 item",
    description: "Read a mail (with its attachments listed), a mail attachment, a calendar event, a file (docx, xlsx, pptx, pdf, csv, md, txt, html as text, with page/slide/sheet selection), a folder listing, a SharePoint list item, a Teams chat or chat message. Accepts the m365:// URIs from search results and pasted SharePoint/OneDrive, Teams and Outlook web links.",
    needs: &[
        &["Mail.Read"],
        &["Calendars.Read"],
        &["Chat.Read"],
        &["Files.Read.All"],
        &["Sites.Read.All"],
    ],
    governs: &[],
    forbidden_message: None,
};

/// The one Graph permission reading `target` needs (`graph.md` §9.7).
pub fn target_scope(target: &LinkTarget) -> &'static str {
    match target {
        LinkTarget::Share { .. } => "Files.Read.All",
        LinkTarget::Uri(uri) => match uri {
            M365Uri::Mail { .. } => "Mail.Read",
            M365Uri::Event { .. } => "Calendars.Read",
            M365Uri::DriveItem { .. } => "Files.Read.All",
            M365Uri::ListItem { .. } => "Sites.Read.All",
            M365Uri::Chat { .. } => "Chat.Read",
        },
    }
}

/// Default and largest number of characters of text returned.
pub const DEFAULT_MAX_CHARS: u32 = 40_000;
pub const LIMIT_MAX_CHARS: u32 = 200_000;
/// Files larger than this are not downloaded (checked on metadata first, `security.md` E15).
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
const CHAT_MESSAGES: u32 = 50;
const CHILDREN: u32 = 100;

/// Arguments of `read_resource`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadArgs {
    /// An `m365://` URI from a search result, or a SharePoint/OneDrive sharing link, a Teams
    /// chat-message link or an Outlook web link.
    pub uri: String,
    /// Pages (PDF), slides (pptx) or sheets (xlsx) to read, by 1-based position: `"2"` or
    /// `"2-4"`.
    #[serde(default)]
    pub pages: Option<String>,
    /// An xlsx sheet by name.
    #[serde(default)]
    pub sheet: Option<String>,
    /// An xlsx cell range in A1 notation, e.g. `"A1:D20"`.
    #[serde(default)]
    pub cell_range: Option<String>,
    /// Most characters of text to return (default 40000, at most 200000).
    #[serde(default)]
    pub max_chars: Option<u32>,
}

/// An attachment of a mail.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AttachmentRef {
    /// `m365://mail/{id}/attachment/{attachmentId}`: read it with `read_resource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// File name.
    pub name: String,
    /// MIME type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Whether it is an inline image of the body.
    pub inline: bool,
}

/// A child of a folder.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ChildRef {
    /// The child's URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Name.
    pub name: String,
    /// `file` or `folder`.
    pub kind: &'static str,
    /// Size in bytes (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One chat message in a chat listing.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ChatLine {
    /// `m365://chat/{chatId}/message/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Sender display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// When it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<DateTimes>,
    /// The message as plain text.
    pub text: String,
}

/// What `read_resource` returns.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ReadResult {
    /// The canonical `m365://` URI of what was read.
    pub uri: String,
    /// Which kind of resource it is.
    pub kind: ResourceKind,
    /// Subject, file name or chat topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Browser link, for the user (never fetched by the connector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Other facts: `from`, `to`, `cc`, `location`, `organizer`, `content_type`, `size`…
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Dates: `received`, `sent`, `start`, `end`, `modified`, in UTC and the mailbox zone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dates: BTreeMap<String, DateTimes>,
    /// The content as text (body, file text, list-item fields).
    pub text: String,
    /// For paged documents: the parts (pages, slides, sheets) in the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_parts: Option<u32>,
    /// Attachments of a mail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// Children of a folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRef>,
    /// Messages of a chat, newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ChatLine>,
    /// Whether text was cut, and why.
    pub truncation: Truncation,
    /// Each Graph source and whether it answered.
    pub sources: Vec<SourceStatus>,
    /// Remarks (time zone, extraction notes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The parsed options of a read.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub selection: Selection,
    pub max_chars: u32,
}

impl ReadOptions {
    pub fn from_args(args: &ReadArgs) -> Result<Self, McpError> {
        let invalid = |field: &str, why: &str| {
            McpError::invalid_params(format!("`{field}` {why}"), Some(json!({"field": field})))
        };
        let mut selection = Selection::all();
        if let Some(p) = &args.pages {
            selection.pages = Some(page_range(p).ok_or_else(|| {
                invalid("pages", "must be a page number or a range such as 2-4 (1-based)")
            })?);
        }
        if let Some(sheet) = &args.sheet {
            if sheet.trim().is_empty() || sheet.chars().count() > 100 {
                return Err(invalid("sheet", "must be a sheet name of 1–100 characters"));
            }
            selection.sheet = Some(sheet.clone());
        }
        if let Some(range) = &args.cell_range {
            if range.len() > 32
                || !range.chars().all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '$')
            {
                return Err(invalid("cell_range", "must be an A1 range such as A1:D20"));
            }
            selection.cell_range = Some(range.clone());
        }
        let max_chars = match args.max_chars {
            None => DEFAULT_MAX_CHARS,
            Some(0) => return Err(invalid("max_chars", "must be at least 1")),
            Some(n) => n.min(LIMIT_MAX_CHARS),
        };
        Ok(Self { selection, max_chars })
    }
}

fn page_range(text: &str) -> Option<RangeInclusive<u32>> {
    let text = text.trim();
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
    (a >= 1 && a <= b).then_some(a..=b)
}

/// The input refused as a URI: `invalid_params` naming the field.
pub fn invalid_uri(error: &crate::domain::uri::UriError) -> McpError {
    McpError::invalid_params(format!("invalid `uri`: {error}"), Some(json!({"field": "uri"})))
}

/// A read, validated: what to read and how.
#[derive(Debug)]
pub struct ReadRequest {
    pub target: LinkTarget,
    pub options: ReadOptions,
}

impl ToolArgs for ReadArgs {
    type Valid = ReadRequest;
    /// The URI or link is parsed before anything else: refused input causes no OBO and no
    /// egress (F06).
    fn validate(self, _: &Checks) -> Result<ReadRequest, McpError> {
        let target = parse_link(&self.uri).map_err(|e| invalid_uri(&e))?;
        let options = ReadOptions::from_args(&self)?;
        Ok(ReadRequest { target, options })
    }
}

impl Answer for ReadResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// The router entry of `read_resource`.
pub fn route() -> ToolRoute<Connector> {
    tool_route::<ReadArgs, ReadResult>(&READ_RESOURCE, |connector, auth, mut shape, args| {
        async move {
            // The kind of item read, for the audit record, when the URI parses.
            if let Ok(target) = parse_link(&args.uri) {
                shape.0.insert("uri".to_owned(), kind_label(&target));
            }
            let ctx = connector.context();
            ctx.run(&auth, &READ_RESOURCE, shape, args, |call, read| async move {
                read_target(&call, read.target, &read.options).await
            })
            .await
        }
        .boxed()
    })
}

fn kind_label(target: &LinkTarget) -> &'static str {
    match target {
        LinkTarget::Share { .. } => "sharing_link",
        LinkTarget::Uri(uri) => uri.kind().name(),
    }
}

/// Reads `target` as the call's caller.
pub async fn read_target(
    call: &Scope<'_>,
    target: LinkTarget,
    options: &ReadOptions,
) -> Result<ReadResult, ToolError> {
    let ctx = call.ctx;
    let caller = call.caller();
    // The tenant's policy first: a kind of item whose tool is off, or a site outside the
    // allowed ones, costs no token exchange and no Graph call.
    let policy = ctx.policy.current();
    let Some(rules) = policy.enabled_tenant(&caller.tenant_id) else {
        return Err(ToolError::Refused(
            "The Microsoft 365 connector is not enabled for your organization.".into(),
        ));
    };
    let kind = match &target {
        LinkTarget::Share { .. } => ResourceKind::DriveItem,
        LinkTarget::Uri(uri) => uri.kind(),
    };
    kind_enabled(rules, kind).map_err(ToolError::Refused)?;
    match &target {
        LinkTarget::Uri(M365Uri::DriveItem { drive, .. }) if !rules.drives.allows(drive) => {
            return Err(ToolError::Refused(Withheld::Drive.to_string()));
        }
        LinkTarget::Uri(M365Uri::ListItem { site, .. }) => rules
            .content_allowed(None, Some(site))
            .map_err(|w| ToolError::Refused(w.to_string()))?,
        _ => {}
    }
    let rules = rules.clone();
    drop(policy);
    let zone = call.zone().await;
    let uri = match target {
        LinkTarget::Uri(uri) => uri,
        LinkTarget::Share { share_id } => {
            let session = call.session(&["Files.Read.All"]);
            let req = GraphRequest::get(LinkTarget::share_path(&share_id)).select(&[
                "id",
                "name",
                "parentReference",
            ]);
            let found = session.get_json::<DriveItem>(&req).await?.body;
            match (found.drive_id(), found.id.as_deref()) {
                (Some(d), Some(i)) if M365Uri::drive_item(d, i).is_valid() => {
                    M365Uri::drive_item(d, i)
                }
                _ => return Err(ToolError::Graph(GraphFailure::new(GraphError::Decode))),
            }
        }
    };
    if let M365Uri::DriveItem { drive, .. } = &uri
        && !rules.drives.allows(drive)
    {
        // A pasted link resolved to a drive the policy does not allow.
        return Err(ToolError::Refused(Withheld::Drive.to_string()));
    }
    let mut result = ReadResult {
        uri: uri.to_string(),
        kind: uri.kind(),
        title: None,
        web_url: None,
        fields: BTreeMap::new(),
        dates: BTreeMap::new(),
        text: String::new(),
        total_parts: None,
        attachments: Vec::new(),
        children: Vec::new(),
        messages: Vec::new(),
        truncation: Truncation::none(),
        sources: Vec::new(),
        notes: zone.note.iter().cloned().collect(),
    };
    match &uri {
        M365Uri::Mail { message, attachment: None } => {
            mail::read_mail(call, message, &zone, options.max_chars, &mut result).await?
        }
        M365Uri::Mail { attachment: Some(_), .. } => {
            mail::read_attachment(call, &uri, options, &mut result).await?
        }
        M365Uri::Event { .. } => event::read_event(call, &uri, &zone, options, &mut result).await?,
        M365Uri::DriveItem { drive, item } => {
            let place = file::DrivePlace { uri: &uri, drive, item, rules: &rules };
            file::read_drive_item(call, place, &zone, options, &mut result).await?
        }
        M365Uri::ListItem { .. } => {
            file::read_list_item(call, &uri, &zone, options, &mut result).await?
        }
        M365Uri::Chat { chat, message: Some(_) } => {
            chat::read_chat_message(call, &uri, chat, &zone, options, &mut result).await?
        }
        M365Uri::Chat { chat, message: None } => {
            // The tenant's max_results caps every list a call returns.
            let newest = CHAT_MESSAGES.min(rules.max_results);
            chat::read_chat(call, &uri, chat, newest, &zone, options, &mut result).await?
        }
    }
    Ok(result)
}

/// What an item of `kind` is called in a refusal.
fn kind_noun(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Mail => "mail",
        ResourceKind::MailAttachment => "mail attachments",
        ResourceKind::Event => "calendar events",
        ResourceKind::Chat => "Teams chats",
        ResourceKind::ChatMessage => "Teams chat messages",
        ResourceKind::DriveItem => "files",
        ResourceKind::ListItem => "list items",
    }
}

/// `Err(message naming the tools that are off)` when the tenant's policy switched off every
/// tool that governs `kind` ([`Tool::governs`]): switching off mail search for a tenant also
/// stops reading its mail through `read_resource`. Drive and list items stay readable while
/// either SharePoint tool is on.
fn kind_enabled(rules: &TenantPolicy, kind: ResourceKind) -> Result<(), String> {
    let tools: Vec<&str> =
        super::ALL.iter().filter(|t| t.governs.contains(&kind)).map(|t| t.name).collect();
    if tools.is_empty() || tools.iter().any(|t| rules.tools.allows(t)) {
        return Ok(());
    }
    Err(format!(
        "Reading {} is not enabled for your organization: its connector policy switches off {}.",
        kind_noun(kind),
        tools.join(" and ")
    ))
}

fn set_text(result: &mut ReadResult, text: &str, max_chars: u32) {
    let max_bytes =
        text.char_indices().nth(max_chars as usize).map(|(i, _)| i).unwrap_or(text.len());
    let (cut, truncated) = truncate_text(text, max_bytes);
    result.text = cut;
    if truncated {
        result.truncation =
            Truncation::because(format!("text cut at {max_chars} characters (max_chars)"));
    }
}

fn put(result: &mut ReadResult, key: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        result.fields.insert(key.to_owned(), v);
    }
}

/// `Name <address>` of a recipient-shaped value (`{emailAddress:{name,address}}`).
fn address(r: &Recipient) -> Option<String> {
    let e = r.email_address.as_ref()?;
    let name = e.name.as_deref().unwrap_or_default();
    let addr = e.address.as_deref().unwrap_or_default();
    match (name.is_empty(), addr.is_empty()) {
        (true, true) => None,
        (false, true) => Some(name.to_owned()),
        (true, false) => Some(addr.to_owned()),
        (false, false) => Some(format!("{name} <{addr}>")),
    }
}

/// The concise text rendering of a read.
pub fn render(r: &ReadResult) -> String {
    let mut out = String::new();
    if let Some(title) = &r.title {
        out.push_str(&format!("# {title}\n"));
    }
    out.push_str(&format!("{}\n", r.uri));
    for (k, v) in &r.fields {
        out.push_str(&format!("{k}: {v}\n"));
    }
    for (k, d) in &r.dates {
        out.push_str(&format!("{k}: {} ({})\n", d.local, d.utc));
    }
    for a in &r.attachments {
        out.push_str(&format!("attachment: {}", a.name));
        if let Some(uri) = &a.uri {
            out.push_str(&format!(" — {uri}"));
        }
        out.push('\n');
    }
    for c in &r.children {
        out.push_str(&format!("- {} ({})", c.name, c.kind));
        if let Some(uri) = &c.uri {
            out.push_str(&format!(" — {uri}"));
        }
        out.push('\n');
    }
    if r.children.is_empty() && !r.text.is_empty() {
        out.push('\n');
        out.push_str(&r.text);
        out.push('\n');
    }
    for s in r.sources.iter().filter(|s| s.message.is_some()) {
        out.push_str(&format!("[{}: {}]\n", s.source, s.message.as_deref().unwrap_or_default()));
    }
    if let Some(reason) = &r.truncation.reason {
        out.push_str(&format!("[truncated: {reason}]\n"));
    }
    for note in &r.notes {
        out.push_str(&format!("[note: {note}]\n"));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ranges_parse() {
        assert_eq!(page_range("2"), Some(2..=2));
        assert_eq!(page_range("2-4"), Some(2..=4));
        assert_eq!(page_range("0"), None);
        assert_eq!(page_range("4-2"), None);
        assert_eq!(page_range("x"), None);
    }

    #[test]
    fn options_refuse_bad_selections() {
        let base = || ReadArgs { uri: "m365://event/AAA".into(), ..Default::default() };
        assert!(ReadOptions::from_args(&ReadArgs { pages: Some("a-b".into()), ..base() }).is_err());
        assert!(
            ReadOptions::from_args(&ReadArgs { cell_range: Some("A1;DROP".into()), ..base() })
                .is_err()
        );
        assert!(ReadOptions::from_args(&ReadArgs { max_chars: Some(0), ..base() }).is_err());
        let ok =
            ReadOptions::from_args(&ReadArgs { pages: Some("1-2".into()), ..base() }).expect("ok");
        assert_eq!(ok.selection.pages, Some(1..=2));
    }
}
