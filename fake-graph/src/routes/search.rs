//! Microsoft Search: `POST /search/query` for `message`, `event`, `chatMessage`, `driveItem`,
//! `listItem`, `list`, `drive`, `site` (graph.md §6). Validation first (one request, allowed entity mixes, size
//! caps, `from = 0` first, no sorting or aggregations where Graph refuses them), then the KQL
//! query runs over what the caller may see — trimming happens before paging, so `total` and
//! `moreResultsAvailable` never count hidden items.
//!
//! Matching never scans: each collection (a mailbox, a calendar, a chat or channel, a drive) has
//! an inverted index in the store; the query gives candidate positions from the postings
//! ([`kql::PostingIndex::candidates`]), which are verified with the compiled [`Query`] in position
//! order, so the hits, their order and the totals equal a full scan's.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::STANDARD};
use fixtures::{Drive, DriveItem, Event, Site};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult},
    kql::{self, Expr, KqlDoc, PropRef, PropValue, Query, SearchText},
    routes::{files, mail},
    store::{DriveIndex, ItemSearch},
    text, trimming,
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

struct Hit {
    hit_id: String,
    summary_text: String,
    resource: Value,
}

fn message_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let Some(mbi) = idx.mailboxes.get(&ctx.caller.oid) else { return Ok((0, Vec::new())) };
    let mb = &tenant.content.mailboxes[mbi.pos];
    let query = Query::new(expr);
    let mut positions =
        mbi.postings.matching(mb.messages.len(), &query, &mail::message_in_text, |i| {
            query
                .matches(&mail::MsgDoc { m: &mb.messages[i as usize], text: &mbi.text[i as usize] })
        });
    // Newest `sent` first, equal times in position order (the scan's stable sort), by rank.
    positions.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
    let immutable = ctx.prefs.immutable_id;
    let total = positions.len();
    Ok((total, positions
        .into_iter()
        .skip(from)
        .take(size)
        .map(|i| {
            let m = &mb.messages[i as usize];
            let addr = |a: &fixtures::EmailAddress| json!({"emailAddress": {"name": a.name, "address": a.address}});
            Hit {
                hit_id: mail::message_id(m, immutable).to_owned(),
                summary_text: format!("{} {}", m.subject, text::plain_body(m)),
                resource: json!({
                    "@odata.type": "#microsoft.graph.message",
                    "createdDateTime": crate::odata::dt(m.received),
                    "lastModifiedDateTime": crate::odata::dt(m.received),
                    "receivedDateTime": crate::odata::dt(m.received),
                    "sentDateTime": crate::odata::dt(m.sent),
                    "hasAttachments": !m.attachments.is_empty(),
                    "subject": m.subject,
                    "bodyPreview": mail::preview(m),
                    "importance": m.importance,
                    "replyTo": [],
                    "sender": addr(&m.from),
                    "from": addr(&m.from),
                }),
            }
        })
        .collect()))
}

/// Event properties inside the indexed event text.
fn event_in_text(name: &str) -> bool {
    matches!(name, "subject" | "title" | "organizer" | "from" | "location")
}

/// Drive item properties inside the indexed item text (name, file text, author).
fn item_in_text(name: &str) -> bool {
    matches!(name, "filename" | "title" | "author" | "createdby" | "modifiedby")
}

fn none_in_text(_: &str) -> bool {
    false
}

struct EventDoc<'a> {
    e: &'a Event,
    text: &'a SearchText,
}

impl KqlDoc for EventDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "subject" | "title" => PropValue::Text(SearchText::new(&self.e.subject)),
            "organizer" | "from" => PropValue::Text(SearchText::new(&format!(
                "{} {}",
                self.e.organizer.name, self.e.organizer.address
            ))),
            "attendees" | "participants" | "to" => PropValue::Text(SearchText::new(
                &self
                    .e
                    .attendees
                    .iter()
                    .map(|a| format!("{} {}", a.name, a.address))
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            "location" => {
                PropValue::Text(SearchText::new(self.e.location.as_deref().unwrap_or("")))
            }
            "start" => PropValue::Date(self.e.start),
            "end" => PropValue::Date(self.e.end),
            _ => PropValue::Unknown,
        }
    }
}

