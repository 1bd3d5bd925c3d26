//! `chat_message_search` (`graph.md` §9.6, conformance S06): one `POST /search/query` with
//! `entityTypes: ["chatMessage"]`, never a per-chat fan-out.
//!
//! Keywords become one KQL phrase; sender and dates are restrictions built from typed values
//! (`from:address`, `sent>=…`, `sent<…`), all applied by Graph. Search returns no body: hits
//! carry the summary and an `m365://chat/{chatId}/message/{id}` URI for `read_resource`.
//! Channel messages (a `channelIdentity` with a team) need `ChannelMessage.Read.All` to read,
//! which this tool does not ask for: they are listed without a URI and marked as such.

use chrono::{DateTime, Utc};
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Connector,
    args::{Bounds, PersonArg, TimeArg, bad_arg, bounds_in, limit_arg, resolve_person, text_arg},
    cursor::{Cursor, CursorBinding, CursorKey},
    mail::Person,
    mailbox::MailboxZone,
    pipeline::{Answer, CallSession, Checks, Scope, Tool, ToolArgs, ToolError},
    shaping::{self, AppliedFilter, ByteBudget, DateTimes, Page, Truncation},
};
use crate::domain::uri::{M365Uri, ResourceKind};
use crate::graph::{GraphFailure, GraphPath, GraphRequest};
use crate::graph::{
    model::ChatMessage,
    query::{
        kql::{Address, DateOp, Kql},
        odata,
        search::{SearchAnswer, SearchHit},
    },
};

/// `chat_message_search`.
pub static CHAT_MESSAGE_SEARCH: Tool = Tool {
    name: "chat_message_search",
    title: "Teams chat search",
    description: "Search the signed-in user's Microsoft Teams chat messages by keywords, sender and sent dates (Microsoft Search). Returns pages with next_cursor; chat messages have m365:// URIs for read_resource (channel messages are listed without one).",
    needs: &[SCOPES],
    governs: &[ResourceKind::Chat, ResourceKind::ChatMessage],
    forbidden_message: None,
};

/// The tool's name, in cursor bindings.
pub const TOOL: &str = CHAT_MESSAGE_SEARCH.name;
const DEFAULT_LIMIT: u32 = 10;
/// Graph does not document a chatMessage maximum; 25 as for the other Outlook types.
const MAX_LIMIT: u32 = 25;

/// Arguments of `chat_message_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatSearchArgs {
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

/// The arguments checked before any token or Graph work, each text parsed once. A sender
/// given by name and days (midnight in the mailbox zone) are completed by
/// [`ChatSearch::criteria`] once the call has begun.
#[derive(Clone, Debug)]
pub struct ChatSearch {
    /// The arguments as given (the page size capped), for the cursor binding.
    pub args: ChatSearchArgs,
    pub words: Option<String>,
    pub from: Option<PersonArg>,
    pub after: Option<TimeArg>,
    pub before: Option<TimeArg>,
    pub limit: u32,
}

/// A [`ChatSearch`] completed in the call: the sender's address, the bounds as instants in
/// the mailbox zone.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatCriteria {
    pub words: Option<String>,
    pub from: Option<Address>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// Checks every argument before any token or Graph work.
