//! Outlook mail: messages (list, get, `$filter`, `$search`, `$orderby`, paging), attachments,
//! mail folders; `Prefer: IdType="ImmutableId"` and `outlook.body-content-type`.

use base64::{Engine, engine::general_purpose::STANDARD};
use fixtures::{BodyType, Mailbox, Message, User};
use serde_json::{Map, Value, json};

use super::{Ctx, applied, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult, Service},
    kql::{self, KqlDoc, PropValue, SearchText},
    odata::{self, FVal, Fields},
    store::MailboxIndex,
    text::plain_body,
    wire::JsonBuf,
};

/// Most results a messages `$search` returns (graph.md §5.3).
const SEARCH_CAP: usize = 1000;

/// Resolves the mailbox a request addresses and checks the caller may read it.
pub fn mailbox<'a>(
    ctx: &'a Ctx<'_>,
    key: &str,
) -> Result<(&'a User, &'a Mailbox, &'a MailboxIndex), GraphError> {
    let target =
        ctx.store.user(ctx.caller.tid, key).ok_or_else(|| GraphError::invalid_user(key))?;
    let (tenant, idx) = ctx.tenant()?;
    let mbi = idx.mailboxes.get(&target.oid);
    if target.oid == ctx.caller.oid {
        ctx.caller.require(&perms::MESSAGES)?;
    } else {
        let delegate = mbi
            .is_some_and(|m| tenant.content.mailboxes[m.pos].delegates.contains(&ctx.caller.oid));
        if !(delegate && ctx.caller.has_any(perms::MESSAGES_SHARED.any_of)) {
            return Err(GraphError::forbidden(Service::Outlook, &[], &ctx.caller.scp));
        }
    }
    let mbi = mbi.ok_or_else(|| {
        GraphError::new(
            axum::http::StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    })?;
    Ok((target, &tenant.content.mailboxes[mbi.pos], mbi))
}

/// How a message is rendered for this request.
pub struct Render {
    pub bodies: bool,
    pub immutable: bool,
    pub text: bool,
    pub html: bool,
}

impl Render {
    pub fn new(ctx: &Ctx<'_>) -> Self {
        Self {
            bodies: ctx.caller.has_any(perms::MESSAGE_BODIES)
                || ctx.caller.has_any(perms::MESSAGES_SHARED.any_of),
            immutable: ctx.prefs.immutable_id,
            text: ctx.prefs.body_text,
            html: ctx.prefs.body_html,
        }
    }

    pub fn applied(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.immutable {
            v.push("IdType=\"ImmutableId\"".to_owned());
        }
        if self.text {
            v.push("outlook.body-content-type=\"text\"".to_owned());
        }
        if self.html {
            v.push("outlook.body-content-type=\"html\"".to_owned());
        }
        v
    }
}

fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>\r\n");
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>{escaped}</body></html>"
    )
}

/// Graph's `bodyPreview`: the first 255 characters of the text, whitespace collapsed.
pub fn preview(m: &Message) -> String {
    plain_body(m).split_whitespace().collect::<Vec<_>>().join(" ").chars().take(255).collect()
}

fn addr(a: &fixtures::EmailAddress) -> Value {
    json!({"emailAddress": {"name": a.name, "address": a.address}})
}

pub fn message_id(m: &Message, immutable: bool) -> &str {
    if immutable { &m.immutable_id } else { &m.id }
}

