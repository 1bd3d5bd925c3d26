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

use std::{collections::BTreeMap, ops::RangeInclusive};

use base64::Engine as _;
use futures::FutureExt;
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Connector,
    mailbox::MailboxZone,
    pipeline::{Answer, Checks, Scope, Tool, ToolArgs, ToolError, route as tool_route},
    shaping::{DateTimes, SourceStatus, Truncation, truncate_text},
};
use crate::domain::uri::{LinkTarget, M365Uri, ResourceKind, parse_link};
use crate::{
    extract::{self, ExtractError, FileKind, Limits, Selection},
    graph::{
        GraphError, GraphFailure, GraphPath, GraphRequest,
        model::{
            Attachment, ChatMessage, DriveItem, Event, ItemBody, ListItem, Message, ODataPage,
            Recipient,
        },
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
            read_mail(call, message, &zone, options.max_chars, &mut result).await?
        }
        M365Uri::Mail { attachment: Some(_), .. } => {
            let session = call.session(&["Mail.Read"]);
            let req = GraphRequest::get(uri.graph_path()).prefer("IdType=\"ImmutableId\"");
            let body = session.get_json::<Attachment>(&req).await?.body;
            let name = body.name.unwrap_or_else(|| "attachment".into());
            result.title = Some(name.clone());
            let content_type = body.content_type;
            result.fields.extend(content_type.clone().map(|c| ("content_type".into(), c)));
            let bytes = body
                .content_bytes
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .ok_or_else(|| {
                    ToolError::Refused(format!(
                        "The attachment {name:?} has no readable content (it may be an item or a link attachment)."
                    ))
                })?;
            extract_into(&mut result, bytes, &name, content_type.as_deref(), options).await?;
            result.sources.push(SourceStatus::ok("attachment"));
        }
        M365Uri::Event { .. } => {
            let session = call.session(&["Calendars.Read"]);
            let req = GraphRequest::get(uri.graph_path())
                .select(&[
                    "id",
                    "subject",
                    "start",
                    "end",
                    "location",
                    "organizer",
                    "attendees",
                    "body",
                    "isAllDay",
                    "isCancelled",
                    "webLink",
                    "showAs",
                ])
                .prefer("outlook.body-content-type=\"text\"")
                .prefer("outlook.timezone=\"UTC\"")
                .prefer("IdType=\"ImmutableId\"");
            let event = session.get_json::<Event>(&req).await?.body;
            result.title = event.subject.clone();
            result.web_url = event.web_link.clone();
            for (key, time) in [("start", &event.start), ("end", &event.end)] {
                let time = time.as_ref().and_then(|t| t.date_time.as_deref());
                if let Some(d) = time.and_then(|t| DateTimes::parse(t, &zone)) {
                    result.dates.insert(key.into(), d);
                }
            }
            put(&mut result, "location", event.location_name().map(str::to_owned));
            put(&mut result, "organizer", event.organizer.as_ref().and_then(address));
            put(&mut result, "show_as", event.show_as.clone());
            if event.is_all_day == Some(true) {
                put(&mut result, "all_day", Some("true".into()));
            }
            if event.is_cancelled == Some(true) {
                put(&mut result, "cancelled", Some("true".into()));
            }
            let attendees: Vec<String> = event.attendees.iter().filter_map(address).collect();
            put(&mut result, "attendees", (!attendees.is_empty()).then(|| attendees.join(", ")));
            set_text(&mut result, &body_text(event.body.as_ref()), options.max_chars);
            result.sources.push(SourceStatus::ok("event"));
        }
        M365Uri::DriveItem { drive, item } => {
            let place = DrivePlace { uri: &uri, drive, item, rules: &rules };
            read_drive_item(call, place, &zone, options, &mut result).await?
        }
        M365Uri::ListItem { .. } => {
            let session = call.session(&["Sites.Read.All"]);
            let req = GraphRequest::get(uri.graph_path()).query("$expand", "fields");
            let item = session.get_json::<ListItem>(&req).await?.body;
            result.web_url = item.web_url;
            if let Some(d) =
                item.last_modified_date_time.as_deref().and_then(|t| DateTimes::parse(t, &zone))
            {
                result.dates.insert("modified".into(), d);
            }
            let fields = item.fields.unwrap_or_default();
            result.title = fields.get("Title").and_then(Value::as_str).map(str::to_owned);
            let text: Vec<String> = fields
                .iter()
                .filter(|(k, _)| !k.starts_with('@') && !k.starts_with('_'))
                .map(|(k, v)| {
                    format!(
                        "{k}: {}",
                        v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            set_text(&mut result, &text.join("\n"), options.max_chars);
            result.sources.push(SourceStatus::ok("list item"));
        }
        M365Uri::Chat { chat, message: Some(_) } => {
            let session = call.session(&["Chat.Read"]);
            let req = GraphRequest::get(uri.graph_path());
            let message = session.get_json::<ChatMessage>(&req).await?.body;
            let web_url = message.web_url.clone();
            let line = chat_line(chat, message, &zone).await;
            result.title =
                Some(format!("Message from {}", line.from.as_deref().unwrap_or("unknown sender")));
            put(&mut result, "from", line.from.clone());
            if let Some(sent) = line.sent.clone() {
                result.dates.insert("sent".into(), sent);
            }
            result.web_url = web_url;
            set_text(&mut result, &line.text, options.max_chars);
            result.sources.push(SourceStatus::ok("chat message"));
        }
        M365Uri::Chat { chat, message: None } => {
            let session = call.session(&["Chat.Read"]);
            // The tenant's max_results caps every list a call returns.
            let newest = CHAT_MESSAGES.min(rules.max_results);
            let req = GraphRequest::get(uri.graph_path()).top(newest);
            let page = session.get_json::<ODataPage<ChatMessage>>(&req).await?.body;
            let mut lines = Vec::new();
            for m in page.value {
                if m.message_type.as_deref().is_some_and(|t| t != "message") {
                    continue;
                }
                lines.push(chat_line(chat, m, &zone).await);
            }
            let text: Vec<String> = lines
                .iter()
                .map(|l| {
                    format!(
                        "{} ({}): {}",
                        l.from.as_deref().unwrap_or("?"),
                        l.sent.as_ref().map(|s| s.local.as_str()).unwrap_or("?"),
                        l.text
                    )
                })
                .collect();
            set_text(&mut result, &text.join("\n"), options.max_chars);
            if page.next_link.is_some() {
                result.notes.push(format!("only the {newest} newest messages are shown"));
            }
            result.messages = lines;
            result.sources.push(SourceStatus::ok("chat messages"));
        }
    }
    Ok(result)
}

async fn read_mail(
    call: &Scope<'_>,
    message: &str,
    zone: &MailboxZone,
    max_chars: u32,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Mail.Read"]);
    let req = GraphRequest::get(GraphPath::fixed("/me/messages").segment(message))
        .select(&[
            "id",
            "subject",
            "from",
            "toRecipients",
            "ccRecipients",
            "receivedDateTime",
            "sentDateTime",
            "body",
            "hasAttachments",
            "webLink",
            "importance",
        ])
        .prefer("outlook.body-content-type=\"text\"")
        .prefer("IdType=\"ImmutableId\"");
    let mail = session.get_json::<Message>(&req).await?.body;
    result.title = mail.subject.clone();
    result.web_url = mail.web_link.clone();
    put(result, "from", mail.from.as_ref().and_then(address));
    for (key, recipients) in [("to", &mail.to_recipients), ("cc", &mail.cc_recipients)] {
        let list: Vec<String> = recipients.iter().filter_map(address).collect();
        put(result, key, (!list.is_empty()).then(|| list.join(", ")));
    }
    put(result, "importance", mail.importance.clone().filter(|i| i != "normal"));
    for (key, time) in [("received", &mail.received_date_time), ("sent", &mail.sent_date_time)] {
        if let Some(d) = time.as_deref().and_then(|t| DateTimes::parse(t, zone)) {
            result.dates.insert(key.into(), d);
        }
    }
    let text = body_text(mail.body.as_ref());
    set_text(result, &text, max_chars);
    result.sources.push(SourceStatus::ok("message"));
    if mail.has_attachments == Some(true) {
        let req = GraphRequest::get(
            GraphPath::fixed("/me/messages").segment(message).then("attachments"),
        )
        .select(&["id", "name", "contentType", "size", "isInline"])
        .prefer("IdType=\"ImmutableId\"");
        match session.get_json::<ODataPage<Attachment>>(&req).await {
            Ok(resp) => {
                for a in resp.body.value {
                    let Some(name) = a.name else { continue };
                    let uri = a.id.map(|id| M365Uri::Mail {
                        message: message.to_owned(),
                        attachment: Some(id),
                    });
                    result.attachments.push(AttachmentRef {
                        uri: uri.filter(M365Uri::is_valid).map(|u| u.to_string()),
                        name,
                        content_type: a.content_type,
                        size: a.size,
                        inline: a.is_inline.unwrap_or(false),
                    });
                }
                result.sources.push(SourceStatus::ok("attachments"));
            }
            Err(failure) => {
                if let Some(claims) = failure.claims_challenge() {
                    call.auth.challenge.request_claims(claims);
                }
                result.sources.push(SourceStatus::failed("attachments", failure.user_message()));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
/// A drive item to read and the tenant rules its site is checked against.
struct DrivePlace<'a> {
    uri: &'a M365Uri,
    drive: &'a str,
    item: &'a str,
    rules: &'a TenantPolicy,
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

async fn read_drive_item(
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
async fn extract_into(
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

async fn chat_line(chat: &str, m: ChatMessage, zone: &MailboxZone) -> ChatLine {
    let body = m.body.unwrap_or_default();
    let content = body.content.unwrap_or_default();
    let html = body.content_type.is_none_or(|t| t.eq_ignore_ascii_case("html"));
    let text = if html { html_to_text(content).await } else { content };
    ChatLine {
        uri: m
            .id
            .map(|id| M365Uri::chat_message(chat, id))
            .filter(M365Uri::is_valid)
            .map(|u| u.to_string()),
        from: m.from.and_then(|f| f.user?.display_name),
        sent: m.created_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
        text,
    }
}

async fn html_to_text(html: String) -> String {
    let limits = Limits { max_output_chars: LIMIT_MAX_CHARS as usize, ..Limits::default() };
    match extract::extract_blocking(html.into_bytes(), FileKind::Html, Selection::all(), limits)
        .await
    {
        Ok(e) => e.parts.into_iter().map(|p| p.text).collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    }
}

fn body_text(body: Option<&ItemBody>) -> String {
    body.and_then(|b| b.content.as_deref()).unwrap_or_default().trim().to_owned()
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
