//! `find_meeting_availability` around the algorithm (`graph.md` §9.5): attendees resolved
//! through `/users?$filter=` (an address by `mail`/`userPrincipalName` equality, a name by
//! `startswith`, both as escaped OData literals), the caller's own address from `/me`, then
//! one `POST /me/calendar/getSchedule` (≤ 20 schedules, window < 62 days, times in UTC).
//! Who could not be resolved, was ambiguous, or has no schedule is reported by name.

use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use rmcp::{ErrorData as McpError, handler::server::router::tool::ToolRoute, schemars};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::slots::{Interval, Item, Schedule, SlotSearch, Status, WorkingHours, find_slots};
use crate::{
    graph::{
        GraphPath, GraphRequest,
        model::{
            DateTimeTimeZone, ODataPage, ScheduleInformation, User,
            WorkingHours as GraphWorkingHours,
        },
        query::{
            kql::{self, Address},
            odata::Filter,
        },
    },
    tools::{
        Connector,
        args::{TimeArg, bad_arg},
        mailbox::MailboxZone,
        pipeline::{Answer, CallSession, Checks, Scope, Tool, ToolArgs, ToolError},
        shaping::{self, DateTimes},
    },
};

/// `find_meeting_availability`.
pub static FIND_MEETING_AVAILABILITY: Tool = Tool {
    name: "find_meeting_availability",
    title: "Find meeting availability",
    description: "Find times when the signed-in user and the given attendees (email addresses or names) are all free, inside everyone's working hours, for a meeting of the given length within a window shorter than 62 days. Slots with no tentative conflicts come first, then the earliest. Says who could not be resolved or has no schedule.",
    needs: &[SCOPES],
    governs: &[],
    forbidden_message: None,
};
/// getSchedule takes at most 20 schedules, the caller included.
pub const MAX_ATTENDEES: usize = 19;
/// getSchedule needs a window shorter than 62 days.
pub const MAX_WINDOW_DAYS: i64 = 61;
const MAX_SLOTS: usize = 20;

/// Arguments of `find_meeting_availability`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityArgs {
    /// Attendees: email addresses or display names (resolved in your directory). You
    /// are included automatically.
    pub attendees: Vec<String>,
    /// Meeting length in minutes (5–480).
    pub duration_minutes: u32,
    /// Window start: `YYYY-MM-DD` (midnight in your time zone) or RFC 3339.
    pub start: String,
    /// Window end (exclusive), less than 62 days after the start.
    pub end: String,
    /// Only inside everyone's working hours (default true).
    #[serde(default)]
    pub working_hours_only: Option<bool>,
    /// Grid of candidate start times in minutes: 15, 30 or 60 (default 30).
    #[serde(default)]
    pub step_minutes: Option<u32>,
}

/// One attendee as resolved.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AttendeeStatus {
    /// What was asked for.
    pub requested: String,
    /// The resolved address, when resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Display name, when resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `resolved`, `not_found`, `ambiguous` or `no_schedule`.
    pub status: String,
    /// Why, for anything but `resolved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Their working hours as reported, e.g. `monday-friday 08:00-17:00 Europe/London`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<String>,
}

/// A free slot.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SlotOut {
    /// Start, in UTC and your zone.
    pub start: DateTimes,
    /// End, in UTC and your zone.
    pub end: DateTimes,
    /// Addresses of attendees with a tentative meeting at that time.
    pub tentative_conflicts: Vec<String>,
}

/// The result of `find_meeting_availability`.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AvailabilityResult {
    /// Free slots, best first: fewer tentative conflicts, then earliest.
    pub slots: Vec<SlotOut>,
    /// How many slots were found in all (only the first 20 are listed).
    pub total_found: u32,
    /// Every attendee and how they were resolved.
    pub attendees: Vec<AttendeeStatus>,
    /// Whether working hours constrained the slots.
    pub working_hours_only: bool,
    /// A note about time zones, when times could not be shown in your zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone_note: Option<String>,
}

/// The arguments checked before any token or Graph work, each text parsed once; the window's
/// days (midnight in the mailbox zone) become instants in [`MeetingSearch::criteria`].
#[derive(Clone, Debug, PartialEq)]
pub struct MeetingSearch {
    pub attendees: Vec<String>,
    pub duration: Duration,
    pub start: TimeArg,
    pub end: TimeArg,
    pub working_hours_only: bool,
    pub step: u32,
}

/// A [`MeetingSearch`] with its window in the mailbox zone.
#[derive(Clone, Debug, PartialEq)]
pub struct MeetingCriteria {
    pub attendees: Vec<String>,
    pub duration: Duration,
    pub window: Interval,
    pub working_hours_only: bool,
    pub step: u32,
}