/// A message resource with only the `$select`ed properties (all when `select` is empty; `id` and
/// annotations always). Unselected properties are never built: on the list hot path this skips
/// most of the per-message allocations and date formatting (the result equals building the full
/// object and then trimming it with [`odata::apply_select`]).
pub fn message_json(m: &Message, r: &Render, select: &[String]) -> Value {
    let wants = |k: &str| {
        select.is_empty()
            || k == "id"
            || k.starts_with('@')
            || select.iter().any(|s| s.eq_ignore_ascii_case(k))
    };
    let id = message_id(m, r.immutable);
    let mut v = Map::new();
    let mut put = |k: &str, f: &dyn Fn() -> Value| {
        if wants(k) {
            v.insert(k.to_owned(), f());
        }
    };
    put("@odata.etag", &|| {
        json!(format!(
            "W/\"CQAAABYAAAD{}\"",
            m.immutable_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>()
        ))
    });
    put("id", &|| json!(id));
    put("createdDateTime", &|| json!(odata::dt(m.received)));
    put("lastModifiedDateTime", &|| json!(odata::dt(m.received)));
    put("changeKey", &|| json!("CQAAABYAAAD"));
    put("categories", &|| json!(m.categories));
    put("receivedDateTime", &|| json!(odata::dt(m.received)));
    put("sentDateTime", &|| json!(odata::dt(m.sent)));
    put("hasAttachments", &|| json!(!m.attachments.is_empty()));
    put("internetMessageId", &|| json!(m.internet_message_id));
    put("subject", &|| json!(m.subject));
    put("importance", &|| json!(m.importance));
    put("parentFolderId", &|| json!(m.folder_id));
    put("conversationId", &|| json!(m.conversation_id));
    put("isDeliveryReceiptRequested", &|| json!(false));
    put("isReadReceiptRequested", &|| json!(false));
    put("isRead", &|| json!(m.is_read));
    put("isDraft", &|| json!(false));
    put("webLink", &|| {
        json!(format!(
            "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        ))
    });
    put("inferenceClassification", &|| json!("focused"));
    put("sender", &|| addr(&m.from));
    put("from", &|| addr(&m.from));
    put("toRecipients", &|| json!(m.to.iter().map(addr).collect::<Vec<_>>()));
    put("ccRecipients", &|| json!(m.cc.iter().map(addr).collect::<Vec<_>>()));
    put("bccRecipients", &|| json!([]));
    put("replyTo", &|| json!([]));
    put("flag", &|| json!({"flagStatus": m.flag}));
    if r.bodies && wants("bodyPreview") {
        v.insert("bodyPreview".to_owned(), json!(preview(m)));
    }
    if r.bodies && wants("body") {
        let (kind, content) = match (m.body_type, r.text) {
            (_, true) => ("text", plain_body(m)),
            (BodyType::Html, false) => ("html", m.body.clone()),
            (BodyType::Text, false) => ("html", text_to_html(&m.body)),
        };
        v.insert("body".to_owned(), json!({"contentType": kind, "content": content}));
    }
    Value::Object(v)
}

/// Writes one message of a list page: the same bytes as `serde_json::to_vec(&message_json(..))`
/// (the unit tests compare them) without building the `Value` tree.
fn write_message(b: &mut JsonBuf, m: &Message, r: &Render, wanted: &[bool; MESSAGE_FIELDS.len()]) {
    b.open_obj();
    for ((key, write), want) in MESSAGE_FIELDS.iter().zip(wanted) {
        if *want && (r.bodies || !matches!(*key, "body" | "bodyPreview")) {
            b.key(key);
            write(b, m, r);
        }
    }
    b.close_obj();
}

/// Which of [`MESSAGE_FIELDS`] a `$select` keeps (all when empty; `id` and annotations always),
/// worked out once per page rather than per message.
fn wanted_fields(select: &[String]) -> [bool; MESSAGE_FIELDS.len()] {
    let mut wanted = [true; MESSAGE_FIELDS.len()];
    if !select.is_empty() {
        for ((key, _), want) in MESSAGE_FIELDS.iter().zip(wanted.iter_mut()) {
            *want = *key == "id"
                || key.starts_with('@')
                || select.iter().any(|s| s.eq_ignore_ascii_case(key));
        }
    }
    wanted
}

type FieldWriter = fn(&mut JsonBuf, &Message, &Render);

/// The message properties of [`message_json`], in the order a `Value` object serialises them
/// (byte order of the keys; a unit test checks it), each with its writer.
const MESSAGE_FIELDS: [(&str, FieldWriter); 29] = [
    ("@odata.etag", |b, m, _| {
        b.raw("\"W/\\\"CQAAABYAAAD");
        for c in m.immutable_id.bytes().filter(u8::is_ascii_alphanumeric).take(8) {
            b.out.push(c);
        }
        b.raw("\\\"\"");
    }),
    ("bccRecipients", |b, _, _| b.raw("[]")),
    ("body", |b, m, r| {
        b.open_obj();
        b.key("content");
        match (m.body_type, r.text) {
            (_, true) => b.string(&plain_body(m)),
            (BodyType::Html, false) => b.string(&m.body),
            (BodyType::Text, false) => b.string(&text_to_html(&m.body)),
        }
        b.key("contentType");
        b.string(if r.text { "text" } else { "html" });
        b.close_obj();
    }),
    ("bodyPreview", |b, m, _| b.string(&preview(m))),
    ("categories", |b, m, _| b.value(&m.categories)),
    ("ccRecipients", |b, m, _| write_addrs(b, &m.cc)),
    ("changeKey", |b, _, _| b.raw("\"CQAAABYAAAD\"")),
    ("conversationId", |b, m, _| b.string(&m.conversation_id)),
    ("createdDateTime", |b, m, _| b.date(m.received)),
    ("flag", |b, m, _| {
        b.open_obj();
        b.key("flagStatus");
        b.string(&m.flag);
        b.close_obj();
    }),
    ("from", |b, m, _| write_addr(b, &m.from)),
    ("hasAttachments", |b, m, _| b.bool(!m.attachments.is_empty())),
    ("id", |b, m, r| b.string(message_id(m, r.immutable))),
    ("importance", |b, m, _| b.string(&m.importance)),
    ("inferenceClassification", |b, _, _| b.raw("\"focused\"")),
    ("internetMessageId", |b, m, _| b.string(&m.internet_message_id)),
    ("isDeliveryReceiptRequested", |b, _, _| b.bool(false)),
    ("isDraft", |b, _, _| b.bool(false)),
    ("isRead", |b, m, _| b.bool(m.is_read)),
    ("isReadReceiptRequested", |b, _, _| b.bool(false)),
    ("lastModifiedDateTime", |b, m, _| b.date(m.received)),
    ("parentFolderId", |b, m, _| b.string(&m.folder_id)),
    ("receivedDateTime", |b, m, _| b.date(m.received)),
    ("replyTo", |b, _, _| b.raw("[]")),
    ("sender", |b, m, _| write_addr(b, &m.from)),
    ("sentDateTime", |b, m, _| b.date(m.sent)),
    ("subject", |b, m, _| b.string(&m.subject)),
    ("toRecipients", |b, m, _| write_addrs(b, &m.to)),
    ("webLink", |b, m, r| {
        // Percent-encoded ids hold only ASCII letters, digits and `%XX`: nothing to escape.
        b.raw("\"https://outlook.office365.com/owa/?ItemID=");
        for part in percent_encoding::utf8_percent_encode(
            message_id(m, r.immutable),
            percent_encoding::NON_ALPHANUMERIC,
        ) {
            b.raw(part);
        }
        b.raw("&exvsurl=1&viewmodel=ReadMessageItem\"");
    }),
];

fn write_addr(b: &mut JsonBuf, a: &fixtures::EmailAddress) {
    b.open_obj();
    b.key("emailAddress");
    b.open_obj();
    b.key("address");
    b.string(&a.address);
    b.key("name");
    b.string(&a.name);
    b.close_obj();
    b.close_obj();
}

fn write_addrs(b: &mut JsonBuf, list: &[fixtures::EmailAddress]) {
    b.open_arr();
    for a in list {
        b.elem();
        write_addr(b, a);
    }
    b.close_arr();
}

struct MsgFields<'a>(&'a Message);

impl Fields for MsgFields<'_> {
    fn field(&self, path: &str) -> Option<FVal> {
        let m = self.0;
        Some(match path {
            "id" => FVal::Str(m.id.clone()),
            "receiveddatetime" | "createddatetime" | "lastmodifieddatetime" => {
                FVal::Date(m.received)
            }
            "sentdatetime" => FVal::Date(m.sent),
            "from/emailaddress/address" | "sender/emailaddress/address" => {
                FVal::Str(m.from.address.clone())
            }
            "from/emailaddress/name" | "sender/emailaddress/name" => FVal::Str(m.from.name.clone()),
            "hasattachments" => FVal::Bool(!m.attachments.is_empty()),
            "isread" => FVal::Bool(m.is_read),
            "isdraft" => FVal::Bool(false),
            "subject" => FVal::Str(m.subject.clone()),
            "importance" => FVal::Str(m.importance.clone()),
            "parentfolderid" => FVal::Str(m.folder_id.clone()),
            "conversationid" => FVal::Str(m.conversation_id.clone()),
            "internetmessageid" => FVal::Str(m.internet_message_id.clone()),
            "flag/flagstatus" => FVal::Str(m.flag.clone()),
            _ => return None,
        })
    }
}

