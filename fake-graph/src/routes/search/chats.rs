//! Teams hits: messages of the caller's chats and of the channels of joined teams, newest
//! first; `chatId` / `channelIdentity` as Graph gives them.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Hit;
use crate::{
    error::GraphError,
    kql::{Expr, KqlDoc, PropValue, Query, SearchText},
    routes::Ctx,
};

pub(super) fn none_in_text(_: &str) -> bool {
    false
}

pub(super) struct ChatDoc<'a> {
    pub(super) text: &'a SearchText,
    /// The sender's display name and mail.
    pub(super) from: (&'a str, &'a str),
    pub(super) created: chrono::DateTime<chrono::Utc>,
    pub(super) mentioned: bool,
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
pub(super) fn chat_hits(
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
