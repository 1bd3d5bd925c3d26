//! `outlook_calendar_search` (`graph.md` §9.4, conformance S04).
//!
//! # Which Graph call
//! * A time window (or none: the next 7 days): `GET …/calendarView?startDateTime=&endDateTime=`
//!   with `Prefer: outlook.timezone="UTC"`, so recurrences are expanded and every time comes
//!   back in UTC; results show UTC and the caller's mailbox zone. Graph has no keyword filter
//!   on calendarView, so `query` is matched **by the connector** (every word in subject,
//!   location or preview), and the result says so in `applied_filters`.
//! * Keywords without a window, own calendar: `POST /search/query` `event`, the keywords as one
//!   KQL phrase, matched **by Graph**.
//! * A shared calendar (`calendar_owner`, needs `Calendars.Read.Shared`) is read through
//!   `/users/{address}/calendarView`; search covers only the caller's own calendar.

use chrono::{DateTime, Duration, Utc};
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Connector,
    args::{TimeArg, address_arg, bad_arg, limit_arg, text_arg, time_in_zone},
    cursor::{Cursor, CursorBinding, CursorKey},
    mail::{Person, odata_page, person},
    mailbox::MailboxZone,
    pipeline::{Answer, CallSession, Checks, Scope, Tool, ToolArgs, ToolError},
    shaping::{self, AppliedFilter, ByteBudget, DateTimes, Page, Truncation},
};
use crate::domain::uri::{M365Uri, ResourceKind};
use crate::graph::{
    model::{DateTimeTimeZone, Event},
    query::{
        kql::{Address, Kql},
        odata,
        search::SearchAnswer,
    },
};
use crate::{
    domain::ScopeSet,
    graph::{GraphFailure, GraphPath, GraphRequest},
};

/// `outlook_calendar_search`.
pub static OUTLOOK_CALENDAR_SEARCH: Tool = Tool {
    name: "outlook_calendar_search",
    title: "Outlook calendar search",
    description: "Search the signed-in user's Outlook calendar (or a calendar shared with them, with Calendars.Read.Shared) by keywords and/or a time window (default: the next 7 days). Recurring meetings are expanded. Times are in UTC and your mailbox time zone; events of your own calendar have m365:// URIs.",
    needs: &[&["Calendars.Read"]],
    governs: &[ResourceKind::Event],
    forbidden_message: None,
};

/// The tool's name, in cursor bindings.
pub const TOOL: &str = OUTLOOK_CALENDAR_SEARCH.name;
const DEFAULT_LIMIT: u32 = 25;
const MAX_LIMIT: u32 = 50;
/// Longest window one call may ask for.
const MAX_WINDOW_DAYS: i64 = 366;
const SELECT: &[&str] = &[
    "id",
    "subject",
    "start",
    "end",
    "location",
    "organizer",
    "isAllDay",
    "isCancelled",
    "showAs",
    "bodyPreview",
];

/// Arguments of `outlook_calendar_search`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarSearchArgs {
    /// Words to find in the subject, location or description.
    #[serde(default)]
    pub query: Option<String>,
    /// Window start: `YYYY-MM-DD` (midnight in your mailbox time zone) or RFC 3339.
    #[serde(default)]
    pub start: Option<String>,
    /// Window end (exclusive): `YYYY-MM-DD` (midnight in your mailbox time zone) or RFC 3339.
    #[serde(default)]
    pub end: Option<String>,
    /// The address of a calendar shared with you, instead of your own (needs
    /// Calendars.Read.Shared; requires a window).
    #[serde(default)]
    pub calendar_owner: Option<String>,
    /// Results per page, 1–50 (default 25; keyword search without a window: at most 25).
    #[serde(default)]
    #[serde(skip_serializing)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[serde(skip_serializing)]
    pub cursor: Option<String>,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EventHit {
    /// `m365://event/{id}` (own calendar only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Subject.
    pub subject: String,
    /// Start, in UTC and your zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimes>,
    /// End, in UTC and your zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimes>,
    /// Whether it lasts all day.
    pub all_day: bool,
    /// Location display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Organizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Person>,
    /// free, tentative, busy, oof or workingElsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_as: Option<String>,
}

/// The result of `outlook_calendar_search`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CalendarSearchResult {
    /// `me`, or the shared calendar's owner.
    pub calendar: String,
    /// `calendar_view` or `search_api`.
    pub method: String,
    /// The window searched (calendar view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<[DateTimes; 2]>,
    /// Events of this page, by start time (search: by date).
    pub events: Vec<EventHit>,
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