fn pascal(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The total and the `[from, from + size)` page of event hits, latest start first.
fn event_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let Some(pos) = idx.calendars.get(&ctx.caller.oid) else { return Ok((0, Vec::new())) };
    let all = &tenant.content.calendars[*pos].events;
    let search = &idx.calendar_search[*pos];
    let query = Query::new(expr);
    let mut events: Vec<&Event> = search
        .postings
        .matching(all.len(), &query, &event_in_text, |i| {
            let e = &all[i as usize];
            query.matches(&EventDoc { e, text: &search.text[i as usize] })
        })
        .into_iter()
        .map(|i| &all[i as usize])
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.start));
    let total = events.len();
    let page = events
        .into_iter()
        .skip(from)
        .take(size)
        .map(|e| Hit {
            hit_id: e.id.clone(),
            summary_text: format!("{} {}", e.subject, e.body_preview),
            resource: json!({
                "@odata.type": "#microsoft.graph.event",
                "end": {"dateTime": crate::odata::dt(e.end), "timeZone": "UTC"},
                "hasAttachments": false,
                "iCalUId": format!("040000008200E00074C5B7101A82E008{}", e.id.len()),
                "isAllDay": e.is_all_day,
                "sensitivity": pascal(&e.sensitivity),
                "start": {"dateTime": crate::odata::dt(e.start), "timeZone": "UTC"},
                "subject": e.subject,
                "type": match e.event_type.as_str() { "singleInstance" => "Single".to_owned(), other => pascal(other) },
            }),
        })
        .collect();
    Ok((total, page))
}

struct ChatDoc<'a> {
    text: &'a SearchText,
    /// The sender's display name and mail.
    from: (&'a str, &'a str),
    created: chrono::DateTime<chrono::Utc>,
    mentioned: bool,
}

impl KqlDoc for ChatDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "from" => PropValue::Text(SearchText::new(&format!("{} {}", self.from.0, self.from.1))),
            "sent" | "created" => PropValue::Date(self.created),
            "ismentioned" => PropValue::Bool(self.mentioned),
            "hasattachment" | "hasattachments" => PropValue::Bool(false),
            _ => PropValue::Unknown,
        }
    }
}

fn exchange_like_id(parts: &str) -> String {
    let digest = Sha256::digest(parts.as_bytes());
    format!("AAMkA{}", STANDARD.encode(&digest[..30]))
}

/// A chat or channel message that matched, rendered only if it lands on the page.
struct ChatFound<'a> {
    message: &'a fixtures::ChatMessage,
    plain: &'a str,
    chat_id: Option<&'a str>,
    /// (team id, channel id) for channel messages.
    channel: Option<(uuid::Uuid, &'a str)>,
}

/// The total and the `[from, from + size)` page of chat and channel message hits, newest first.
fn chat_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let me = ctx.caller.oid;
    let person = |oid: uuid::Uuid| {
        idx.users_by_oid
            .get(&oid)
            .map(|p| (tenant.users[*p].display_name.as_str(), tenant.users[*p].mail.as_str()))
            .unwrap_or_default()
    };
    let query = Query::new(expr);
    type Source<'a> = (
        &'a [fixtures::ChatMessage],
        &'a crate::store::ChatSearch,
        Option<&'a str>,
        Option<(uuid::Uuid, &'a str)>,
    );
    let mut sources: Vec<Source<'_>> = Vec::new();
    for (pos, chat) in
        tenant.content.chats.iter().enumerate().filter(|(_, c)| c.members.contains(&me))
    {
        sources.push((&chat.messages, &idx.chat_search[pos], Some(&chat.id), None));
    }
    for (t, team) in
        tenant.content.teams.iter().enumerate().filter(|(_, t)| t.members.contains(&me))
    {
        for (pos, c) in team
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.membership_type != "private" || c.members.contains(&me))
        {
            sources.push((&c.messages, &idx.channel_search[t][pos], None, Some((team.id, &c.id))));
        }
    }
    let mut found: Vec<ChatFound<'_>> = Vec::new();
    for (messages, search, chat_id, channel) in sources {
        let hits = search.index.postings.matching(messages.len(), &query, &none_in_text, |i| {
            let m = &messages[i as usize];
            query.matches(&ChatDoc {
                text: &search.index.text[i as usize],
                from: person(m.from),
                created: m.created,
                mentioned: m.mentions.contains(&me),
            })
        });
        found.extend(hits.into_iter().map(|i| ChatFound {
            message: &messages[i as usize],
            plain: &search.plain[i as usize],
            chat_id,
            channel,
        }));
    }
    // Stable: equal times keep scan order (chats, then channels; positions ascending).
    found.sort_by_key(|f| std::cmp::Reverse(f.message.created));
    let total = found.len();
    let render = |f: ChatFound<'_>| {
        let m = f.message;
        let (name, mail) = person(m.from);
        let (chat_id, channel) = (f.chat_id, f.channel.map(|(t, c)| (t.to_string(), c)));
        Hit {
            hit_id: exchange_like_id(&format!(
                "{}|{}|{}",
                chat_id.unwrap_or(""),
                channel.as_ref().map(|c| c.1).unwrap_or(""),
                m.id
            )),
            summary_text: f.plain.to_owned(),
            resource: json!({
                "@odata.type": "microsoft.graph.chatMessage",
                "id": m.id,
                "createdDateTime": crate::odata::dt(m.created),
                "lastModifiedDateTime": crate::odata::dt(m.created),
                "subject": "",
                "importance": "normal",
                "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", m.id),
                "from": {"emailAddress": {"name": name, "address": mail}},
                "channelIdentity": match &channel { Some((t, c)) => json!({"teamId": t, "channelId": c}), None => json!({}) },
                "etag": m.id,
                "chatId": chat_id,
            }),
        }
    };
    Ok((total, found.into_iter().skip(from).take(size).map(render).collect()))
}

