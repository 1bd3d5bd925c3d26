//! `outlook_email_search` (`graph.md` §9.3, conformance S03).
//!
//! # Which Graph call
//! | Arguments | Call | Why |
//! |---|---|---|
//! | `query` (± sender, recipient, dates, attachments), own mailbox, no folder | `POST /search/query` `message` | ranked, searches attachments, summaries |
//! | `query` with a `folder` or a shared `mailbox`, or `to` without `query` | `GET …/messages?$search="…"` | `/search/query` covers only the signed-in user's whole mailbox |
//! | no `query`, no `to` | `GET …/messages?$filter=…&$orderby=receivedDateTime desc` | exact, sorted, deep paging |
//!
//! `$search` is never combined with `$filter` or `$orderby` (Graph answers 400): in that form
//! every restriction goes into the KQL. In the `$filter` form `receivedDateTime` comes first,
//! as `$orderby` requires (`InefficientFilter` otherwise). Free text reaches Graph only through
//! [`crate::graph::query::kql`], values only through [`crate::graph::query::odata`].
//!
//! Paging: a search-API cursor holds the next `from`; an OData cursor holds Graph's
//! `@odata.nextLink` (sealed, so only this caller, tool and query can replay it, and the client
//! still refuses a link outside the Graph base).
//!
//! A shared mailbox (`mailbox`) is read through `/users/{address}/messages` and needs
//! `Mail.Read.Shared`; its messages get no `m365://` URI because `read_resource` reads mail
//! through `/me` only (`security.md` E7).
//!
//! # Layout
//! This file is the tool: arguments, checks, the body, the result. `query` builds the Graph
//! request of each form in the table above.

use chrono::{DateTime, Utc};
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    Connector,
    args::{
        Bounds, PersonArg, TimeArg, address_arg, bad_arg, bounds_in, limit_arg, resolve_person,
        text_arg,
    },
    cursor::{Cursor, CursorBinding, CursorKey},
    mailbox::MailboxZone,
    pipeline::{Answer, CallSession, Checks, Scope, Tool, ToolArgs, ToolError},
    shaping::{self, AppliedFilter, ByteBudget, DateTimes, Page, Truncation},
};
use crate::domain::uri::{M365Uri, ResourceKind};
use crate::graph::{
    model::{EmailAddress, Message, ODataPage, Recipient},
    query::{kql::Address, search::SearchAnswer},
};
use crate::{
    domain::ScopeSet,
    graph::{GraphFailure, GraphPath, GraphRequest},
};

/// `outlook_email_search`.
pub static OUTLOOK_EMAIL_SEARCH: Tool = Tool {
    name: "outlook_email_search",
    title: "Outlook mail search",
    description: "Search the signed-in user's Outlook mail (or a shared mailbox, with Mail.Read.Shared) by keywords, sender, recipient, received dates, folder and attachments. Returns pages with next_cursor; every message of your own mailbox has an m365:// URI for read_resource. Times are in UTC and your mailbox time zone.",
    needs: &[&["Mail.Read"]],
    governs: &[ResourceKind::Mail, ResourceKind::MailAttachment],
    forbidden_message: None,
};

/// The tool's name, in cursor bindings.
pub const TOOL: &str = OUTLOOK_EMAIL_SEARCH.name;
/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 10;
/// `/search/query` returns at most 25 messages a page (`graph.md` §5.3).
const MAX_LIMIT: u32 = 25;
mod query;

pub use query::{EmailQuery, plan, search_body};

/// Folders a caller may name (Graph's well-known names).
const FOLDERS: &[&str] = &["inbox", "sentitems", "drafts", "deleteditems", "archive", "junkemail"];

/// Arguments of `outlook_email_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSearchArgs {
    /// Words to find in subject, body, sender and attachments. Matched as one phrase in your
    /// own mailbox; as all of the words in a folder or a shared mailbox.
    #[serde(default)]
    pub query: Option<String>,
    /// Only mail from this sender: an email address, or a colleague's name (looked up in your
    /// organization's directory; an ambiguous name is refused with the candidates).
    #[serde(default)]
    pub from: Option<String>,
    /// Only mail sent to this recipient (To or Cc): an email address, or a colleague's name.
    #[serde(default)]
    pub to: Option<String>,
    /// Only mail received at or after this time: `YYYY-MM-DD` (midnight in your mailbox time
    /// zone) or RFC 3339.
    #[serde(default)]
    pub received_after: Option<String>,
    /// Only mail received before this time: `YYYY-MM-DD` (midnight in your mailbox time zone,
    /// exclusive) or RFC 3339.
    #[serde(default)]
    pub received_before: Option<String>,
    /// A well-known folder: inbox, sentitems, drafts, deleteditems, archive or junkemail.
    #[serde(default)]
    pub folder: Option<String>,
    /// Only mail with (true) or without (false) attachments.
    #[serde(default)]
    pub has_attachments: Option<bool>,
    /// A shared mailbox's address to search instead of your own (needs Mail.Read.Shared).
    #[serde(default)]
    pub mailbox: Option<String>,
    /// Results per page, 1–25 (default 10).
    #[serde(default)]
    #[serde(skip_serializing)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, to continue the same search.
    #[serde(default)]
    #[serde(skip_serializing)]
    pub cursor: Option<String>,
}