/// The arguments checked before any token or Graph work, each text parsed once. Days
/// (midnight in the mailbox zone) become instants in [`CalendarSearch::criteria`].
#[derive(Clone, Debug)]
pub struct CalendarSearch {
    /// The arguments as given (the page size capped), for the cursor and its binding.
    pub args: CalendarSearchArgs,
    pub words: Option<String>,
    pub start: Option<TimeArg>,
    pub end: Option<TimeArg>,
    pub owner: Option<Address>,
}

/// A [`CalendarSearch`] completed in the mailbox zone: the window and the page size.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarCriteria {
    pub words: Option<String>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub owner: Option<Address>,
    pub limit: u32,
}

/// Checks every argument before any token or Graph work (the window as far as it is known
/// before the zone is: days at UTC midnight).
pub fn check(p: &CalendarSearchArgs, now: DateTime<Utc>) -> Result<CalendarSearch, McpError> {
    let search = CalendarSearch {
        args: p.clone(),
        words: text_arg("query", p.query.as_deref())?,
        start: TimeArg::parse("start", p.start.as_deref())?,
        end: TimeArg::parse("end", p.end.as_deref())?,
        owner: address_arg("calendar_owner", p.calendar_owner.as_deref())?,
    };
    search.criteria(&MailboxZone::utc(), now)?;
    Ok(search)
}

impl CalendarSearch {
    /// The window in `zone` (none given: the 7 days from `now`), checked, and the page size.
    pub fn criteria(
        &self,
        zone: &MailboxZone,
        now: DateTime<Utc>,
    ) -> Result<CalendarCriteria, McpError> {
        let start = time_in_zone("start", self.start, zone)?;
        let end = time_in_zone("end", self.end, zone)?;
        let window = match (start, end) {
            (None, None) if self.words.is_some() && self.owner.is_none() => None,
            (None, None) => Some((now, now + Duration::days(7))),
            (Some(s), None) => Some((s, s + Duration::days(7))),
            (None, Some(e)) => Some((e - Duration::days(7), e)),
            (Some(s), Some(e)) => Some((s, e)),
        };
        if let Some((s, e)) = window {
            if s >= e {
                return Err(bad_arg("end", "must be later than `start`"));
            }
            if e - s > Duration::days(MAX_WINDOW_DAYS) {
                return Err(bad_arg(
                    "end",
                    format!("the window may span at most {MAX_WINDOW_DAYS} days"),
                ));
            }
        }
        let max = if window.is_none() { 25 } else { MAX_LIMIT };
        Ok(CalendarCriteria {
            words: self.words.clone(),
            window,
            owner: self.owner.clone(),
            limit: limit_arg(self.args.limit, DEFAULT_LIMIT, max)?,
        })
    }
}

/// The Graph scopes a call needs: another person's calendar needs `Calendars.Read.Shared`.
pub fn scope_names(shared: bool) -> &'static [&'static str] {
    if shared { &["Calendars.Read", "Calendars.Read.Shared"] } else { &["Calendars.Read"] }
}

/// The call's OBO scope set (the time zone is read with a token of its own).
pub fn scopes(c: &CalendarCriteria) -> ScopeSet {
    scope_names(c.owner.is_some()).iter().copied().collect()
}

/// The calendarView request for a window.
pub fn view_request(c: &CalendarCriteria, (s, e): (DateTime<Utc>, DateTime<Utc>)) -> GraphRequest {
    let path = match &c.owner {
        Some(o) => GraphPath::fixed("/users").segment(o.as_str()).then("calendarView"),
        None => GraphPath::fixed("/me/calendarView"),
    };
    GraphRequest::get(path)
        .query("startDateTime", odata::datetime_literal(s))
        .query("endDateTime", odata::datetime_literal(e))
        .select(SELECT)
        .query("$orderby", "start/dateTime")
        .top(c.limit)
        .prefer("outlook.timezone=\"UTC\"")
        .prefer("IdType=\"ImmutableId\"")
}

/// Every word of `words` appears (case-insensitively) in the subject, location or preview.
pub fn matches_words(event: &Event, words: &str) -> bool {
    let hay = format!(
        "{} {} {}",
        event.subject.as_deref().unwrap_or_default(),
        event.location_name().unwrap_or_default(),
        event.body_preview.as_deref().unwrap_or_default()
    )
    .to_lowercase();
    words.split_whitespace().all(|w| hay.contains(&w.to_lowercase()))
}

fn event_time(v: Option<&DateTimeTimeZone>, zone: &MailboxZone) -> Option<DateTimes> {
    // Asked in UTC; a resource from search carries `Z` or a `timeZone` of UTC.
    DateTimes::parse(v?.date_time.as_deref()?, zone)
}

