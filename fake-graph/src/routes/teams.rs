//! Teams: chats (`/me/chats`, `/chats/{id}`, messages) and channels (`/teams/{id}/channels`,
//! channel messages and replies). Chats a user is not a member of, and teams or private
//! channels they do not belong to, answer 404 like nonexistent ones.

use fixtures::{BodyType, Channel, Chat, ChatMessage, Team, Tenant};
use serde_json::{Value, json};

use super::{Ctx, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult},
    odata::{self, CmpOp, FVal, Filter},
};

pub fn chat_json(tenant: &Tenant, c: &Chat) -> Value {
    let last = c.messages.iter().map(|m| m.created).max().unwrap_or(c.created);
    json!({
        "id": c.id,
        "topic": c.topic,
        "createdDateTime": odata::dt(c.created),
        "lastUpdatedDateTime": odata::dt(last),
        "chatType": c.chat_type,
        "webUrl": format!("https://teams.microsoft.com/l/chat/{}/0?tenantId={}", c.id, tenant.id),
        "tenantId": tenant.id.to_string(),
        "onlineMeetingInfo": null,
        "viewpoint": {"isHidden": false, "lastMessageReadDateTime": odata::dt(last)},
    })
}

/// A Teams chat message; `chat` or `channel` says where it lives.
pub fn message_json(
    tenant: &Tenant,
    m: &ChatMessage,
    chat_id: Option<&str>,
    channel: Option<(&Team, &Channel)>,
) -> Value {
    let user = tenant.users.iter().find(|u| u.oid == m.from);
    json!({
        "id": m.id,
        "replyToId": m.reply_to_id,
        "etag": m.id,
        "messageType": "message",
        "createdDateTime": odata::dt(m.created),
        "lastModifiedDateTime": odata::dt(m.created),
        "lastEditedDateTime": null,
        "deletedDateTime": null,
        "subject": null,
        "summary": null,
        "chatId": chat_id,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": channel.map(|(t, c)| format!("https://teams.microsoft.com/l/message/{}/{}?groupId={}&tenantId={}", c.id, m.id, t.id, tenant.id)),
        "channelIdentity": channel.map(|(t, c)| json!({"teamId": t.id.to_string(), "channelId": c.id})),
        "policyViolation": null,
        "eventDetail": null,
        "from": {
            "application": null,
            "device": null,
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": m.from.to_string(),
                "displayName": user.map(|u| u.display_name.clone()),
                "userIdentityType": "aadUser",
                "tenantId": tenant.id.to_string(),
            },
        },
        "body": {
            "contentType": match m.body_type { BodyType::Text => "text", BodyType::Html => "html" },
            "content": m.body,
        },
        "attachments": [],
        "mentions": m.mentions.iter().enumerate().map(|(i, oid)| {
            let name = tenant.users.iter().find(|u| u.oid == *oid).map(|u| u.display_name.clone());
            json!({"id": i, "mentionText": name, "mentioned": {"user": {"id": oid.to_string(), "displayName": name, "userIdentityType": "aadUser"}}})
        }).collect::<Vec<_>>(),
        "reactions": [],
        "messageHistory": [],
    })
}

fn member_chat<'a>(ctx: &'a Ctx<'_>, id: &str) -> Result<(&'a Tenant, &'a Chat), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let chat = idx
        .chats
        .get(id)
        .map(|p| &tenant.content.chats[*p])
        .ok_or_else(GraphError::teams_not_found)?;
    if !chat.members.contains(&ctx.caller.oid) {
        return Err(GraphError::teams_not_found());
    }
    Ok((tenant, chat))
}

pub fn my_chats(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::CHATS)?;
    let (tenant, _) = ctx.tenant()?;
    let mut chats: Vec<&Chat> =
        tenant.content.chats.iter().filter(|c| c.members.contains(&ctx.caller.oid)).collect();
    chats.sort_by_key(|c| {
        std::cmp::Reverse(c.messages.iter().map(|m| m.created).max().unwrap_or(c.created))
    });
    let top = ctx.query.top(50, 50)?;
    let offset = ctx.query.offset()?;
    let select = ctx.query.select();
    let page: Vec<Value> = chats
        .iter()
        .skip(offset)
        .take(top)
        .map(|c| odata::apply_select(chat_json(tenant, c), &select))
        .collect();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/chats", ctx.caller.oid),
        "@odata.count": page.len(),
        "value": page,
    });
    if offset + top < chats.len() {
        body["@odata.nextLink"] = json!(ctx.query.next_link(ctx.base(), ctx.path, offset + top));
    }
    Ok(json(body))
}