struct DriveDoc<'a> {
    item: &'a DriveItem,
    search: &'a ItemSearch,
}

impl KqlDoc for DriveDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.search.text
    }
    fn prop_ref(&self, name: &str) -> PropRef<'_> {
        let it = self.item;
        match name {
            "filename" | "title" => PropRef::Text(&self.search.name),
            "filetype" | "fileextension" => {
                PropRef::Keyword(if it.is_folder { "" } else { &self.search.ext })
            }
            "path" => PropRef::Url(&it.web_url),
            "author" | "createdby" | "modifiedby" => PropRef::Text(&self.search.author_text),
            _ => PropRef::Owned(self.prop(name)),
        }
    }
    fn prop(&self, name: &str) -> PropValue {
        let it = self.item;
        match name {
            "filename" | "title" => PropValue::Text(self.search.name.clone()),
            "filetype" | "fileextension" => PropValue::Keyword(if it.is_folder {
                String::new()
            } else {
                self.search.ext.clone()
            }),
            "path" => PropValue::Url(it.web_url.clone()),
            "iscontainer" => PropValue::Bool(it.is_folder),
            "isdocument" => PropValue::Bool(!it.is_folder),
            "author" | "createdby" | "modifiedby" => {
                PropValue::Text(self.search.author_text.clone())
            }
            "lastmodifiedtime" | "lastmodified" | "write" => PropValue::Date(it.modified),
            "created" => PropValue::Date(it.created),
            _ => PropValue::Unknown,
        }
    }
}

struct SiteDoc<'a> {
    site: &'a Site,
    text: SearchText,
}

impl KqlDoc for SiteDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "path" => PropValue::Url(self.site.web_url.clone()),
            "title" => PropValue::Text(SearchText::new(&self.site.display_name)),
            "iscontainer" => PropValue::Bool(true),
            "isdocument" => PropValue::Bool(false),
            "contentclass" => PropValue::Keyword("STS_Site".into()),
            _ => PropValue::Unknown,
        }
    }
}

/// A drive (`drive` hits) or a site's document library (`list` hits).
struct LibraryDoc<'a> {
    drive: &'a Drive,
    /// The library's name (`drive`) or title and URL name (`list`).
    text: SearchText,
    content_class: &'static str,
}

impl KqlDoc for LibraryDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "title" | "filename" => PropValue::Text(SearchText::new(&self.drive.name)),
            "path" => PropValue::Url(self.drive.web_url.clone()),
            "iscontainer" => PropValue::Bool(true),
            "isdocument" => PropValue::Bool(false),
            "contentclass" => PropValue::Keyword(self.content_class.into()),
            "lastmodifiedtime" | "lastmodified" | "write" => {
                PropValue::Date(drive_dates(self.drive).1)
            }
            "created" => PropValue::Date(drive_dates(self.drive).0),
            _ => PropValue::Unknown,
        }
    }
}