fn event_hit(id: &str, e: &Event, own: bool, zone: &MailboxZone) -> EventHit {
    let uri = (own && !id.is_empty())
        .then(|| M365Uri::Event { id: id.to_owned() })
        .filter(M365Uri::is_valid)
        .map(|u| u.to_string());
    EventHit {
        uri,
        subject: e.subject.clone().unwrap_or_default(),
        start: event_time(e.start.as_ref(), zone),
        end: event_time(e.end.as_ref(), zone),
        all_day: e.is_all_day.unwrap_or(false),
        location: e.location_name().filter(|s| !s.is_empty()).map(str::to_owned),
        organizer: e.organizer.as_ref().and_then(person),
        show_as: e.show_as.clone(),
    }
}

/// Runs the search as the session's caller; `args` are the arguments as given (the cursor and
/// its binding).
pub async fn run(
    session: &CallSession,
    cursors: &CursorKey,
    zone: &MailboxZone,
    args: &CalendarSearchArgs,
    c: &CalendarCriteria,
) -> Result<CalendarSearchResult, ToolError> {
    let binding = CursorBinding::new(&session.0.caller, TOOL, args);
    let state = Cursor::open_arg(cursors, &binding, args.cursor.as_deref())?;
    let own = c.owner.is_none();
    let mut applied = Vec::new();
    if let Some(o) = &c.owner {
        applied.push(AppliedFilter::graph("calendar_owner", o.as_str()));
    }
    let mut events = Vec::new();
    let (method, has_more, next_state) = match c.window {
        Some(window) => {
            applied.push(AppliedFilter::graph(
                "window",
                format!(
                    "{} .. {}",
                    odata::datetime_literal(window.0),
                    odata::datetime_literal(window.1)
                ),
            ));
            if let Some(w) = &c.words {
                applied.push(AppliedFilter::connector(
                    "query",
                    format!("{w} (all words in subject, location or preview)"),
                ));
            }
            let first = view_request(c, window);
            let page = odata_page::<Event>(session, first, state.as_ref()).await?;
            let (items, next) = (page.value, page.next_link);
            for e in items.iter().filter(|e| c.words.as_deref().is_none_or(|w| matches_words(e, w)))
            {
                events.push(event_hit(e.id.as_deref().unwrap_or_default(), e, own, zone));
            }
            ("calendar_view", next.is_some(), next.map(|n| json!({"next": n})))
        }
        None => {
            let words = c.words.as_deref().unwrap_or_default();
            applied.push(AppliedFilter::graph("query", format!("{words} (phrase)")));
            let from =
                state.as_ref().and_then(|s| s.get("from")).and_then(Value::as_u64).unwrap_or(0);
            let body = json!({"requests": [{
                "entityTypes": ["event"],
                "query": {"queryString": Kql::new().phrase(words).build()},
                "from": from,
                "size": c.limit,
            }]});
            let req = GraphRequest::query_post(GraphPath::fixed("/search/query"), body)
                .map_err(|e| ToolError::Graph(GraphFailure::new(e)))?
                .prefer("IdType=\"ImmutableId\"");
            let resp = session.post_json::<SearchAnswer<Event>>(&req).await?;
            let container = resp.body.into_first_container().unwrap_or_default();
            for h in &container.hits {
                events.push(event_hit(
                    h.hit_id.as_deref().unwrap_or_default(),
                    h.resource.as_ref().unwrap_or(&Event::default()),
                    own,
                    zone,
                ));
            }
            let more = container.more_results_available == Some(true);
            let next = from + container.hits.len() as u64;
            ("search_api", more, more.then(|| json!({"from": next})))
        }
    };
    let mut budget = ByteBudget::new(shaping::DEFAULT_RESULT_BUDGET);
    let events: Vec<EventHit> = events.into_iter().take_while(|e| budget.admit(e)).collect();
    Ok(CalendarSearchResult {
        calendar: c.owner.as_ref().map_or_else(|| "me".to_owned(), |o| o.to_string()),
        method: method.to_owned(),
        window: c.window.map(|(s, e)| [DateTimes::new(s, zone), DateTimes::new(e, zone)]),
        page: Page {
            has_more,
            returned: u32::try_from(events.len()).unwrap_or(u32::MAX),
            total_estimate: None,
            next_cursor: next_state.map(|s| Cursor::seal(cursors, &binding, s)),
        },
        events,
        applied_filters: applied,
        truncation: budget.truncation(),
        time_zone_note: zone.note.clone(),
    })
}