/// A person as Graph's `emailAddress`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Person {
    /// Display name.
    pub name: String,
    /// Email address.
    pub address: String,
}

/// One message found.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EmailHit {
    /// `m365://mail/{id}` for `read_resource`; absent for shared-mailbox messages, which
    /// `read_resource` cannot open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Person>,
    /// When it was received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<DateTimes>,
    /// Whether it has attachments.
    pub has_attachments: bool,
    /// A short preview or the search summary, as plain text.
    pub preview: String,
}

/// The result of `outlook_email_search`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EmailSearchResult {
    /// `me`, or the shared mailbox searched.
    pub mailbox: String,
    /// The Graph call used: `search_api`, `odata_search` or `odata_filter`.
    pub method: String,
    /// The messages of this page, newest first (search API: the most relevant may lead).
    pub messages: Vec<EmailHit>,
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

/// The arguments checked before any token or Graph work, each text parsed once. People given
/// by name and days (midnight in the mailbox zone) are completed by [`EmailSearch::criteria`]
/// once the call has begun.
#[derive(Clone, Debug)]
pub struct EmailSearch {
    /// The arguments as given (the page size capped), for the cursor binding.
    pub args: EmailSearchArgs,
    pub query: Option<String>,
    pub from: Option<PersonArg>,
    pub to: Option<PersonArg>,
    pub after: Option<TimeArg>,
    pub before: Option<TimeArg>,
    pub folder: Option<&'static str>,
    pub has_attachments: Option<bool>,
    pub mailbox: Option<Address>,
    pub limit: u32,
}

/// An [`EmailSearch`] completed in the call: people as addresses, bounds as instants in the
/// mailbox zone. What [`plan`] turns into one Graph call.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailCriteria {
    pub query: Option<String>,
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub folder: Option<&'static str>,
    pub has_attachments: Option<bool>,
    pub mailbox: Option<Address>,
    pub limit: u32,
}

/// Checks every argument before any token or Graph work.
pub fn check(p: &EmailSearchArgs) -> Result<EmailSearch, McpError> {
    let folder = match p.folder.as_deref().map(str::trim) {
        None => None,
        Some(f) => {
            Some(FOLDERS.iter().copied().find(|k| k.eq_ignore_ascii_case(f)).ok_or_else(|| {
                bad_arg("folder", format!("must be one of {}", FOLDERS.join(", ")))
            })?)
        }
    };
    let search = EmailSearch {
        args: p.clone(),
        query: text_arg("query", p.query.as_deref())?,
        from: PersonArg::parse("from", p.from.as_deref())?,
        to: PersonArg::parse("to", p.to.as_deref())?,
        after: TimeArg::parse("received_after", p.received_after.as_deref())?,
        before: TimeArg::parse("received_before", p.received_before.as_deref())?,
        folder,
        has_attachments: p.has_attachments,
        mailbox: address_arg("mailbox", p.mailbox.as_deref())?,
        limit: limit_arg(p.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    // The bounds' order as far as it is known before the zone is (days at UTC midnight).
    search.bounds(&MailboxZone::utc())?;
    Ok(search)
}

impl EmailSearch {
    /// The received-date bounds in `zone`, in order.
    fn bounds(&self, zone: &MailboxZone) -> Result<Bounds, McpError> {
        bounds_in(zone, ("received_after", self.after), ("received_before", self.before))
    }

    /// The search completed in the call: the people's addresses (looked up by the caller of
    /// this) and the bounds in the mailbox `zone`.
    pub fn criteria(
        &self,
        zone: &MailboxZone,
        from: Option<Address>,
        to: Option<Address>,
    ) -> Result<EmailCriteria, McpError> {
        let (after, before) = self.bounds(zone)?;
        Ok(EmailCriteria {
            query: self.query.clone(),
            from,
            to,
            after,
            before,
            folder: self.folder,
            has_attachments: self.has_attachments,
            mailbox: self.mailbox.clone(),
            limit: self.limit,
        })
    }
}

/// The Graph scopes a call needs: a shared mailbox needs `Mail.Read.Shared`.
pub fn scope_names(shared: bool) -> &'static [&'static str] {
    if shared { &["Mail.Read", "Mail.Read.Shared"] } else { &["Mail.Read"] }
}

/// The call's OBO scope set (the time zone is read with a token of its own).
pub fn scopes(c: &EmailCriteria) -> ScopeSet {
    scope_names(c.mailbox.is_some()).iter().copied().collect()
}

/// A recipient-shaped value (`{emailAddress:{name,address}}`) as a [`Person`].
pub(crate) fn person(r: &Recipient) -> Option<Person> {
    r.email_address.as_ref().map(Person::from)
}

impl From<&EmailAddress> for Person {
    fn from(e: &EmailAddress) -> Self {
        Self {
            name: e.name.clone().unwrap_or_default(),
            address: e.address.clone().unwrap_or_default(),
        }
    }
}

fn hit(id: &str, m: &Message, summary: Option<&str>, shared: bool, zone: &MailboxZone) -> EmailHit {
    let preview = match summary.map(shaping::clean_summary).filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => m.body_preview.clone().unwrap_or_default(),
    };
    let (preview, _) = shaping::truncate_text(&preview, 400);
    let uri = (!shared && !id.is_empty())
        .then(|| M365Uri::mail(id))
        .filter(M365Uri::is_valid)
        .map(|u| u.to_string());
    EmailHit {
        uri,
        subject: m.subject.clone().unwrap_or_default(),
        from: m.from.as_ref().and_then(person),
        received: m.received_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
        has_attachments: m.has_attachments.unwrap_or(false),
        preview,
    }
}