pub fn get_chat(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::CHATS)?;
    let (tenant, chat) = member_chat(ctx, id)?;
    let mut body = chat_json(tenant, chat);
    body["@odata.context"] = json!("https://graph.microsoft.com/v1.0/$metadata#chats/$entity");
    Ok(json(odata::apply_select(body, &ctx.query.select())))
}

/// Lists chat or channel messages with the chats API's `$top`/`$orderby`/`$filter` rules.
fn message_page(
    ctx: &Ctx<'_>,
    mut msgs: Vec<&ChatMessage>,
    render: impl Fn(&ChatMessage) -> Value,
    context: String,
) -> GraphResult {
    let top = ctx.query.top(20, 50)?;
    let order = ctx.query.get("$orderby").map(odata::parse_orderby).transpose()?;
    let order_prop = match order.as_deref() {
        None => "lastmodifieddatetime".to_owned(),
        Some([(p, true)]) if p == "createddatetime" || p == "lastmodifieddatetime" => p.clone(),
        Some(_) => {
            return Err(GraphError::bad_request(
                "BadRequest",
                "$orderby is only supported on 'lastModifiedDateTime desc' and 'createdDateTime desc'.",
            ));
        }
    };
    // Graph ignores $filter unless $orderby names the same property.
    if let (Some(raw), Some(_)) = (ctx.query.get("$filter"), &order) {
        let f = odata::parse_filter(raw)?;
        if let Filter::Cmp { path, op, value: FVal::Date(d) } = &f
            && path == &order_prop
        {
            let allowed = if path == "createddatetime" {
                matches!(op, CmpOp::Lt)
            } else {
                matches!(op, CmpOp::Lt | CmpOp::Gt)
            };
            if !allowed {
                return Err(GraphError::bad_request(
                    "BadRequest",
                    format!("The $filter operator is not supported on '{path}'."),
                ));
            }
            msgs.retain(|m| if matches!(op, CmpOp::Lt) { m.created < *d } else { m.created > *d });
        }
    }
    msgs.sort_by_key(|m| std::cmp::Reverse((m.created, m.id.clone())));
    let offset = ctx.query.offset()?;
    let select = ctx.query.select();
    let page: Vec<Value> = msgs
        .iter()
        .skip(offset)
        .take(top)
        .map(|m| odata::apply_select(render(m), &select))
        .collect();
    let mut body = json!({"@odata.context": context, "@odata.count": page.len(), "value": page});
    if offset + top < msgs.len() {
        body["@odata.nextLink"] = json!(ctx.query.next_link(ctx.base(), ctx.path, offset + top));
    }
    Ok(json(body))
}

pub fn chat_messages(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::CHAT_MESSAGES)?;
    let (tenant, chat) = member_chat(ctx, id)?;
    message_page(
        ctx,
        chat.messages.iter().collect(),
        |m| message_json(tenant, m, Some(&chat.id), None),
        format!("https://graph.microsoft.com/v1.0/$metadata#chats('{}')/messages", chat.id),
    )
}

pub fn chat_message(ctx: &Ctx<'_>, id: &str, mid: &str) -> GraphResult {
    ctx.caller.require(&perms::CHAT_MESSAGES)?;
    let (tenant, chat) = member_chat(ctx, id)?;
    let m = chat.messages.iter().find(|m| m.id == mid).ok_or_else(GraphError::teams_not_found)?;
    let mut body = message_json(tenant, m, Some(&chat.id), None);
    body["@odata.context"] = json!(format!(
        "https://graph.microsoft.com/v1.0/$metadata#chats('{}')/messages/$entity",
        chat.id
    ));
    Ok(json(odata::apply_select(body, &ctx.query.select())))
}