/// A message as a KQL document.
pub struct MsgDoc<'a> {
    pub m: &'a Message,
    pub text: &'a SearchText,
}

impl KqlDoc for MsgDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }

    fn prop(&self, name: &str) -> PropValue {
        let m = self.m;
        let people = |list: &[&fixtures::EmailAddress]| {
            PropValue::Text(SearchText::new(
                &list
                    .iter()
                    .map(|a| format!("{} {}", a.name, a.address))
                    .collect::<Vec<_>>()
                    .join(" "),
            ))
        };
        match name {
            "from" => people(&[&m.from]),
            "to" => people(&m.to.iter().collect::<Vec<_>>()),
            "cc" => people(&m.cc.iter().collect::<Vec<_>>()),
            "participants" | "recipients" => {
                let mut all: Vec<&fixtures::EmailAddress> = vec![&m.from];
                all.extend(m.to.iter());
                all.extend(m.cc.iter());
                people(&all)
            }
            "subject" => PropValue::Text(SearchText::new(&m.subject)),
            "body" => PropValue::Text(SearchText::new(&plain_body(m))),
            "attachment" | "attachmentnames" => PropValue::Text(SearchText::new(
                &m.attachments.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(" "),
            )),
            "received" => PropValue::Date(m.received),
            "sent" => PropValue::Date(m.sent),
            "hasattachment" | "hasattachments" => PropValue::Bool(!m.attachments.is_empty()),
            "isread" => PropValue::Bool(m.is_read),
            "importance" => PropValue::Keyword(m.importance.clone()),
            "kind" => PropValue::Keyword("email".into()),
            _ => PropValue::Unknown,
        }
    }
}

