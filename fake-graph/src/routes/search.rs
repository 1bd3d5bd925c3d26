//! Microsoft Search: `POST /search/query` for `message`, `event`, `chatMessage`, `driveItem`,
//! `listItem`, `list`, `drive`, `site` (graph.md §6). Validation first (one request, allowed entity mixes, size
//! caps, `from = 0` first, no sorting or aggregations where Graph refuses them), then the KQL
//! query runs over what the caller may see — trimming happens before paging, so `total` and
//! `moreResultsAvailable` never count hidden items.

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
    kql::{self, Expr, KqlDoc, PropValue, SearchText},
    routes::{files, mail},
    store::DriveIndex,
    trimming,
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
        "event" => window(event_hits(ctx, &expr)?, from, size),
        "chatmessage" => window(chat_hits(ctx, &expr)?, from, size),
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

/// The total and the `[from, from + size)` window of a hit list.
fn window(hits: Vec<Hit>, from: usize, size: usize) -> (usize, Vec<Hit>) {
    let total = hits.len();
    (total, hits.into_iter().skip(from).take(size).collect())
}

fn message_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (_, idx) = ctx.tenant()?;
    let Some(mbi) = idx.mailboxes.get(&ctx.caller.oid) else { return Ok((0, Vec::new())) };
    let (tenant, _) = ctx.tenant()?;
    let mb = &tenant.content.mailboxes[mbi.pos];
    let positions = mail::search_mailbox(mb, mbi, expr);
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
                summary_text: format!("{} {}", m.subject, mail::plain_body(m)),
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

struct EventDoc<'a> {
    e: &'a Event,
    text: SearchText,
}

impl KqlDoc for EventDoc<'_> {
    fn text(&self) -> &SearchText {
        &self.text
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

fn event_hits(ctx: &Ctx<'_>, expr: &Expr) -> Result<Vec<Hit>, GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let Some(pos) = idx.calendars.get(&ctx.caller.oid) else { return Ok(Vec::new()) };
    let mut events: Vec<&Event> = tenant.content.calendars[*pos]
        .events
        .iter()
        .filter(|e| {
            let text = SearchText::new(&format!(
                "{} {} {} {} {}",
                e.subject,
                e.body_preview,
                e.location.as_deref().unwrap_or(""),
                e.organizer.name,
                e.organizer.address
            ));
            expr.matches(&EventDoc { e, text })
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.start));
    Ok(events
        .into_iter()
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
        .collect())
}

struct ChatDoc {
    text: SearchText,
    from: String,
    created: chrono::DateTime<chrono::Utc>,
    mentioned: bool,
}

impl KqlDoc for ChatDoc {
    fn text(&self) -> &SearchText {
        &self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "from" => PropValue::Text(SearchText::new(&self.from)),
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

fn chat_hits(ctx: &Ctx<'_>, expr: &Expr) -> Result<Vec<Hit>, GraphError> {
    let (tenant, _) = ctx.tenant()?;
    let me = ctx.caller.oid;
    let person = |oid: uuid::Uuid| {
        tenant
            .users
            .iter()
            .find(|u| u.oid == oid)
            .map(|u| (u.display_name.clone(), u.mail.clone()))
            .unwrap_or_default()
    };
    let mut found: Vec<(chrono::DateTime<chrono::Utc>, Hit)> = Vec::new();
    let mut consider = |m: &fixtures::ChatMessage,
                        chat_id: Option<&str>,
                        channel: Option<(String, String)>| {
        let (name, mail) = person(m.from);
        let body = mail::html_to_text(&m.body);
        let doc = ChatDoc {
            text: SearchText::new(&body),
            from: format!("{name} {mail}"),
            created: m.created,
            mentioned: m.mentions.contains(&me),
        };
        if !expr.matches(&doc) {
            return;
        }
        let hit = Hit {
            hit_id: exchange_like_id(&format!(
                "{}|{}|{}",
                chat_id.unwrap_or(""),
                channel.as_ref().map(|c| c.1.as_str()).unwrap_or(""),
                m.id
            )),
            summary_text: body,
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
        };
        found.push((m.created, hit));
    };
    for chat in tenant.content.chats.iter().filter(|c| c.members.contains(&me)) {
        for m in &chat.messages {
            consider(m, Some(&chat.id), None);
        }
    }
    for team in tenant.content.teams.iter().filter(|t| t.members.contains(&me)) {
        for c in team
            .channels
            .iter()
            .filter(|c| c.membership_type != "private" || c.members.contains(&me))
        {
            for m in &c.messages {
                consider(m, None, Some((team.id.to_string(), c.id.clone())));
            }
        }
    }
    found.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    Ok(found.into_iter().map(|(_, h)| h).collect())
}

struct DriveDoc<'a> {
    item: &'a DriveItem,
    text: &'a SearchText,
    author: &'a str,
}

impl KqlDoc for DriveDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        let it = self.item;
        let ext = it.name.rsplit_once('.').map(|(_, e)| e.to_owned()).unwrap_or_default();
        match name {
            "filename" | "title" => PropValue::Text(SearchText::new(&it.name)),
            "filetype" | "fileextension" => {
                PropValue::Keyword(if it.is_folder { String::new() } else { ext })
            }
            "path" => PropValue::Url(it.web_url.clone()),
            "iscontainer" => PropValue::Bool(it.is_folder),
            "isdocument" => PropValue::Bool(!it.is_folder),
            "author" | "createdby" | "modifiedby" => PropValue::Text(SearchText::new(self.author)),
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
    let want_items = kinds.contains("driveitem") || kinds.contains("listitem");
    if want_items {
        for d in &tenant.content.drives {
            let Some(di) = idx.drives.get(&d.id) else { continue };
            for (it, search) in
                d.items.iter().zip(&di.search).filter(|(i, _)| i.parent_id.is_some())
            {
                let doc = DriveDoc { item: it, text: &search.text, author: &search.author };
                if !expr.matches(&doc) || !trimming::can_see_item(&viewer, tenant, idx, d, di, it) {
                    continue;
                }
                scored.push((score(doc.text), it.modified, Found::Item(d, di, it)));
            }
        }
    }
    if kinds.contains("site") {
        for s in tenant.content.sites.iter().filter(|s| trimming::can_see_site(&viewer, s)) {
            let text = SearchText::new(&format!("{} {} {}", s.name, s.display_name, s.description));
            let doc = SiteDoc { site: s, text };
            if !expr.matches(&doc) {
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
            if !named || !expr.matches(&doc) {
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
            if !expr.matches(&doc) {
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
                    summary_text: format!("{} {}", it.name, files::file_text(it)),
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
