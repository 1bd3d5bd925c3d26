//! `chat_message_search` (`graph.md` §9.6, conformance S06): one `POST /search/query` with
//! `entityTypes: ["chatMessage"]`, never a per-chat fan-out.
//!
//! Keywords become one KQL phrase; sender and dates are restrictions built from typed values
//! (`from:address`, `sent>=…`, `sent<…`), all applied by Graph. Search returns no body: hits
//! carry the summary and an `m365://chat/{chatId}/message/{id}` URI for `read_resource`.
//! Channel messages (a `channelIdentity` with a team) need `ChannelMessage.Read.All` to read,
//! which this tool does not ask for: they are listed without a URI and marked as such.

use chrono::{DateTime, Utc};
use rmcp::{ErrorData as McpError, model::CallToolResult, schemars};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    cursor::{Cursor, CursorBinding, CursorKey},
    kql::{Address, DateOp, Kql},
    mail::{Person, address_arg, bad_arg, limit_arg, person, text_arg, time_arg},
    odata,
    shaping::{self, AppliedFilter, ByteBudget, DateTimes, Page, Truncation},
    timezone::MailboxZone,
    uri::M365Uri,
};
use crate::{
    auth::ChallengeSlot,
    graph::{GraphPath, GraphRequest, Session},
};

pub const TOOL: &str = "chat_message_search";
const DEFAULT_LIMIT: u32 = 10;
/// Graph does not document a chatMessage maximum; 25 as for the other Outlook types.
const MAX_LIMIT: u32 = 25;

/// Arguments of `chat_message_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatSearchParams {
    /// Words to find in Teams chat messages (matched as one phrase).
    #[serde(default)]
    pub query: Option<String>,
    /// Only messages from this sender: an email address, or a colleague's name (looked up in
    /// your organization's directory; an ambiguous name is refused with the candidates).
    #[serde(default)]
    pub from: Option<String>,
    /// Only messages sent at or after: `YYYY-MM-DD` (your mailbox time zone) or RFC 3339.
    #[serde(default)]
    pub sent_after: Option<String>,
    /// Only messages sent before: `YYYY-MM-DD` (your mailbox time zone) or RFC 3339.
    #[serde(default)]
    pub sent_before: Option<String>,
    /// Results per page, 1–25 (default 10).
    #[serde(default)]
    #[serde(skip_serializing)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[serde(skip_serializing)]
    pub cursor: Option<String>,
}

/// One chat message found.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ChatHit {
    /// `m365://chat/{chatId}/message/{id}`; absent for channel messages, which this tool
    /// cannot read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Person>,
    /// When it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<DateTimes>,
    /// The search summary as plain text.
    pub summary: String,
    /// `chat`, or `channel` for a team channel message.
    pub source: String,
}

/// The result of `chat_message_search`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ChatSearchResult {
    /// Messages of this page.
    pub messages: Vec<ChatHit>,
    /// Paging facts.
    pub page: Page,
    /// Every filter applied, and where.
    pub applied_filters: Vec<AppliedFilter>,
    /// Whether the result was cut to fit the byte budget.
    pub truncation: Truncation,
    /// A note about time zones, when times could not be shown in your zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone_note: Option<String>,
}

/// Validated arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub words: Option<String>,
    pub from: Option<Address>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}