/// Message positions matching a KQL query, newest sent first (equal times in position order).
pub fn search_mailbox(mb: &Mailbox, mbi: &MailboxIndex, expr: &kql::Expr) -> Vec<u32> {
    let query = kql::Query::new(expr);
    let mut hits = mbi.postings.matching(mb.messages.len(), &query, &message_in_text, |i| {
        query.matches(&MsgDoc { m: &mb.messages[i as usize], text: &mbi.text[i as usize] })
    });
    hits.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
    hits
}

/// Message properties whose tokens are all in the indexed message text (subject, sender,
/// attachment names): `name:term` on them can use the postings. `body` is not (the index holds
/// the raw body, the property its plain text).
pub fn message_in_text(name: &str) -> bool {
    matches!(name, "from" | "subject" | "attachment" | "attachmentnames")
}

fn resolve_folder<'a>(mb: &'a Mailbox, key: &str) -> Option<&'a fixtures::MailFolder> {
    mb.folders.iter().find(|f| {
        f.id == key || f.well_known_name.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(key))
    })
}

pub fn list(ctx: &Ctx<'_>, user: &str, folder: Option<&str>) -> GraphResult {
    let (owner, mb, mbi) = mailbox(ctx, user)?;
    let folder_id = match folder {
        Some(f) => {
            Some(resolve_folder(mb, f).ok_or_else(GraphError::outlook_not_found)?.id.clone())
        }
        None => None,
    };
    let q = &ctx.query;
    let search = q.get("$search");
    let filter_raw = q.get("$filter");
    let orderby_raw = q.get("$orderby");
    if search.is_some() {
        if orderby_raw.is_some() {
            return Err(GraphError::bad_request(
                "BadRequest",
                "The query parameter '$orderBy' is not supported with '$search'.",
            ));
        }
        if filter_raw.is_some() {
            return Err(GraphError::bad_request(
                "BadRequest",
                "The query parameter '$filter' is not supported with '$search'.",
            ));
        }
        if q.get("$skip").is_some() {
            return Err(GraphError::bad_request(
                "BadRequest",
                "The query parameter '$skip' is not supported with '$search'.",
            ));
        }
    }
    let top = q.top(10, 1000)?;
    let offset = q.offset()?;
    let in_folder = |m: &Message| folder_id.as_ref().is_none_or(|f| &m.folder_id == f);

    let ordered: Vec<u32> = if let Some(s) = search {
        let text = s.trim();
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        let expr = kql::parse(text).map_err(|e| {
            GraphError::bad_request("BadRequest", format!("Syntax error in $search: {e}"))
        })?;
        let mut hits = search_mailbox(mb, mbi, &expr);
        hits.retain(|i| in_folder(&mb.messages[*i as usize]));
        hits.truncate(SEARCH_CAP);
        hits
    } else if filter_raw.is_some() || orderby_raw.is_some() {
        let filter = filter_raw.map(odata::parse_filter).transpose()?;
        let order = orderby_raw.map(odata::parse_orderby).transpose()?.unwrap_or_default();
        if let Some(f) = &filter
            && let Some(m) = mb.messages.first()
        {
            f.validate(&MsgFields(m))?;
        }
        if !order.is_empty() {
            if let Some(m) = mb.messages.first() {
                for (p, _) in &order {
                    if MsgFields(m).field(p).is_none() {
                        return Err(GraphError::bad_request(
                            "ErrorInvalidProperty",
                            format!("Could not find a property named '{p}'."),
                        ));
                    }
                }
            }
            // Graph: every $orderby property must come first in $filter, in the same order.
            if let Some(f) = &filter {
                let paths = f.paths();
                let ok = order.len() <= paths.len()
                    && order.iter().zip(paths.iter()).all(|((o, _), p)| o == p);
                if !ok {
                    return Err(GraphError::bad_request(
                        "InefficientFilter",
                        "The restriction or sort order is too complex for this operation.",
                    ));
                }
            }
        }
        let mut hits: Vec<u32> = mbi
            .by_received_desc
            .iter()
            .copied()
            .filter(|i| {
                let m = &mb.messages[*i as usize];
                in_folder(m) && filter.as_ref().is_none_or(|f| f.eval(&MsgFields(m)))
            })
            .collect();
        if !order.is_empty() {
            hits.sort_by(|a, b| {
                odata::compare(
                    &MsgFields(&mb.messages[*a as usize]),
                    &MsgFields(&mb.messages[*b as usize]),
                    &order,
                )
            });
        }
        hits
    } else if folder_id.is_some() {
        mbi.by_received_desc
            .iter()
            .copied()
            .filter(|i| in_folder(&mb.messages[*i as usize]))
            .collect()
    } else {
        // The hot path: no filter, default order; only the page is touched.
        let all = &mbi.by_received_desc;
        let page = &all[offset.min(all.len())..offset.saturating_add(top).min(all.len())];
        let more = offset.saturating_add(top) < all.len();
        return Ok(page_response(ctx, owner, mb, page, more.then_some(offset + top)));
    };
    let page = &ordered[offset.min(ordered.len())..offset.saturating_add(top).min(ordered.len())];
    let more = offset.saturating_add(top) < ordered.len();
    Ok(page_response(ctx, owner, mb, page, more.then_some(offset + top)))
}