pub fn check(p: &ChatSearchArgs) -> Result<ChatSearch, McpError> {
    let search = ChatSearch {
        args: p.clone(),
        words: text_arg("query", p.query.as_deref())?,
        from: PersonArg::parse("from", p.from.as_deref())?,
        after: TimeArg::parse("sent_after", p.sent_after.as_deref())?,
        before: TimeArg::parse("sent_before", p.sent_before.as_deref())?,
        limit: limit_arg(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    if search.words.is_none()
        && search.from.is_none()
        && search.after.is_none()
        && search.before.is_none()
    {
        return Err(bad_arg(
            "query",
            "is required unless `from`, `sent_after` or `sent_before` is given",
        ));
    }
    // The bounds' order as far as it is known before the zone is (days at UTC midnight).
    search.bounds(&MailboxZone::utc())?;
    Ok(search)
}

impl ChatSearch {
    /// The sent-date bounds in `zone`, in order.
    fn bounds(&self, zone: &MailboxZone) -> Result<Bounds, McpError> {
        bounds_in(zone, ("sent_after", self.after), ("sent_before", self.before))
    }

    /// The search completed in the call: the sender's address (looked up by the caller of
    /// this) and the bounds in the mailbox `zone`.
    pub fn criteria(
        &self,
        zone: &MailboxZone,
        from: Option<Address>,
    ) -> Result<ChatCriteria, McpError> {
        let (after, before) = self.bounds(zone)?;
        Ok(ChatCriteria { words: self.words.clone(), from, after, before, limit: self.limit })
    }
}

/// The Graph scopes a call needs (the time zone's permission is added by `access::open`).
pub const SCOPES: &[&str] = &["Chat.Read"];

/// The KQL and the filters it applies.
pub fn query(c: &ChatCriteria) -> (String, Vec<AppliedFilter>) {
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

fn chat_hit(h: &SearchHit<ChatMessage>, zone: &MailboxZone) -> ChatHit {
    let default = ChatMessage::default();
    let r = h.resource.as_ref().unwrap_or(&default);
    let channel = r.channel_identity.as_ref().is_some_and(|c| c.team_id);
    let uri = match (channel, r.chat_id.as_deref(), r.id.as_deref()) {
        (false, Some(chat), Some(id)) => {
            Some(M365Uri::chat_message(chat, id)).filter(M365Uri::is_valid).map(|u| u.to_string())
        }
        _ => None,
    };
    let (summary, _) = shaping::truncate_text(
        &shaping::clean_summary(h.summary.as_deref().unwrap_or_default()),
        400,
    );
    let from = r.from.as_ref().and_then(|f| f.email_address.as_ref()).map(Person::from);
    ChatHit {
        uri,
        from,
        sent: r.created_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
        summary,
        source: if channel { "channel" } else { "chat" }.to_owned(),
    }
}

/// Runs the search as the session's caller; `args` are the arguments as given (the cursor,
/// and the binding it is checked against, which names the sender by the resolved address).
pub async fn run(
    session: &CallSession,
    cursors: &CursorKey,
    zone: &MailboxZone,
    args: &ChatSearchArgs,
    c: &ChatCriteria,
) -> Result<ChatSearchResult, ToolError> {
    let bound = ChatSearchArgs { from: c.from.as_ref().map(Address::to_string), ..args.clone() };
    let binding = CursorBinding::new(&session.0.caller, TOOL, &bound);
    let state = Cursor::open_arg(cursors, &binding, args.cursor.as_deref())?;
    let from = state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64).unwrap_or(0);
    let (kql, applied_filters) = query(c);
    let body = json!({"requests": [{
        "entityTypes": ["chatMessage"],
        "query": {"queryString": kql},
        "from": from,
        "size": c.limit,
    }]});
    let req = GraphRequest::query_post(GraphPath::fixed("/search/query"), body)
        .map_err(|e| ToolError::Graph(GraphFailure::new(e)))?;
    let resp = session.post_json::<SearchAnswer<ChatMessage>>(&req).await?;
    let container = resp.body.into_first_container().unwrap_or_default();
    let hits = &container.hits;
    let mut budget = ByteBudget::new(shaping::DEFAULT_RESULT_BUDGET);
    let messages: Vec<ChatHit> =
        hits.iter().map(|h| chat_hit(h, zone)).take_while(|h| budget.admit(h)).collect();
    let cut = messages.len() < hits.len();
    let more = container.more_results_available == Some(true) || cut;
    let next = from + messages.len() as u64;
    Ok(ChatSearchResult {
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
    })
}

/// The concise text next to the structured result.
pub fn render(r: &ChatSearchResult) -> String {
    let mut out = format!("{} chat message(s){}\n", r.page.returned, r.page.more_note());
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
    out.extend(r.truncation.line());
    out
}

impl ToolArgs for ChatSearchArgs {
    type Valid = ChatSearch;
    /// Checked before any token or Graph work; a name in `from` is looked up, and days are
    /// placed in the mailbox zone, once the call has begun.
    fn validate(self, checks: &Checks) -> Result<ChatSearch, McpError> {
        check(&Self { limit: checks.capped_limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT), ..self })
    }
    fn query_text(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

impl Answer for ChatSearchResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// The router entry of `chat_message_search`.
pub fn route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        CHAT_MESSAGE_SEARCH,
        ChatSearchArgs,
        ChatSearchResult,
        search
    )
}

/// The tool's body: the session and zone, the person named in `from`, the search.
async fn search(call: Scope<'_>, search: ChatSearch) -> Result<ChatSearchResult, ToolError> {
    let (session, zone) = call.open(SCOPES).await?;
    let from = resolve_person(&call, "from", search.from.clone()).await?;
    let criteria = search.criteria(&zone, from)?;
    run(&session, &call.ctx.cursor, &zone, &search.args, &criteria).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_sender_and_dates_become_one_safe_query() {
        let p = ChatSearchArgs {
            query: Some("launch\" OR NOT x".into()),
            from: Some("megan@contoso.com".into()),
            sent_after: Some("2024-05-01T00:00:00Z".into()),
            ..Default::default()
        };
        let search = check(&p).expect("valid");
        let from = Address::parse("megan@contoso.com").ok();
        let c = search.criteria(&MailboxZone::utc(), from).expect("complete");
        let (kql, applied) = query(&c);
        assert_eq!(kql, "\"launch OR NOT x\" from:megan@contoso.com sent>=2024-05-01T00:00:00Z");
        assert_eq!(applied.len(), 3);
    }

    #[test]
    fn channel_hits_get_no_uri() {
        let zone = MailboxZone::utc();
        let chat = json!({"summary": "<c0>hi</c0>", "resource": {"id": "1657782060227", "chatId": "19:abc@thread.v2", "channelIdentity": {}, "createdDateTime": "2024-05-01T10:00:00Z"}});
        let channel = json!({"summary": "x", "resource": {"id": "1", "channelIdentity": {"teamId": "t", "channelId": "c"}}});
        let hit = |v: Value| serde_json::from_value::<SearchHit<ChatMessage>>(v).expect("a hit");
        let (chat, channel) = (hit(chat), hit(channel));
        let h = chat_hit(&chat, &zone);
        assert_eq!(
            h.uri.as_deref(),
            Some("m365://chat/19%3Aabc%40thread.v2/message/1657782060227")
        );
        assert_eq!(h.summary, "hi");
        assert_eq!(chat_hit(&channel, &zone).uri, None);
        assert!(check(&ChatSearchArgs::default()).is_err());
    }
    #[test]
    fn the_text_says_when_the_result_was_cut() {
        let result = |truncation| ChatSearchResult {
            messages: Vec::new(),
            page: Page::default(),
            applied_filters: Vec::new(),
            truncation,
            time_zone_note: None,
        };
        let cut = render(&result(Truncation::because("result byte budget of 10 bytes reached")));
        assert_eq!(cut, "0 chat message(s)\n(truncated: result byte budget of 10 bytes reached)\n");
        assert_eq!(render(&result(Truncation::none())), "0 chat message(s)\n");
    }
}