/// A drive's creation and last-modification times: the model stores none, so they are taken
/// from its items (as `GET /drives/{id}` does).
fn drive_dates(d: &Drive) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let created = d.items.iter().map(|i| i.created).min().unwrap_or_default();
    let modified = d.items.iter().map(|i| i.modified).max().unwrap_or_default();
    (created, modified)
}

/// The URL name of a library (`Shared Documents`), from the last segment of its web URL.
fn library_url_name(d: &Drive) -> String {
    let last = d.web_url.trim_end_matches('/').rsplit('/').next().unwrap_or(&d.name);
    percent_encoding::percent_decode_str(last).decode_utf8_lossy().into_owned()
}

/// A library's list id: a GUID, derived stably from the drive because the model stores none.
fn list_id(d: &Drive) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("list:{}", d.id).as_bytes()).to_string()
}

/// The positions (ascending) of the items of drive `d` that match and the viewer may see (the
/// root is never a hit).
fn drive_item_hits(
    query: &Query,
    viewer: &trimming::Viewer<'_>,
    tenant: &fixtures::Tenant,
    idx: &crate::store::TenantIndex,
    d: &Drive,
    di: &DriveIndex,
) -> Vec<u32> {
    // A drive the viewer can open shows every item: trimming is then one check per drive.
    let whole = trimming::can_see_drive(viewer, tenant, idx, d);
    let mut hits = di.postings.matching(d.items.len(), query, &item_in_text, |i| {
        query.matches(&DriveDoc { item: &d.items[i as usize], search: &di.search[i as usize] })
    });
    hits.retain(|i| {
        let it = &d.items[*i as usize];
        it.parent_id.is_some() && (whole || trimming::can_see_item(viewer, tenant, idx, d, di, it))
    });
    hits
}