/// A page of messages, written straight into the response body (no `Value` tree: see `wire`).
fn page_response(
    ctx: &Ctx<'_>,
    owner: &User,
    mb: &Mailbox,
    page: &[u32],
    next: Option<usize>,
) -> axum::response::Response {
    let r = Render::new(ctx);
    let wanted = wanted_fields(&ctx.query.select());
    let mut b = JsonBuf::with_capacity(1024 + page.len() * 512);
    // Keys in `Value` order: "@odata.context" < "@odata.nextLink" < "value".
    b.open_obj();
    b.key("@odata.context");
    b.string(&format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/messages",
        owner.oid
    ));
    if let Some(n) = next {
        b.key("@odata.nextLink");
        b.string(&ctx.query.next_link(ctx.base(), ctx.path, n));
    }
    b.key("value");
    b.open_arr();
    for i in page {
        b.elem();
        write_message(&mut b, &mb.messages[*i as usize], &r, &wanted);
    }
    b.close_arr();
    b.close_obj();
    applied(b.into_response(), &r.applied())
}

fn find<'a>(
    ctx: &Ctx<'_>,
    mb: &'a Mailbox,
    mbi: &MailboxIndex,
    id: &str,
) -> Result<&'a Message, GraphError> {
    if id.is_empty()
        || id.len() > 512
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || "+/=-_".contains(c))
    {
        return Err(GraphError::bad_request("ErrorInvalidIdMalformed", "Id is malformed."));
    }
    let pos = if ctx.prefs.immutable_id {
        mbi.by_immutable_id.get(id).or_else(|| mbi.by_id.get(id))
    } else {
        mbi.by_id.get(id)
    };
    pos.map(|p| &mb.messages[*p as usize]).ok_or_else(GraphError::outlook_not_found)
}

pub fn get(ctx: &Ctx<'_>, user: &str, id: &str) -> GraphResult {
    let (owner, mb, mbi) = mailbox(ctx, user)?;
    let m = find(ctx, mb, mbi, id)?;
    let r = Render::new(ctx);
    let select = ctx.query.select();
    let mut body = message_json(m, &r, &select);
    body["@odata.context"] = json!(format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/messages/$entity",
        owner.oid
    ));
    Ok(applied(json(odata::apply_select(body, &select)), &r.applied()))
}