pub fn check(p: &ChatSearchParams, zone: &MailboxZone) -> Result<Checked, McpError> {
    let c = Checked {
        words: text_arg("query", p.query.as_deref())?,
        from: address_arg("from", p.from.as_deref())?,
        after: time_arg("sent_after", p.sent_after.as_deref(), zone)?,
        before: time_arg("sent_before", p.sent_before.as_deref(), zone)?,
        limit: limit_arg(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    if c.words.is_none() && c.from.is_none() && c.after.is_none() && c.before.is_none() {
        return Err(bad_arg(
            "query",
            "is required unless `from`, `sent_after` or `sent_before` is given",
        ));
    }
    if let (Some(a), Some(b)) = (c.after, c.before)
        && a >= b
    {
        return Err(bad_arg("sent_before", "must be later than `sent_after`"));
    }
    Ok(c)
}

/// The Graph scopes a call needs (the time zone's permission is added by `access::open`).
pub const SCOPES: &[&str] = &["Chat.Read"];

/// The KQL and the filters it applies.
pub fn query(c: &Checked) -> (String, Vec<AppliedFilter>) {
    let mut q = Kql::new();
    let mut applied = Vec::new();
    if let Some(w) = &c.words {
        q = q.phrase(w);
        applied.push(AppliedFilter::graph("query", format!("{w} (phrase)")));
    }
    if let Some(a) = &c.from {
        q = q.address("from", a);
        applied.push(AppliedFilter::graph("from", a.as_str()));
    }
    if let Some(t) = c.after {
        q = q.datetime("sent", DateOp::Ge, t);
        applied.push(AppliedFilter::graph("sent_after", odata::datetime_literal(t)));
    }
    if let Some(t) = c.before {
        q = q.datetime("sent", DateOp::Lt, t);
        applied.push(AppliedFilter::graph("sent_before", odata::datetime_literal(t)));
    }
    (q.build(), applied)
}

fn chat_hit(h: &Value, zone: &MailboxZone) -> ChatHit {
    let r = &h["resource"];
    let channel = r["channelIdentity"].get("teamId").is_some_and(|t| !t.is_null());
    let uri = match (channel, r["chatId"].as_str(), r["id"].as_str()) {
        (false, Some(chat), Some(id)) => {
            Some(M365Uri::chat_message(chat, id)).filter(M365Uri::is_valid).map(|u| u.to_string())
        }
        _ => None,
    };
    let (summary, _) = shaping::truncate_text(
        &shaping::clean_summary(h["summary"].as_str().unwrap_or_default()),
        400,
    );
    ChatHit {
        uri,
        from: r.get("from").and_then(person),
        sent: r["createdDateTime"].as_str().and_then(|t| DateTimes::parse(t, zone)),
        summary,
        source: if channel { "channel" } else { "chat" }.to_owned(),
    }
}

/// Runs the search as the session's caller.
pub async fn run(
    session: &Session,
    cursors: &CursorKey,
    zone: &MailboxZone,
    challenge: &ChallengeSlot,
    params: &ChatSearchParams,
    request_ids: &mut Vec<String>,
) -> Result<Result<ChatSearchResult, CallToolResult>, McpError> {
    let c = check(params, zone)?;
    let binding = CursorBinding::new(&session.caller, TOOL, params);
    let state = Cursor::open_arg(cursors, &binding, params.cursor.as_deref())?;
    let from = state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64).unwrap_or(0);
    let (kql, applied_filters) = query(&c);
    let body = json!({"requests": [{
        "entityTypes": ["chatMessage"],
        "query": {"queryString": kql},
        "from": from,
        "size": c.limit,
    }]});
    let req = GraphRequest::query_post(GraphPath::fixed("/search/query"), body)
        .map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let mut resp = match session.post_json::<Value>(&req).await {
        Ok(r) => r,
        Err(f) => return Ok(Err(shaping::graph_failure(&f, challenge))),
    };
    request_ids.extend(resp.request_id.clone());
    let hits = shaping::take_hits(&mut resp.body);
    let container = &resp.body["value"][0]["hitsContainers"][0];
    let mut budget = ByteBudget::new(shaping::DEFAULT_RESULT_BUDGET);
    let messages: Vec<ChatHit> =
        hits.iter().map(|h| chat_hit(h, zone)).take_while(|h| budget.admit(h)).collect();
    let cut = messages.len() < hits.len();
    let more = container["moreResultsAvailable"].as_bool() == Some(true) || cut;
    let next = from + messages.len() as u64;
    Ok(Ok(ChatSearchResult {
        page: Page {
            has_more: more,
            returned: u32::try_from(messages.len()).unwrap_or(u32::MAX),
            total_estimate: None,
            next_cursor: more.then(|| Cursor::seal(cursors, &binding, json!({"from": next}))),
        },
        messages,
        applied_filters,
        truncation: budget.truncation(),
        time_zone_note: zone.note.clone(),
    }))
}

/// The concise text next to the structured result.
pub fn render(r: &ChatSearchResult) -> String {
    let mut out = format!(
        "{} chat message(s){}\n",
        r.page.returned,
        if r.page.has_more { ", more available (pass next_cursor)" } else { "" }
    );
    for m in &r.messages {
        let when = m.sent.as_ref().map_or("", |d| d.local.as_str());
        let from = m.from.as_ref().map_or("", |p| p.name.as_str());
        out.push_str(&format!("- {when} {from}: {}", m.summary));
        match &m.uri {
            Some(u) => out.push_str(&format!(" <{u}>")),
            None => out.push_str(" (channel message; not readable with Chat.Read)"),
        }
        out.push('\n');
    }
    out
}

#[rmcp::tool_router(router = chat_router, vis = "pub(crate)")]
impl super::Connector {
    #[rmcp::tool(
        name = "chat_message_search",
        description = "Search the signed-in user's Microsoft Teams chat messages by keywords, sender and sent dates (Microsoft Search). Returns pages with next_cursor; chat messages have m365:// URIs for read_resource (channel messages are listed without one).",
        annotations(
            title = "Teams chat search",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = rmcp::handler::server::tool::schema_for_output::<ChatSearchResult>()
    )]
    async fn chat_message_search(
        &self,
        auth: super::Authenticated,
        rmcp::handler::server::wrapper::Parameters(args): rmcp::handler::server::wrapper::Parameters<ChatSearchParams>,
    ) -> Result<CallToolResult, McpError> {
        use super::mail::{answer, argument_names, begin_call};
        let ctx = self.context();
        let names = argument_names(
            &args,
            &[("cursor", args.cursor.is_some()), ("limit", args.limit.is_some())],
        );
        let call = begin_call!(ctx, auth, TOOL, names, args.query.as_deref());
        let limit = ctx.capped_limit(&auth.caller, args.limit, DEFAULT_LIMIT, MAX_LIMIT);
        let args = ChatSearchParams { limit, ..args };
        // Arguments are checked before any token or Graph work; again in the mailbox zone.
        let precheck = ChatSearchParams {
            from: args.from.as_ref().map(|_| super::mail::PRECHECK_ADDRESS.to_owned()),
            ..args.clone()
        };
        if let Err(e) = check(&precheck, &MailboxZone::utc()) {
            return answer(call, Vec::new(), Err(e), render);
        }
        let mut ids = Vec::new();
        let (session, zone) = match super::access::open(ctx, &auth, TOOL, SCOPES, &mut ids).await {
            Ok(opened) => opened,
            Err(result) => return answer(call, ids, Ok(Err(result)), render),
        };
        let mut args = args;
        match super::mail::resolve_person_arg(ctx, &auth, TOOL, "from", args.from.take(), &mut ids)
            .await
        {
            Ok(Ok(address)) => args.from = address,
            Ok(Err(result)) => return answer(call, ids, Ok(Err(result)), render),
            Err(e) => return answer(call, ids, Err(e), render),
        }
        let outcome = run(&session, &ctx.cursor, &zone, &auth.challenge, &args, &mut ids).await;
        answer(call, ids, outcome, render)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_sender_and_dates_become_one_safe_query() {
        let p = ChatSearchParams {
            query: Some("launch\" OR NOT x".into()),
            from: Some("megan@contoso.com".into()),
            sent_after: Some("2024-05-01T00:00:00Z".into()),
            ..Default::default()
        };
        let c = check(&p, &MailboxZone::utc()).expect("valid");
        let (kql, applied) = query(&c);
        assert_eq!(kql, "\"launch OR NOT x\" from:megan@contoso.com sent>=2024-05-01T00:00:00Z");
        assert_eq!(applied.len(), 3);
    }

    #[test]
    fn channel_hits_get_no_uri() {
        let zone = MailboxZone::utc();
        let chat = json!({"summary": "<c0>hi</c0>", "resource": {"id": "1657782060227", "chatId": "19:abc@thread.v2", "channelIdentity": {}, "createdDateTime": "2024-05-01T10:00:00Z"}});
        let channel = json!({"summary": "x", "resource": {"id": "1", "channelIdentity": {"teamId": "t", "channelId": "c"}}});
        let h = chat_hit(&chat, &zone);
        assert_eq!(
            h.uri.as_deref(),
            Some("m365://chat/19%3Aabc%40thread.v2/message/1657782060227")
        );
        assert_eq!(h.summary, "hi");
        assert_eq!(chat_hit(&channel, &zone).uri, None);
        assert!(check(&ChatSearchParams::default(), &zone).is_err());
    }
}
