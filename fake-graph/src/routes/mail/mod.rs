//! Outlook mail: messages (list, get, `$filter`, `$search`, `$orderby`, paging), attachments,
//! mail folders; `Prefer: IdType="ImmutableId"` and `outlook.body-content-type`. The handlers
//! are here; `message` writes a message's JSON, `query` makes it a `$filter` / KQL subject.

mod message;
mod query;

pub use self::{
    message::{Render, message_id, message_json, preview},
    query::{MsgDoc, message_in_text, search_mailbox},
};
use self::{
    message::{wanted_fields, write_message},
    query::MsgFields,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use fixtures::{Mailbox, Message, User};
use serde_json::{Value, json};

use super::{Ctx, applied, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult, Service},
    kql,
    odata::{self, Fields},
    store::MailboxIndex,
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