pub fn attachments(ctx: &Ctx<'_>, user: &str, id: &str, attachment: Option<&str>) -> GraphResult {
    let (owner, mb, mbi) = mailbox(ctx, user)?;
    ctx.caller.require(&perms::ATTACHMENTS)?;
    let m = find(ctx, mb, mbi, id)?;
    let render = |a: &fixtures::Attachment| {
        json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": a.content_type,
            "id": a.id,
            "lastModifiedDateTime": odata::dt(m.received),
            "name": a.name,
            "contentType": a.content_type,
            "size": a.bytes.len(),
            "isInline": false,
            "contentId": null,
            "contentLocation": null,
            "contentBytes": STANDARD.encode(&a.bytes),
        })
    };
    let select = ctx.query.select();
    let ctx_url = format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/messages('{}')/attachments",
        owner.oid, id
    );
    match attachment {
        None => Ok(json(json!({
            "@odata.context": ctx_url,
            "value": m.attachments.iter().map(|a| odata::apply_select(render(a), &select)).collect::<Vec<_>>(),
        }))),
        Some(aid) => {
            let a = m
                .attachments
                .iter()
                .find(|a| a.id == aid)
                .ok_or_else(GraphError::outlook_not_found)?;
            let mut body = odata::apply_select(render(a), &select);
            body["@odata.context"] = json!(format!("{ctx_url}/$entity"));
            Ok(json(body))
        }
    }
}

fn folder_json(mb: &Mailbox, f: &fixtures::MailFolder) -> Value {
    let total = mb.messages.iter().filter(|m| m.folder_id == f.id).count();
    let unread = mb.messages.iter().filter(|m| m.folder_id == f.id && !m.is_read).count();
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": mb.folders.iter().filter(|c| c.parent_id.as_deref() == Some(f.id.as_str())).count(),
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": 0,
        "isHidden": false,
    })
}

pub fn folders(ctx: &Ctx<'_>, user: &str) -> GraphResult {
    let (owner, mb, _) = mailbox(ctx, user)?;
    ctx.caller.require(&perms::MAIL_FOLDERS)?;
    let select = ctx.query.select();
    Ok(json(json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/mailFolders", owner.oid),
        "value": mb.folders.iter().map(|f| odata::apply_select(folder_json(mb, f), &select)).collect::<Vec<_>>(),
    })))
}

pub fn folder(ctx: &Ctx<'_>, user: &str, id: &str) -> GraphResult {
    let (_, mb, _) = mailbox(ctx, user)?;
    ctx.caller.require(&perms::MAIL_FOLDERS)?;
    let f = resolve_folder(mb, id).ok_or_else(GraphError::outlook_not_found)?;
    Ok(json(odata::apply_select(folder_json(mb, f), &ctx.query.select())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_fields_are_in_value_key_order() {
        let keys: Vec<&str> = MESSAGE_FIELDS.iter().map(|(k, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn written_messages_equal_the_value_tree() {
        let world = fixtures::standard_world();
        let selects: Vec<Vec<String>> = [
            &[][..],
            &["id", "subject", "from", "receivedDateTime"][..],
            &["BODY", "bodyPreview", "webLink", "toRecipients", "ccRecipients"][..],
            &["categories", "flag", "isRead", "sender", "hasAttachments", "nonsense"][..],
        ]
        .iter()
        .map(|s| s.iter().map(|x| (*x).to_owned()).collect())
        .collect();
        let mut checked = 0;
        for m in world.tenants.iter().flat_map(|t| &t.content.mailboxes).flat_map(|b| &b.messages) {
            for bits in 0..8u8 {
                let r = Render {
                    bodies: bits & 1 != 0,
                    immutable: bits & 2 != 0,
                    text: bits & 4 != 0,
                    html: false,
                };
                for select in &selects {
                    let mut b = JsonBuf::with_capacity(256);
                    write_message(&mut b, m, &r, &wanted_fields(select));
                    let expected = serde_json::to_vec(&message_json(m, &r, select)).unwrap();
                    assert_eq!(
                        String::from_utf8(b.out).unwrap(),
                        String::from_utf8(expected).unwrap(),
                        "message {} with {select:?}",
                        m.id
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "the standard world has messages to compare ({checked})");
    }
}