/// The concise text next to the structured result.
pub fn render(r: &CalendarSearchResult) -> String {
    let mut out = format!(
        "{} event(s) in {} ({}){}\n",
        r.page.returned,
        r.calendar,
        r.method,
        r.page.more_note()
    );
    for e in &r.events {
        let start = e.start.as_ref().map_or("", |d| d.local.as_str());
        out.push_str(&format!("- {start} {}", e.subject));
        if let Some(u) = &e.uri {
            out.push_str(&format!(" <{u}>"));
        }
        out.push('\n');
    }
    out.extend(r.truncation.line());
    out
}

impl ToolArgs for CalendarSearchArgs {
    type Valid = CalendarSearch;
    /// Checked before any token or Graph work; days are placed in the mailbox zone once it is
    /// known.
    fn validate(self, checks: &Checks) -> Result<CalendarSearch, McpError> {
        let args =
            Self { limit: checks.capped_limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT), ..self };
        check(&args, checks.now)
    }
    fn query_text(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

impl Answer for CalendarSearchResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// The router entry of `outlook_calendar_search`.
pub fn route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        OUTLOOK_CALENDAR_SEARCH,
        CalendarSearchArgs,
        CalendarSearchResult,
        search
    )
}

/// The tool's body: the session and zone, then the view or the search.
async fn search(
    call: Scope<'_>,
    search: CalendarSearch,
) -> Result<CalendarSearchResult, ToolError> {
    let (session, zone) = call.open(scope_names(search.owner.is_some())).await?;
    let criteria = search.criteria(&zone, call.ctx.clock.now())?;
    run(&session, &call.ctx.cursor, &zone, &search.args, &criteria).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 6, 8, 0, 0).single().expect("now")
    }

    #[test]
    fn the_text_says_when_the_result_was_cut() {
        let result = |truncation| CalendarSearchResult {
            calendar: "me".into(),
            method: "calendar_view".into(),
            window: None,
            events: Vec::new(),
            page: Page::default(),
            applied_filters: Vec::new(),
            truncation,
            time_zone_note: None,
        };
        let cut = render(&result(Truncation::because("result byte budget of 10 bytes reached")));
        assert_eq!(
            cut,
            "0 event(s) in me (calendar_view)\n(truncated: result byte budget of 10 bytes reached)\n"
        );
        assert_eq!(render(&result(Truncation::none())), "0 event(s) in me (calendar_view)\n");
    }

    fn criteria_in(
        p: &CalendarSearchArgs,
        zone: &MailboxZone,
    ) -> Result<CalendarCriteria, McpError> {
        check(p, now())?.criteria(zone, now())
    }

    #[test]
    fn a_window_uses_calendar_view_in_utc() {
        let zone = MailboxZone::resolve(Some("Pacific Standard Time"));
        let p = CalendarSearchArgs {
            start: Some("2024-05-01".into()),
            end: Some("2024-05-08".into()),
            ..Default::default()
        };
        let c = criteria_in(&p, &zone).expect("valid");
        let req = view_request(&c, c.window.expect("window"));
        let u = req
            .url(&url::Url::parse("https://graph.microsoft.com/v1.0").expect("base"))
            .expect("url");
        let pairs: Vec<(String, String)> =
            u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(u.path(), "/v1.0/me/calendarView");
        // Midnight in Los Angeles (PDT, UTC-7) is 07:00 UTC.
        assert_eq!(pairs[0], ("startDateTime".into(), "2024-05-01T07:00:00Z".into()));
        assert_eq!(pairs[1], ("endDateTime".into(), "2024-05-08T07:00:00Z".into()));
    }

    #[test]
    fn keywords_alone_search_and_shared_calendars_need_a_window() {
        let zone = MailboxZone::utc();
        let c = criteria_in(
            &CalendarSearchArgs { query: Some("review".into()), ..Default::default() },
            &zone,
        )
        .expect("ok");
        assert_eq!(c.window, None);
        let c = criteria_in(
            &CalendarSearchArgs {
                query: Some("review".into()),
                calendar_owner: Some("room@contoso.com".into()),
                ..Default::default()
            },
            &zone,
        )
        .expect("ok");
        assert_eq!(c.window, Some((now(), now() + Duration::days(7))));
        assert!(scopes(&c).contains("Calendars.Read.Shared"));
        let err = criteria_in(
            &CalendarSearchArgs {
                start: Some("2024-05-08".into()),
                end: Some("2024-05-01".into()),
                ..Default::default()
            },
            &zone,
        )
        .expect_err("refused");
        assert!(err.message.contains("`end`"));
    }

    #[test]
    fn connector_keyword_match_needs_every_word() {
        let e: Event = serde_json::from_value(json!({"subject": "Quarterly Review", "location": {"displayName": "Room 4"}, "bodyPreview": "budget"}))
        .expect("an event");
        assert!(matches_words(&e, "review BUDGET"));
        assert!(!matches_words(&e, "review lunch"));
    }
}