impl MeetingSearch {
    /// The search with its window in `zone`, checked.
    pub fn criteria(&self, zone: &MailboxZone) -> Result<MeetingCriteria, McpError> {
        let window = window_in(self.start, self.end, zone)?;
        Ok(MeetingCriteria {
            attendees: self.attendees.clone(),
            duration: self.duration,
            window,
            working_hours_only: self.working_hours_only,
            step: self.step,
        })
    }
}

/// The window from `start` to `end` in `zone`: in order and shorter than 62 days.
fn window_in(start: TimeArg, end: TimeArg, zone: &MailboxZone) -> Result<Interval, McpError> {
    let start = start.in_zone("start", zone)?;
    let end = end.in_zone("end", zone)?;
    if end <= start {
        return Err(bad_arg("end", "must be later than `start`"));
    }
    if end - start > Duration::days(MAX_WINDOW_DAYS) {
        return Err(bad_arg("end", "the window must be shorter than 62 days"));
    }
    Ok(Interval { start, end })
}

/// Checks every argument before any token or Graph work (the window as far as it is known
/// before the zone is: days at UTC midnight).
pub fn check(p: &AvailabilityArgs) -> Result<MeetingSearch, McpError> {
    if p.attendees.is_empty() {
        return Err(bad_arg("attendees", "must name at least one person"));
    }
    if p.attendees.len() > MAX_ATTENDEES {
        return Err(bad_arg(
            "attendees",
            format!(
                "may name at most {MAX_ATTENDEES} people (Graph looks up 20 schedules, yours included)"
            ),
        ));
    }
    let attendees = p
        .attendees
        .iter()
        .map(|a| kql::validate_text(a).map_err(|e| bad_arg("attendees", e)))
        .collect::<Result<Vec<_>, _>>()?;
    if !(5..=480).contains(&p.duration_minutes) {
        return Err(bad_arg("duration_minutes", "must be between 5 and 480"));
    }
    let start =
        TimeArg::parse("start", Some(&p.start))?.ok_or_else(|| bad_arg("start", "is required"))?;
    let end = TimeArg::parse("end", Some(&p.end))?.ok_or_else(|| bad_arg("end", "is required"))?;
    window_in(start, end, &MailboxZone::utc())?;
    let step = p.step_minutes.unwrap_or(30);
    if ![15, 30, 60].contains(&step) {
        return Err(bad_arg("step_minutes", "must be 15, 30 or 60"));
    }
    Ok(MeetingSearch {
        attendees,
        duration: Duration::minutes(i64::from(p.duration_minutes)),
        start,
        end,
        working_hours_only: p.working_hours_only.unwrap_or(true),
        step,
    })
}

/// The Graph scopes a call needs (the time zone's permission is added by `access::open`).
pub const SCOPES: &[&str] = &["Calendars.Read", "User.ReadBasic.All", "User.Read"];

/// The `/users` look-up for one attendee: an address by equality, a name by prefix.
pub fn lookup_request(attendee: &str) -> GraphRequest {
    let filter = match Address::parse(attendee) {
        Ok(a) => Filter::new().any_eq(&["mail", "userPrincipalName"], a.as_str()),
        Err(_) => Filter::new().any_starts_with(&["displayName", "mail"], attendee),
    };
    GraphRequest::get(GraphPath::fixed("/users"))
        .query("$filter", filter.build())
        .select(&["id", "displayName", "mail", "userPrincipalName"])
        .top(5)
}

/// The getSchedule body (times in UTC, asked back in UTC).
pub fn schedule_request(
    addresses: &[String],
    c: &MeetingCriteria,
) -> Result<GraphRequest, ToolError> {
    let t = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = json!({
        "schedules": addresses,
        "startTime": {"dateTime": t(c.window.start), "timeZone": "UTC"},
        "endTime": {"dateTime": t(c.window.end), "timeZone": "UTC"},
        "availabilityViewInterval": c.step,
    });
    GraphRequest::query_post(GraphPath::fixed("/me/calendar/getSchedule"), body)
        .map(|r| r.prefer("outlook.timezone=\"UTC\""))
        .map_err(|e| ToolError::Graph(crate::graph::GraphFailure::new(e)))
}

fn weekday(s: &str) -> Option<Weekday> {
    s.parse().ok()
}