/// Runs the search as the session's caller. `zone` is the caller's mailbox time zone; `args`
/// are the arguments as given (the cursor, and the binding it is checked against, which names
/// people by the addresses they resolved to).
pub async fn run(
    session: &CallSession,
    cursors: &CursorKey,
    zone: &MailboxZone,
    args: &EmailSearchArgs,
    c: &EmailCriteria,
) -> Result<EmailSearchResult, ToolError> {
    let bound = EmailSearchArgs {
        from: c.from.as_ref().map(Address::to_string),
        to: c.to.as_ref().map(Address::to_string),
        ..args.clone()
    };
    let binding = CursorBinding::new(&session.0.caller, TOOL, &bound);
    let state = Cursor::open_arg(cursors, &binding, args.cursor.as_deref())?;
    let (plan, applied_filters) = plan(c);
    let shared = c.mailbox.is_some();
    let mut hits = Vec::new();
    let (has_more, next_state, method) = match plan {
        EmailQuery::SearchApi { kql } => {
            let from = state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64);
            let from = u32::try_from(from.unwrap_or(0)).unwrap_or(u32::MAX);
            let req = GraphRequest::query_post(
                GraphPath::fixed("/search/query"),
                search_body(&kql, from, c.limit),
            )
            .map_err(|e| ToolError::Graph(GraphFailure::new(e)))?
            .prefer("IdType=\"ImmutableId\"");
            let resp = session.post_json::<SearchAnswer<Message>>(&req).await?;
            let container = resp.body.into_first_container().unwrap_or_default();
            for h in &container.hits {
                hits.push(hit(
                    h.hit_id.as_deref().unwrap_or_default(),
                    h.resource.as_ref().unwrap_or(&Message::default()),
                    h.summary.as_deref(),
                    false,
                    zone,
                ));
            }
            let more = container.more_results_available == Some(true);
            let next = from.saturating_add(u32::try_from(hits.len()).unwrap_or(u32::MAX));
            (more, more.then(|| json!({"from": next})), "search_api")
        }
        EmailQuery::ODataSearch { request } => {
            let page = odata_page::<Message>(session, request, state.as_ref()).await?;
            let (items, next) = (page.value, page.next_link);
            hits.extend(items.iter().map(|m| hit(message_id(m), m, None, shared, zone)));
            (next.is_some(), next.map(|n| json!({"next": n})), "odata_search")
        }
        EmailQuery::ODataFilter { request } => {
            let page = odata_page::<Message>(session, request, state.as_ref()).await?;
            let (items, next) = (page.value, page.next_link);
            hits.extend(items.iter().map(|m| hit(message_id(m), m, None, shared, zone)));
            (next.is_some(), next.map(|n| json!({"next": n})), "odata_filter")
        }
    };
    let mut budget = ByteBudget::new(shaping::DEFAULT_RESULT_BUDGET);
    let total = hits.len();
    let messages: Vec<EmailHit> = hits.into_iter().take_while(|h| budget.admit(h)).collect();
    let cut = messages.len() < total;
    // A page cut by the budget continues where it stopped only for the search API; an OData
    // page cannot be resumed mid-page, so the cut is reported and the next page follows.
    let next_state = match (cut, method) {
        (true, "search_api") => {
            let from = state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64);
            Some(json!({"from": from.unwrap_or(0) + messages.len() as u64}))
        }
        _ => next_state,
    };
    let has_more = has_more || (cut && method == "search_api");
    Ok(EmailSearchResult {
        mailbox: c.mailbox.as_ref().map_or_else(|| "me".to_owned(), |m| m.to_string()),
        method: method.to_owned(),
        page: Page {
            has_more,
            returned: u32::try_from(messages.len()).unwrap_or(u32::MAX),
            total_estimate: None,
            next_cursor: next_state
                .filter(|_| has_more)
                .map(|s| Cursor::seal(cursors, &binding, s)),
        },
        messages,
        applied_filters,
        truncation: budget.truncation(),
        time_zone_note: zone.note.clone(),
    })
}