fn member_team<'a>(ctx: &'a Ctx<'_>, id: &str) -> Result<(&'a Tenant, &'a Team), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let team = idx
        .teams
        .get(&id.to_ascii_lowercase())
        .map(|p| &tenant.content.teams[*p])
        .ok_or_else(GraphError::teams_not_found)?;
    if !team.members.contains(&ctx.caller.oid) {
        return Err(GraphError::teams_not_found());
    }
    Ok((tenant, team))
}

fn visible_channel(ctx: &Ctx<'_>, c: &Channel) -> bool {
    c.membership_type != "private" || c.members.contains(&ctx.caller.oid)
}

pub fn joined_teams(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&crate::auth::Permission {
        operation: "GET /me/joinedTeams",
        any_of: &["Team.ReadBasic.All", "TeamSettings.Read.All", "User.Read.All"],
        service: crate::error::Service::Teams,
    })?;
    let (tenant, _) = ctx.tenant()?;
    let teams: Vec<Value> = tenant
        .content
        .teams
        .iter()
        .filter(|t| t.members.contains(&ctx.caller.oid))
        .map(|t| json!({"id": t.id.to_string(), "displayName": t.display_name, "description": t.description, "isArchived": false, "tenantId": tenant.id.to_string()}))
        .collect();
    Ok(json(
        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#teams", "@odata.count": teams.len(), "value": teams}),
    ))
}

pub fn channels(ctx: &Ctx<'_>, team: &str) -> GraphResult {
    ctx.caller.require(&perms::CHANNELS)?;
    let (tenant, team) = member_team(ctx, team)?;
    let select = ctx.query.select();
    let list: Vec<Value> = team
        .channels
        .iter()
        .filter(|c| visible_channel(ctx, c))
        .map(|c| {
            odata::apply_select(
                json!({
                    "id": c.id,
                    "createdDateTime": null,
                    "displayName": c.display_name,
                    "description": null,
                    "isFavoriteByDefault": null,
                    "email": "",
                    "tenantId": tenant.id.to_string(),
                    "webUrl": format!("https://teams.microsoft.com/l/channel/{}/{}?groupId={}&tenantId={}", c.id, c.display_name, team.id, tenant.id),
                    "membershipType": c.membership_type,
                }),
                &select,
            )
        })
        .collect();
    Ok(json(json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#teams('{}')/channels", team.id),
        "@odata.count": list.len(),
        "value": list,
    })))
}

fn channel<'a>(
    ctx: &'a Ctx<'_>,
    team: &str,
    channel: &str,
) -> Result<(&'a Tenant, &'a Team, &'a Channel), GraphError> {
    let (tenant, team) = member_team(ctx, team)?;
    let c = team
        .channels
        .iter()
        .find(|c| c.id == channel && visible_channel(ctx, c))
        .ok_or_else(GraphError::teams_not_found)?;
    Ok((tenant, team, c))
}

pub fn channel_messages(
    ctx: &Ctx<'_>,
    team: &str,
    chan: &str,
    replies_to: Option<&str>,
) -> GraphResult {
    ctx.caller.require(&perms::CHANNEL_MESSAGES)?;
    let (tenant, team, c) = channel(ctx, team, chan)?;
    let msgs: Vec<&ChatMessage> = match replies_to {
        None => c.messages.iter().filter(|m| m.reply_to_id.is_none()).collect(),
        Some(parent) => {
            if !c.messages.iter().any(|m| m.id == parent) {
                return Err(GraphError::teams_not_found());
            }
            c.messages.iter().filter(|m| m.reply_to_id.as_deref() == Some(parent)).collect()
        }
    };
    let context = format!(
        "https://graph.microsoft.com/v1.0/$metadata#teams('{}')/channels('{}')/messages",
        team.id, c.id
    );
    message_page(ctx, msgs, |m| message_json(tenant, m, None, Some((team, c))), context)
}

pub fn channel_message(ctx: &Ctx<'_>, team: &str, chan: &str, mid: &str) -> GraphResult {
    ctx.caller.require(&perms::CHANNEL_MESSAGES)?;
    let (tenant, team, c) = channel(ctx, team, chan)?;
    let m = c.messages.iter().find(|m| m.id == mid).ok_or_else(GraphError::teams_not_found)?;
    Ok(json(odata::apply_select(
        message_json(tenant, m, None, Some((team, c))),
        &ctx.query.select(),
    )))
}