/// One `scheduleInformation` as a [`Schedule`] and a description of its working hours.
pub fn parse_schedule(v: &ScheduleInformation) -> (Schedule, Option<String>) {
    let time = |t: Option<&DateTimeTimeZone>| shaping::parse_graph_time(t?.date_time.as_deref()?);
    let items = v
        .schedule_items
        .iter()
        .filter_map(|i| {
            Some(Item {
                start: time(i.start.as_ref())?,
                end: time(i.end.as_ref())?,
                status: Status::parse(i.status.as_deref().unwrap_or("unknown")),
            })
        })
        .collect();
    let default = GraphWorkingHours::default();
    let wh = v.working_hours.as_ref().unwrap_or(&default);
    let parse_time = |s: &str| NaiveTime::parse_from_str(s.get(..8).unwrap_or(s), "%H:%M:%S").ok();
    let zone = MailboxZone::resolve(wh.time_zone_name());
    let hours = (|| {
        let days: Vec<Weekday> =
            wh.days_of_week.as_ref()?.iter().filter_map(|d| weekday(d)).collect();
        let start = parse_time(wh.start_time.as_deref()?)?;
        let end = parse_time(wh.end_time.as_deref()?)?;
        // An unknown zone would put the hours in the wrong place: no constraint instead.
        zone.note.is_none().then_some(WorkingHours { days, start, end, zone: zone.tz })
    })();
    let described = hours.as_ref().map(|h| {
        let days: Vec<String> = h.days.iter().map(|d| format!("{d}")).collect();
        format!(
            "{} {}-{} {}",
            days.join(","),
            h.start.format("%H:%M"),
            h.end.format("%H:%M"),
            h.zone.name()
        )
    });
    (Schedule { items, working_hours: hours }, described)
}

fn status(requested: &str, st: &str, msg: Option<String>) -> AttendeeStatus {
    AttendeeStatus {
        requested: requested.to_owned(),
        address: None,
        name: None,
        status: st.into(),
        message: msg,
        working_hours: None,
    }
}

/// Runs the look-ups and the slot search as the session's caller.
pub async fn run(
    session: &CallSession,
    zone: &MailboxZone,
    c: &MeetingCriteria,
    max_slots: usize,
) -> Result<AvailabilityResult, ToolError> {
    macro_rules! graph {
        ($call:expr) => {
            $call.await?.body
        };
    }
    let me: User =
        graph!(session.get_json::<User>(&GraphRequest::get(GraphPath::fixed("/me")).select(&[
            "id",
            "displayName",
            "mail",
            "userPrincipalName"
        ])));
    let mut attendees = vec![AttendeeStatus {
        requested: "me".into(),
        address: Some(me.address().to_owned()),
        name: me.display_name.clone(),
        status: "resolved".into(),
        message: None,
        working_hours: None,
    }];
    for a in &c.attendees {
        let found = graph!(session.get_json::<ODataPage<User>>(&lookup_request(a)));
        let addr = |u: &User| u.address().to_owned();
        match found.value.as_slice() {
            [] => attendees.push(status(
                a,
                "not_found",
                Some("no one in your directory matches".into()),
            )),
            [u] => attendees.push(AttendeeStatus {
                address: Some(addr(u)),
                name: u.display_name.clone(),
                ..status(a, "resolved", None)
            }),
            many => {
                let names: Vec<String> = many.iter().map(addr).collect();
                attendees.push(status(
                    a,
                    "ambiguous",
                    Some(format!("matches {}; give an email address", names.join(", "))),
                ));
            }
        }
    }
    let addresses: Vec<String> = attendees
        .iter()
        .filter(|a| a.status == "resolved")
        .filter_map(|a| a.address.clone())
        .collect();
    let infos = graph!(
        session.post_json::<ODataPage<ScheduleInformation>>(&schedule_request(&addresses, c)?)
    )
    .value;
    let mut schedules = Vec::new();
    let mut owners = Vec::new();
    for a in attendees.iter_mut().filter(|a| a.status == "resolved") {
        let address = a.address.clone().unwrap_or_default();
        let info = infos
            .iter()
            .find(|i| i.schedule_id.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&address)));
        match info {
            Some(i) if i.error.is_none() => {
                let (schedule, described) = parse_schedule(i);
                a.working_hours = described;
                if a.working_hours.is_none() && c.working_hours_only {
                    a.message = Some("working hours unknown; not used to limit the slots".into());
                }
                schedules.push(schedule);
                owners.push(address);
            }
            Some(i) => {
                a.status = "no_schedule".into();
                a.message = Some(format!(
                    "free/busy not available: {}",
                    i.error
                        .as_ref()
                        .and_then(|e| e.message.as_deref())
                        .unwrap_or("no reason given")
                ));
            }
            None => {
                a.status = "no_schedule".into();
                a.message = Some("Microsoft 365 returned no schedule".into());
            }
        }
    }
    let req = SlotSearch {
        window: c.window,
        duration: c.duration,
        step_minutes: c.step,
        organizer_zone: zone.tz,
        working_hours_only: c.working_hours_only,
    };
    let all = find_slots(&req, &schedules);
    let slots = all
        .iter()
        .take(max_slots)
        .map(|s| SlotOut {
            start: DateTimes::new(s.start, zone),
            end: DateTimes::new(s.end, zone),
            tentative_conflicts: s.tentative.iter().map(|i| owners[*i].clone()).collect(),
        })
        .collect();
    Ok(AvailabilityResult {
        slots,
        total_found: u32::try_from(all.len()).unwrap_or(u32::MAX),
        attendees,
        working_hours_only: c.working_hours_only,
        time_zone_note: zone.note.clone(),
    })
}