fn message_id(m: &Message) -> &str {
    m.id.as_deref().unwrap_or_default()
}

/// One OData page: the first request, or the sealed `@odata.nextLink` of the cursor.
pub(crate) async fn odata_page<T: DeserializeOwned + Default>(
    session: &CallSession,
    first: GraphRequest,
    state: Option<&Value>,
) -> Result<ODataPage<T>, ToolError> {
    let req = match state.and_then(|s| s.get("next")).and_then(Value::as_str) {
        Some(link) => {
            let url = url::Url::parse(link)
                .map_err(|_| bad_arg("cursor", "holds an unreadable continuation"))?;
            GraphRequest::next_link(url, &first)
        }
        None => first,
    };
    Ok(session.get_json::<ODataPage<T>>(&req).await?.body)
}

/// The concise text next to the structured result.
pub fn render(r: &EmailSearchResult) -> String {
    let mut out = format!(
        "{} message(s) in {} ({}){}\n",
        r.page.returned,
        r.mailbox,
        r.method,
        r.page.more_note()
    );
    for m in &r.messages {
        let when = m.received.as_ref().map_or("", |d| d.local.as_str());
        let from = m.from.as_ref().map_or("", |p| p.address.as_str());
        out.push_str(&format!("- {when} {from}: {}", m.subject));
        if let Some(u) = &m.uri {
            out.push_str(&format!(" <{u}>"));
        }
        out.push('\n');
    }
    out.extend(r.truncation.line());
    out
}

impl ToolArgs for EmailSearchArgs {
    type Valid = EmailSearch;
    /// Every argument is checked before any token or Graph work (a bad argument must not cost
    /// an exchange). Days are placed in the mailbox zone once it is known, and names in
    /// `from`/`to` are looked up then.
    fn validate(self, checks: &Checks) -> Result<EmailSearch, McpError> {
        check(&Self { limit: checks.capped_limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT), ..self })
    }
    fn query_text(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

impl Answer for EmailSearchResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// The router entry of `outlook_email_search`.
pub fn route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        OUTLOOK_EMAIL_SEARCH,
        EmailSearchArgs,
        EmailSearchResult,
        search
    )
}

/// The tool's body: the session and zone, the people named in `from`/`to`, the search.
async fn search(call: Scope<'_>, search: EmailSearch) -> Result<EmailSearchResult, ToolError> {
    let (session, zone) = call.open(scope_names(search.mailbox.is_some())).await?;
    let from = resolve_person(&call, "from", search.from.clone()).await?;
    let to = resolve_person(&call, "to", search.to.clone()).await?;
    let criteria = search.criteria(&zone, from, to)?;
    run(&session, &call.ctx.cursor, &zone, &search.args, &criteria).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The criteria of `p` in `zone`, its people given by address.
    pub(super) fn criteria_in(
        p: &EmailSearchArgs,
        zone: &MailboxZone,
    ) -> Result<EmailCriteria, McpError> {
        let search = check(p)?;
        let address = |person: &Option<PersonArg>| match person {
            Some(PersonArg::Address(a)) => Some(a.clone()),
            _ => None,
        };
        search.criteria(zone, address(&search.from), address(&search.to))
    }

    #[test]
    fn bad_arguments_name_their_field() {
        let zone = MailboxZone::utc();
        for (p, field) in [
            (EmailSearchArgs { from: Some("no\u{1}body".into()), ..Default::default() }, "from"),
            (EmailSearchArgs { to: Some(" ".into()), ..Default::default() }, "to"),
            (EmailSearchArgs { folder: Some("../x".into()), ..Default::default() }, "folder"),
            (EmailSearchArgs { limit: Some(100), ..Default::default() }, "limit"),
            (
                EmailSearchArgs { received_after: Some("yesterday".into()), ..Default::default() },
                "received_after",
            ),
            (
                EmailSearchArgs {
                    received_after: Some("2024-02-01".into()),
                    received_before: Some("2024-01-01".into()),
                    ..Default::default()
                },
                "received_before",
            ),
            (EmailSearchArgs { query: Some("x".repeat(2000)), ..Default::default() }, "query"),
        ] {
            let err = criteria_in(&p, &zone).expect_err("refused");
            assert!(err.message.contains(&format!("`{field}`")), "{}", err.message);
        }
    }
}