/// A SharePoint search match, rendered only if it lands on the requested page.
enum Found<'a> {
    Item(&'a Drive, &'a DriveIndex, &'a DriveItem),
    Site(&'a Site),
    Drive(&'a Drive),
    List(&'a Drive),
}

/// The total and the `[from, from + size)` page of driveItem/listItem/site/drive/list hits. Matching runs
/// over the per-item text precomputed in the store index; JSON is built for the page only.
fn sharepoint_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    kinds: &HashSet<&str>,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let viewer = ctx.viewer();
    let terms = expr.highlight_terms();
    let score = |text: &SearchText| terms.iter().filter(|(t, p)| text.has_token(t, *p)).count();
    let mut scored: Vec<(usize, chrono::DateTime<chrono::Utc>, Found<'_>)> = Vec::new();
    let query = Query::new(expr);
    let want_items = kinds.contains("driveitem") || kinds.contains("listitem");
    if want_items {
        for d in &tenant.content.drives {
            let Some(di) = idx.drives.get(&d.id) else { continue };
            for i in drive_item_hits(&query, &viewer, tenant, idx, d, di) {
                let it = &d.items[i as usize];
                scored.push((
                    score(&di.search[i as usize].text),
                    it.modified,
                    Found::Item(d, di, it),
                ));
            }
        }
    }
    if kinds.contains("site") {
        for s in tenant.content.sites.iter().filter(|s| trimming::can_see_site(&viewer, s)) {
            let text = SearchText::new(&format!("{} {} {}", s.name, s.display_name, s.description));
            let doc = SiteDoc { site: s, text };
            if !query.matches(&doc) {
                continue;
            }
            scored.push((
                score(&doc.text),
                chrono::DateTime::<chrono::Utc>::MIN_UTC,
                Found::Site(s),
            ));
        }
    }
    // `drive` hits: the OneDrives and libraries the caller can open. Graph only finds a drive
    // by a term of its name ("`*` is not supported"), so a match also needs a name term.
    if kinds.contains("drive") {
        for d in tenant
            .content
            .drives
            .iter()
            .filter(|d| trimming::can_see_drive(&viewer, tenant, idx, d))
        {
            let doc = LibraryDoc {
                drive: d,
                text: SearchText::new(&d.name),
                content_class: "STS_List_DocumentLibrary",
            };
            let named = terms.iter().any(|(t, p)| doc.text.has_token(t, *p));
            if !named || !query.matches(&doc) {
                continue;
            }
            scored.push((score(&doc.text), drive_dates(d).1, Found::Drive(d)));
        }
    }
    // `list` hits: the document libraries of the sites the caller is a member of (OneDrives
    // are drives, not site lists, here).
    if kinds.contains("list") {
        for d in tenant.content.drives.iter().filter(|d| {
            d.drive_type == fixtures::DriveType::DocumentLibrary
                && trimming::can_see_drive(&viewer, tenant, idx, d)
        }) {
            let text = SearchText::new(&format!("{} {}", d.name, library_url_name(d)));
            let doc = LibraryDoc { drive: d, text, content_class: "STS_List_DocumentLibrary" };
            if !query.matches(&doc) {
                continue;
            }
            scored.push((score(&doc.text), drive_dates(d).1, Found::List(d)));
        }
    }
    // Stable sort: equal keys keep scan order (drive items, sites, drives, lists).
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let total = scored.len();
    let as_list_item = !kinds.contains("driveitem");
    let page = scored
        .into_iter()
        .skip(from)
        .take(size)
        .map(|(_, _, found)| match found {
            Found::Item(d, di, it) => {
                let mut resource = files::item_json(ctx, tenant, d, di, it);
                if let Value::Object(map) = &mut resource {
                    map.remove("@microsoft.graph.downloadUrl");
                    map.remove("eTag");
                    map.remove("cTag");
                }
                resource["@odata.type"] = json!(if as_list_item {
                    "#microsoft.graph.listItem"
                } else {
                    "#microsoft.graph.driveItem"
                });
                Hit {
                    hit_id: STANDARD
                        .encode(&Sha256::digest(format!("{}|{}", d.id, it.id).as_bytes())[..20]),
                    summary_text: format!("{} {}", it.name, text::file_text(it)),
                    resource,
                }
            }
            Found::Site(s) => Hit {
                hit_id: s.id.clone(),
                summary_text: format!("{} {}", s.display_name, s.description),
                resource: json!({
                    "@odata.type": "#microsoft.graph.site",
                    "id": s.id,
                    "createdDateTime": "2019-06-10T06:37:43Z",
                    "description": s.description,
                    "lastModifiedDateTime": "2020-08-30T06:41:56Z",
                    "name": s.name,
                    "displayName": s.display_name,
                    "webUrl": s.web_url,
                }),
            },
            Found::Drive(d) => {
                let (created, modified) = drive_dates(d);
                Hit {
                    hit_id: d.id.clone(),
                    summary_text: d.name.clone(),
                    resource: json!({
                        "@odata.type": "#microsoft.graph.drive",
                        "id": d.id,
                        "createdDateTime": crate::odata::dt(created),
                        "lastModifiedDateTime": crate::odata::dt(modified),
                        "description": "",
                        "name": d.name,
                        "webUrl": d.web_url,
                        "driveType": match d.drive_type {
                            fixtures::DriveType::Business => "business",
                            fixtures::DriveType::DocumentLibrary => "documentLibrary",
                        },
                    }),
                }
            }
            Found::List(d) => {
                let id = list_id(d);
                Hit {
                    hit_id: id.clone(),
                    summary_text: String::new(),
                    resource: json!({
                        "@odata.type": "#microsoft.graph.list",
                        "id": id,
                        "displayName": d.name,
                        "name": library_url_name(d),
                        "description": "",
                        "createdDateTime": crate::odata::dt(drive_dates(d).0),
                        "lastModifiedDateTime": crate::odata::dt(drive_dates(d).1),
                        "webUrl": format!("{}/Forms/AllItems.aspx", d.web_url),
                        "parentReference": {"siteId": files::site_id_of(d)},
                        "list": {"template": "documentLibrary", "hidden": false, "contentTypesEnabled": false},
                    }),
                }
            }
        })
        .collect();
    Ok((total, page))
}

/// Differential tests: the indexed search (postings + compiled [`Query`]) against the reference
/// full scan (`kql::oracle::matches` over every document, texts built as the scan built them) on the
/// standard fixture world, for random KQL queries.
#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::Store;

    fn store() -> &'static Store {
        static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
        STORE.get_or_init(|| Store::new((*fixtures::standard_world()).clone()))
    }

    /// Words that occur in the world (and a few that do not), for queries that hit.
    fn vocabulary() -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        for t in &store().world.tenants {
            for mb in t.content.mailboxes.iter().take(2) {
                for m in mb.messages.iter().take(5) {
                    words.extend(tokenize_all(&format!("{} {}", m.subject, m.from.name)));
                }
            }
            for d in t.content.drives.iter().take(3) {
                for it in d.items.iter().take(8) {
                    words.extend(tokenize_all(&it.name));
                }
            }
            for c in t.content.chats.iter().take(3) {
                for m in c.messages.iter().take(3) {
                    words.extend(tokenize_all(&text::html_to_text(&m.body)));
                }
            }
            for c in t.content.calendars.iter().take(2) {
                for e in c.events.iter().take(5) {
                    words.extend(tokenize_all(&format!("{} {}", e.subject, e.organizer.name)));
                }
            }
        }
        words.extend(["zzzz".to_owned(), "the".to_owned(), "a".to_owned()]);
        words.sort();
        words.dedup();
        words
    }

    fn tokenize_all(s: &str) -> Vec<String> {
        kql::tokenize(s)
    }

    fn atom(words: Vec<String>) -> impl Strategy<Value = String> {
        let w = proptest::sample::select(words);
        let props = proptest::sample::select(vec![
            "subject",
            "from",
            "to",
            "body",
            "attachment",
            "filename",
            "title",
            "author",
            "organizer",
            "location",
            "participants",
            "createdby",
        ]);
        let fixed = proptest::sample::select(vec![
            "isread:true",
            "hasattachment:false",
            "iscontainer:false",
            "isdocument:true",
            "filetype:docx",
            "filetype:.txt",
            "fileextension<>pdf",
            "received>=2024-06-01",
            "sent<2025-01-01",
            "created:2023-01-01..2026-12-31",
            "start>2024-01-01",
            "lastmodifiedtime<=07/23/2026",
            "ismentioned:yes",
            "path:https://contoso.sharepoint.com/sites",
            "path:\"https://contoso-my.sharepoint.com/personal\"",
            "importance:high",
            "*",
        ]);
        prop_oneof![
            4 => w.clone(),
            2 => (w.clone(), 1usize..4).prop_map(|(w, n)| {
                let cut: String = w.chars().take(n).collect();
                format!("{cut}*")
            }),
            1 => (w.clone(), w.clone()).prop_map(|(a, b)| format!("\"{a} {b}\"")),
            2 => (props.clone(), w.clone(), proptest::sample::select(vec![":", "=", "<>"]))
                .prop_map(|(p, w, op)| format!("{p}{op}{w}")),
            1 => (props, w.clone(), 1usize..3).prop_map(|(p, w, n)| {
                let cut: String = w.chars().take(n).collect();
                format!("{p}:{cut}*")
            }),
            1 => fixed.prop_map(str::to_owned),
        ]
    }

    fn query_text() -> impl Strategy<Value = String> {
        atom(vocabulary()).prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
                inner.clone().prop_map(|a| format!("NOT {a}")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("{a} -{b}")),
            ]
        })
    }

    fn scan(len: usize, is_match: impl Fn(usize) -> bool) -> Vec<u32> {
        (0..len).filter(|i| is_match(*i)).map(|i| i as u32).collect()
    }

    /// Every collection of every tenant: indexed positions equal the scan's.
    fn check(expr: &Expr) -> Result<(), TestCaseError> {
        let store = store();
        let query = Query::new(expr);
        for tenant in &store.world.tenants {
            let Some((_, idx)) = store.tenant(tenant.id) else { continue };
            for mb in &tenant.content.mailboxes {
                let mbi = &idx.mailboxes[&mb.owner];
                let doc = |i: usize| mail::MsgDoc { m: &mb.messages[i], text: &mbi.text[i] };
                let want = scan(mb.messages.len(), |i| kql::oracle::matches(expr, &doc(i)));
                let mut got =
                    mbi.postings.matching(mb.messages.len(), &query, &mail::message_in_text, |i| {
                        query.matches(&doc(i as usize))
                    });
                prop_assert_eq!(&got, &want, "messages");
                // Hit order: the rank sort equals the scan's stable sort by `sent`.
                let mut stable = want.clone();
                stable.sort_by(|a, b| {
                    mb.messages[*b as usize].sent.cmp(&mb.messages[*a as usize].sent)
                });
                got.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
                prop_assert_eq!(got, stable, "message order");
            }
            for (pos, cal) in tenant.content.calendars.iter().enumerate() {
                let search = &idx.calendar_search[pos];
                let want = scan(cal.events.len(), |i| {
                    let e = &cal.events[i];
                    let text = SearchText::new(&format!(
                        "{} {} {} {} {}",
                        e.subject,
                        e.body_preview,
                        e.location.as_deref().unwrap_or(""),
                        e.organizer.name,
                        e.organizer.address
                    ));
                    kql::oracle::matches(expr, &EventDoc { e, text: &text })
                });
                let got = search.postings.matching(cal.events.len(), &query, &event_in_text, |i| {
                    query.matches(&EventDoc {
                        e: &cal.events[i as usize],
                        text: &search.text[i as usize],
                    })
                });
                prop_assert_eq!(got, want, "events");
            }
            let person = |oid: uuid::Uuid| {
                tenant
                    .users
                    .iter()
                    .find(|u| u.oid == oid)
                    .map(|u| (u.display_name.as_str(), u.mail.as_str()))
                    .unwrap_or_default()
            };
            let mut chats: Vec<(&[fixtures::ChatMessage], &crate::store::ChatSearch)> = tenant
                .content
                .chats
                .iter()
                .zip(&idx.chat_search)
                .map(|(c, s)| (c.messages.as_slice(), s))
                .collect();
            for (team, search) in tenant.content.teams.iter().zip(&idx.channel_search) {
                for (c, s) in team.channels.iter().zip(search) {
                    chats.push((c.messages.as_slice(), s));
                }
            }
            let me = tenant.users.first().map(|u| u.oid).unwrap_or_default();
            for (messages, search) in chats {
                let doc = |i: usize, text: &SearchText| {
                    let m = &messages[i];
                    kql::oracle::matches(
                        expr,
                        &ChatDoc {
                            text,
                            from: person(m.from),
                            created: m.created,
                            mentioned: m.mentions.contains(&me),
                        },
                    )
                };
                let want = scan(messages.len(), |i| {
                    doc(i, &SearchText::new(&text::html_to_text(&messages[i].body)))
                });
                let got =
                    search.index.postings.matching(messages.len(), &query, &none_in_text, |i| {
                        let m = &messages[i as usize];
                        query.matches(&ChatDoc {
                            text: &search.index.text[i as usize],
                            from: person(m.from),
                            created: m.created,
                            mentioned: m.mentions.contains(&me),
                        })
                    });
                prop_assert_eq!(got, want, "chat messages");
            }
            for d in &tenant.content.drives {
                let di = &idx.drives[&d.id];
                let doc = |i: usize| DriveDoc { item: &d.items[i], search: &di.search[i] };
                // Trimmed for a few viewers, as the scan trimmed (after matching, per item).
                for u in tenant.users.iter().take(4) {
                    let viewer =
                        trimming::Viewer { oid: u.oid, groups: store.groups_of(tenant.id, u.oid) };
                    let want = scan(d.items.len(), |i| {
                        let it = &d.items[i];
                        it.parent_id.is_some()
                            && kql::oracle::matches(expr, &doc(i))
                            && trimming::can_see_item(&viewer, tenant, idx, d, di, it)
                    });
                    let got = drive_item_hits(&query, &viewer, tenant, idx, d, di);
                    prop_assert_eq!(got, want, "drive items");
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn indexed_search_equals_the_full_scan(q in query_text()) {
            // Queries the parser refuses never reach matching.
            if let Ok(expr) = kql::parse(&q) {
                check(&expr)?;
            }
        }
    }

    #[test]
    fn every_kind_of_term_equals_the_full_scan() {
        for q in [
            "budget",
            "bud*",
            "\"quarterly budget\"",
            "filename:report author:adele",
            "path:https://contoso.sharepoint.com",
            "subject:budget OR from:megan",
            "NOT budget",
            "*",
            "organizer:adele location:room",
            "a* AND (the OR zzzz)",
        ] {
            let expr = kql::parse(q).expect("parses");
            check(&expr).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn every_text_restriction_equals_the_full_scan() {
        let words = vocabulary();
        let props = [
            "subject",
            "from",
            "to",
            "cc",
            "body",
            "attachment",
            "participants",
            "filename",
            "title",
            "author",
            "createdby",
            "organizer",
            "attendees",
            "location",
        ];
        for p in props {
            for w in words.iter().step_by(words.len() / 25 + 1) {
                for q in [format!("{p}:{w}"), format!("{p}={w}*")] {
                    let expr = kql::parse(&q).expect("parses");
                    check(&expr).unwrap_or_else(|e| panic!("{q}: {e}"));
                }
            }
        }
    }
}