impl ToolArgs for AvailabilityArgs {
    type Valid = MeetingSearch;
    /// Checked before any token or Graph work; the window's days are placed in the mailbox
    /// zone once it is known.
    fn validate(self, _: &Checks) -> Result<MeetingSearch, McpError> {
        check(&self)
    }
}

impl Answer for AvailabilityResult {
    fn text(&self) -> String {
        render(self)
    }
}

/// The router entry of `find_meeting_availability`.
pub fn route() -> ToolRoute<Connector> {
    crate::tools::pipeline::body_route!(
        FIND_MEETING_AVAILABILITY,
        AvailabilityArgs,
        AvailabilityResult,
        search
    )
}

/// The tool's body: the session and zone, the look-ups, the schedules, the slots.
async fn search(call: Scope<'_>, search: MeetingSearch) -> Result<AvailabilityResult, ToolError> {
    let (session, zone) = call.open(SCOPES).await?;
    let criteria = search.criteria(&zone)?;
    // The tenant's max_results caps the slots listed, as every tool's results.
    let cap = call
        .ctx
        .policy
        .current()
        .enabled_tenant(&call.caller().tenant_id)
        .map_or(1, |t| t.max_results as usize);
    run(&session, &zone, &criteria, MAX_SLOTS.min(cap)).await
}

/// The concise text next to the structured result.
pub fn render(r: &AvailabilityResult) -> String {
    let mut out = format!("{} free slot(s) found", r.total_found);
    if r.total_found as usize > r.slots.len() {
        out.push_str(&format!(", best {} listed", r.slots.len()));
    }
    out.push('\n');
    for s in &r.slots {
        out.push_str(&format!("- {} – {}", s.start.local, s.end.local));
        if !s.tentative_conflicts.is_empty() {
            out.push_str(&format!(" (tentative: {})", s.tentative_conflicts.join(", ")));
        }
        out.push('\n');
    }
    for a in r.attendees.iter().filter(|a| a.status != "resolved" || a.message.is_some()) {
        out.push_str(&format!(
            "! {}: {} {}\n",
            a.requested,
            a.status,
            a.message.as_deref().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
    }

    #[test]
    fn lookups_escape_names_and_addresses() {
        let base = url::Url::parse("https://graph.microsoft.com/v1.0").expect("base");
        let q = |r: &crate::graph::GraphRequest| {
            r.url(&base)
                .expect("url")
                .query_pairs()
                .find(|(k, _)| k == "$filter")
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(
            q(&lookup_request("O'Brien")).as_deref(),
            Some("(startswith(displayName,'O''Brien') or startswith(mail,'O''Brien'))")
        );
        assert_eq!(
            q(&lookup_request("Adele@contoso.com")).as_deref(),
            Some("(mail eq 'adele@contoso.com' or userPrincipalName eq 'adele@contoso.com')")
        );
    }

    #[test]
    fn schedules_parse_with_windows_zones_and_bad_windows_are_refused() {
        let v = serde_json::json!({"scheduleId": "a@contoso.com",
            "scheduleItems": [{"status": "Busy", "start": {"dateTime": "2024-05-06T12:00:00.0000000", "timeZone": "UTC"},
                                "end": {"dateTime": "2024-05-06T13:00:00.0000000", "timeZone": "UTC"}}],
            "workingHours": {"daysOfWeek": ["monday", "friday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                             "timeZone": {"name": "Pacific Standard Time"}}});
        let v: ScheduleInformation = serde_json::from_value(v).expect("a schedule");
        let (s, described) = parse_schedule(&v);
        assert_eq!(
            s.items,
            vec![Item {
                start: utc(2024, 5, 6, 12, 0),
                end: utc(2024, 5, 6, 13, 0),
                status: Status::Busy
            }]
        );
        assert_eq!(described.as_deref(), Some("Mon,Fri 08:00-17:00 America/Los_Angeles"));
        let p = AvailabilityArgs {
            attendees: vec!["adele@contoso.com".into()],
            duration_minutes: 30,
            start: "2024-05-01".into(),
            end: "2024-07-15".into(),
            ..Default::default()
        };
        assert!(check(&p).expect_err("too long").message.contains("`end`"));
        let p = AvailabilityArgs { end: "2024-05-08".into(), duration_minutes: 2, ..p };
        assert!(check(&p).expect_err("too short").message.contains("`duration_minutes`"));
    }
}
