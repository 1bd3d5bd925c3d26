//! Calendar: `calendarView` (required window, `Prefer: outlook.timezone`), events,
//! `getSchedule` (≤ 20 schedules, < 62 days, interval 5–1440, per-schedule errors), and
//! `findMeetingTimes` (working hours per mailbox zone, Graph's confidence rule, empty reasons).

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use fixtures::{Calendar, Event, ShowAs, User};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, applied, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult, Service},
    odata::{self, FVal, Fields},
};

/// Windows time zone names Graph uses, mapped to IANA (the ones the fixtures use, and more).
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("Coordinated Universal Time", "UTC"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("GMT Standard Time", "Europe/London"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("India Standard Time", "Asia/Kolkata"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
];

/// A Windows or IANA zone name.
pub fn zone(name: &str) -> Option<Tz> {
    WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(name))
        .and_then(|(_, iana)| iana.parse().ok())
        .or_else(|| name.parse().ok())
}

/// `{"dateTime": "2024-05-01T09:00:00.0000000", "timeZone": name}` in `tz`.
fn date_time_tz(d: DateTime<Utc>, tz: Tz, name: &str) -> Value {
    json!({"dateTime": format!("{}.0000000", d.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S")), "timeZone": name})
}

/// Parses a `dateTimeTimeZone` object.
fn parse_dttz(v: &DateTimeTimeZone) -> Result<DateTime<Utc>, GraphError> {
    let tz = zone(&v.time_zone).ok_or_else(|| {
        GraphError::bad_request(
            "ErrorTimeZoneNotSupported",
            format!("A valid TimeZone value must be specified. '{}' is not valid.", v.time_zone),
        )
    })?;
    if let Ok(d) = DateTime::parse_from_rfc3339(&v.date_time) {
        return Ok(d.with_timezone(&Utc));
    }
    let trimmed = v.date_time.split('.').next().unwrap_or(&v.date_time);
    let naive = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S").map_err(|_| {
        GraphError::bad_request(
            "ErrorInvalidRequest",
            format!("Invalid dateTime '{}'.", v.date_time),
        )
    })?;
    tz.from_local_datetime(&naive).earliest().map(|d| d.with_timezone(&Utc)).ok_or_else(|| {
        GraphError::bad_request(
            "ErrorInvalidRequest",
            "The local time does not exist in that time zone.",
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateTimeTimeZone {
    date_time: String,
    time_zone: String,
}

/// The output zone from `Prefer: outlook.timezone` (UTC by default).
fn out_zone(ctx: &Ctx<'_>) -> (Tz, String, Vec<String>) {
    match ctx.prefs.timezone.as_deref().and_then(|n| zone(n).map(|z| (z, n.to_owned()))) {
        Some((z, n)) => {
            let applied = vec![format!("outlook.timezone=\"{n}\"")];
            (z, n, applied)
        }
        None => (Tz::UTC, "UTC".to_owned(), Vec::new()),
    }
}

fn show_as(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
    }
}

pub fn event_json(e: &Event, tz: Tz, tz_name: &str, bodies: bool) -> Value {
    let mut v = json!({
        "@odata.etag": format!("W/\"{}\"", e.id.chars().rev().take(8).collect::<String>()),
        "id": e.id,
        "createdDateTime": odata::dt(e.start - Duration::days(7)),
        "lastModifiedDateTime": odata::dt(e.start - Duration::days(7)),
        "changeKey": "DwAAABYAAAA",
        "categories": [],
        "originalStartTimeZone": e.original_time_zone,
        "originalEndTimeZone": e.original_time_zone,
        "iCalUId": format!("040000008200E00074C5B7101A82E008{}", e.id.len()),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "subject": e.subject,
        "importance": "normal",
        "sensitivity": e.sensitivity,
        "isAllDay": e.is_all_day,
        "isCancelled": e.is_cancelled,
        "isOrganizer": false,
        "responseRequested": true,
        "seriesMasterId": e.series_master_id,
        "showAs": show_as(e.show_as),
        "type": e.event_type,
        "webLink": format!("https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item", percent_encoding::utf8_percent_encode(&e.id, percent_encoding::NON_ALPHANUMERIC)),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": false,
        "start": date_time_tz(e.start, tz, tz_name),
        "end": date_time_tz(e.end, tz, tz_name),
        "location": {"displayName": e.location.clone().unwrap_or_default(), "locationType": "default", "uniqueIdType": "unknown"},
        "locations": e.location.iter().map(|l| json!({"displayName": l, "locationType": "default"})).collect::<Vec<_>>(),
        "attendees": e.attendees.iter().map(|a| json!({
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": a.name, "address": a.address},
        })).collect::<Vec<_>>(),
        "organizer": {"emailAddress": {"name": e.organizer.name, "address": e.organizer.address}},
    });
    if bodies {
        v["bodyPreview"] = json!(e.body_preview);
        v["body"] = json!({"contentType": "html", "content": format!("<html><body>{}</body></html>", e.body_preview)});
    }
    v
}

struct EventFields<'a>(&'a Event);

impl Fields for EventFields<'_> {
    fn field(&self, path: &str) -> Option<FVal> {
        let e = self.0;
        Some(match path {
            "id" => FVal::Str(e.id.clone()),
            "subject" => FVal::Str(e.subject.clone()),
            "start/datetime" => FVal::Date(e.start),
            "end/datetime" => FVal::Date(e.end),
            "isallday" => FVal::Bool(e.is_all_day),
            "iscancelled" => FVal::Bool(e.is_cancelled),
            "showas" => FVal::Str(show_as(e.show_as).to_owned()),
            "sensitivity" => FVal::Str(e.sensitivity.clone()),
            "type" => FVal::Str(e.event_type.clone()),
            "organizer/emailaddress/address" => FVal::Str(e.organizer.address.clone()),
            _ => return None,
        })
    }
}

/// The calendar a request addresses; others' calendars need sharing + `Calendars.Read.Shared`.
fn calendar<'a>(
    ctx: &'a Ctx<'_>,
    key: &str,
) -> Result<(&'a User, Option<&'a Calendar>), GraphError> {
    ctx.caller.require(&perms::EVENTS)?;
    let target =
        ctx.store.user(ctx.caller.tid, key).ok_or_else(|| GraphError::invalid_user(key))?;
    let (tenant, idx) = ctx.tenant()?;
    let cal = idx.calendars.get(&target.oid).map(|p| &tenant.content.calendars[*p]);
    if target.oid != ctx.caller.oid {
        let shared = cal.is_some_and(|c| c.shared_with.contains(&ctx.caller.oid));
        if !(shared && ctx.caller.has_any(&["Calendars.Read.Shared", "Calendars.ReadWrite.Shared"]))
        {
            return Err(GraphError::forbidden(Service::Outlook, &[], &ctx.caller.scp));
        }
    }
    Ok((target, cal))
}

fn list_page(
    ctx: &Ctx<'_>,
    owner: &User,
    events: Vec<&Event>,
    kind: &str,
    default_top: usize,
) -> GraphResult {
    let (tz, tz_name, pref) = out_zone(ctx);
    let bodies = ctx.caller.has_any(perms::EVENT_BODIES);
    let top = ctx.query.top(default_top, 1000)?;
    let offset = ctx.query.offset()?;
    let select = ctx.query.select();
    let page: Vec<Value> = events
        .iter()
        .skip(offset)
        .take(top)
        .map(|e| odata::apply_select(event_json(e, tz, &tz_name, bodies), &select))
        .collect();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/{kind}", owner.oid),
        "value": page,
    });
    if offset + top < events.len() {
        body["@odata.nextLink"] = json!(ctx.query.next_link(ctx.base(), ctx.path, offset + top));
    }
    Ok(applied(json(body), &pref))
}

fn ordered<'a>(ctx: &Ctx<'_>, mut events: Vec<&'a Event>) -> Result<Vec<&'a Event>, GraphError> {
    if let Some(f) = ctx.query.get("$filter").map(odata::parse_filter).transpose()? {
        if let Some(e) = events.first() {
            f.validate(&EventFields(e))?;
        }
        events.retain(|e| f.eval(&EventFields(e)));
    }
    match ctx.query.get("$orderby").map(odata::parse_orderby).transpose()? {
        Some(order) => {
            events.sort_by(|a, b| odata::compare(&EventFields(a), &EventFields(b), &order))
        }
        None => events.sort_by_key(|e| e.start),
    }
    Ok(events)
}

pub fn calendar_view(ctx: &Ctx<'_>, user: &str) -> GraphResult {
    let (owner, cal) = calendar(ctx, user)?;
    let window = |name: &str| ctx.query.get(name).map(|v| v.to_owned());
    let (Some(start), Some(end)) = (window("startDateTime"), window("endDateTime")) else {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let parse = |v: &str| -> Result<DateTime<Utc>, GraphError> {
        DateTime::parse_from_rfc3339(v)
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(v.split('.').next().unwrap_or(v), "%Y-%m-%dT%H:%M:%S")
                    .map(|n| n.and_utc())
            })
            .map_err(|_| {
                GraphError::bad_request(
                    "ErrorInvalidParameter",
                    format!("The value '{v}' of parameter 'StartDateTime/EndDateTime' is invalid."),
                )
            })
    };
    let (start, end) = (parse(&start)?, parse(&end)?);
    let events: Vec<&Event> = cal
        .map(|c| c.events.iter().filter(|e| e.start < end && e.end > start).collect())
        .unwrap_or_default();
    let events = ordered(ctx, events)?;
    list_page(ctx, owner, events, "calendarView", 10)
}

pub fn list_events(ctx: &Ctx<'_>, user: &str) -> GraphResult {
    let (owner, cal) = calendar(ctx, user)?;
    let events: Vec<&Event> = cal.map(|c| c.events.iter().collect()).unwrap_or_default();
    let events = ordered(ctx, events)?;
    list_page(ctx, owner, events, "events", 10)
}

pub fn get_event(ctx: &Ctx<'_>, user: &str, id: &str) -> GraphResult {
    let (owner, cal) = calendar(ctx, user)?;
    let e = cal
        .and_then(|c| c.events.iter().find(|e| e.id == id))
        .ok_or_else(GraphError::outlook_not_found)?;
    let (tz, tz_name, pref) = out_zone(ctx);
    let mut body = event_json(e, tz, &tz_name, ctx.caller.has_any(perms::EVENT_BODIES));
    body["@odata.context"] = json!(format!(
        "https://graph.microsoft.com/v1.0/$metadata#users('{}')/events/$entity",
        owner.oid
    ));
    Ok(applied(json(odata::apply_select(body, &ctx.query.select())), &pref))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRequest {
    schedules: Vec<String>,
    start_time: DateTimeTimeZone,
    end_time: DateTimeTimeZone,
    #[serde(default)]
    availability_view_interval: Option<i64>,
}

fn status_code(s: ShowAs) -> u8 {
    match s {
        ShowAs::Free => 0,
        ShowAs::Tentative => 1,
        ShowAs::Busy => 2,
        ShowAs::Oof => 3,
        ShowAs::WorkingElsewhere => 4,
    }
}

/// Which status wins when several events overlap a slot.
fn rank(code: u8) -> u8 {
    match code {
        3 => 4,
        2 => 3,
        1 => 2,
        4 => 1,
        _ => 0,
    }
}

pub fn get_schedule(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::GET_SCHEDULE)?;
    let req: ScheduleRequest = serde_json::from_slice(ctx.body).map_err(|e| {
        GraphError::bad_request("ErrorInvalidRequest", format!("The request body is invalid: {e}"))
    })?;
    if req.schedules.is_empty() {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "The parameter 'schedules' must not be empty.",
        ));
    }
    if req.schedules.len() > 20 {
        return Err(GraphError::bad_request(
            "ErrorExceededFindCountLimit",
            "The number of schedules requested exceeds the limit of 20.",
        ));
    }
    let interval = req.availability_view_interval.unwrap_or(30);
    if !(5..=1440).contains(&interval) {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "AvailabilityViewInterval must be between 5 and 1440 minutes.",
        ));
    }
    let start = parse_dttz(&req.start_time)?;
    let end = parse_dttz(&req.end_time)?;
    if end <= start {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "The end time must be after the start time.",
        ));
    }
    if end - start >= Duration::days(62) {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "The requested time window must be shorter than 62 days.",
        ));
    }
    let (tz, tz_name, pref) = out_zone(ctx);
    let (tenant, idx) = ctx.tenant()?;
    let slots = ((end - start).num_minutes() + interval - 1) / interval;
    let values: Vec<Value> = req
        .schedules
        .iter()
        .map(|addr| {
            let Some(user) = ctx.store.user(ctx.caller.tid, addr) else {
                return json!({
                    "scheduleId": addr,
                    "availabilityView": "",
                    "scheduleItems": [],
                    "error": {"message": format!("The specified user '{addr}' could not be found."), "responseCode": "ErrorMailRecipientNotFound"},
                });
            };
            let events: Vec<&Event> = idx
                .calendars
                .get(&user.oid)
                .map(|p| tenant.content.calendars[*p].events.iter().filter(|e| !e.is_cancelled && e.start < end && e.end > start).collect())
                .unwrap_or_default();
            let view: String = (0..slots)
                .map(|i| {
                    let s = start + Duration::minutes(i * interval);
                    let e = s + Duration::minutes(interval);
                    let code = events.iter().filter(|ev| ev.start < e && ev.end > s).map(|ev| status_code(ev.show_as)).max_by_key(|c| rank(*c)).unwrap_or(0);
                    char::from(b'0' + code)
                })
                .collect();
            let items: Vec<Value> = events
                .iter()
                .filter(|e| e.show_as != ShowAs::Free)
                .map(|e| {
                    let mut item = json!({
                        "isPrivate": e.sensitivity == "private",
                        "status": show_as(e.show_as),
                        "start": date_time_tz(e.start, tz, &tz_name),
                        "end": date_time_tz(e.end, tz, &tz_name),
                    });
                    if matches!(e.sensitivity.as_str(), "normal" | "personal") {
                        item["subject"] = json!(e.subject);
                        item["location"] = json!(e.location.clone().unwrap_or_default());
                    }
                    item
                })
                .collect();
            let wh = &user.working_hours;
            json!({
                "scheduleId": addr,
                "availabilityView": view,
                "scheduleItems": items,
                "workingHours": {
                    "daysOfWeek": wh.days,
                    "startTime": format!("{}.0000000", wh.start.format("%H:%M:%S")),
                    "endTime": format!("{}.0000000", wh.end.format("%H:%M:%S")),
                    "timeZone": {"name": wh.time_zone.clone().unwrap_or_else(|| user.time_zone.clone())},
                },
            })
        })
        .collect();
    Ok(applied(
        json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
            "value": values,
        })),
        &pref,
    ))
}

// ─── findMeetingTimes ───────────────────────────────────────────────────────

/// `POST /me/findMeetingTimes` body. Graph's own examples send booleans and numbers as strings
/// (`"isOrganizerOptional": "false"`, `"minimumAttendeePercentage": "100"`) and spell
/// `timeslots` in lower case, and Graph accepts both, so those fields are read loosely.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FindRequest {
    #[serde(default)]
    attendees: Vec<FindAttendee>,
    #[serde(default)]
    time_constraint: Option<TimeConstraint>,
    #[serde(default)]
    location_constraint: Option<LocationConstraint>,
    #[serde(default)]
    meeting_duration: Option<String>,
    #[serde(default)]
    max_candidates: Option<Value>,
    #[serde(default)]
    is_organizer_optional: Option<Value>,
    #[serde(default)]
    minimum_attendee_percentage: Option<Value>,
    #[serde(default)]
    return_suggestion_reasons: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FindAttendee {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    email_address: FindAddress,
}

#[derive(Deserialize)]
struct FindAddress {
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeConstraint {
    #[serde(default)]
    activity_domain: Option<String>,
    #[serde(default, alias = "timeslots", alias = "TimeSlots")]
    time_slots: Vec<TimeSlot>,
}

#[derive(Deserialize)]
struct TimeSlot {
    start: DateTimeTimeZone,
    end: DateTimeTimeZone,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationConstraint {
    #[serde(default)]
    is_required: Option<Value>,
    #[serde(default)]
    suggest_location: Option<Value>,
    #[serde(default)]
    locations: Vec<LocationRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationRequest {
    #[serde(default)]
    display_name: Option<String>,
}

/// The 400 Graph's OData reader gives for a literal of the wrong type (observed for
/// `meetingDuration`: `RequestBodyRead`, "Cannot convert the literal 'x' to the expected type
/// 'Edm.Duration'.").
fn literal_error(literal: &str, ty: &str) -> GraphError {
    GraphError::bad_request(
        "RequestBodyRead",
        format!("Cannot convert the literal '{literal}' to the expected type '{ty}'."),
    )
}

fn literal_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A boolean sent as JSON `true` or as the string `"true"`.
fn loose_bool(v: Option<&Value>) -> Result<Option<bool>, GraphError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(literal_error(&literal_text(other), "Edm.Boolean")),
    }
}

/// A number sent as a JSON number or as a numeric string.
fn loose_number(v: Option<&Value>, ty: &str) -> Result<Option<f64>, GraphError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.is_finite() && (ty != "Edm.Int32" || n.fract() == 0.0) => Ok(Some(n)),
        _ => Err(literal_error(&v.map(literal_text).unwrap_or_default(), ty)),
    }
}

/// An `Edm.Duration` (xsd `dayTimeDuration`: `P[nD][T[nH][nM][n[.f]S]]`, optionally with
/// weeks); years and months are not durations of fixed length and are refused.
fn iso_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix(['P', 'p'])?;
    let (mut secs, mut num, mut in_time, mut parts) = (0f64, String::new(), false, 0);
    let mut after_t = 0;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' | '.' => num.push(c),
            'T' if !in_time && num.is_empty() => in_time = true,
            unit => {
                let scale = match (in_time, unit) {
                    (false, 'W') => 604_800.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
                let n: f64 = std::mem::take(&mut num).parse().ok()?;
                secs += n * scale;
                parts += 1;
                if in_time {
                    after_t += 1;
                }
            }
        }
    }
    // A dangling number, a bare `P`, or a `T` with nothing after it is malformed.
    if !num.is_empty() || parts == 0 || (in_time && after_t == 0) {
        return None;
    }
    // Anything beyond ten years cannot fit a 62-day window anyway; keeps the arithmetic finite.
    if !secs.is_finite() || secs > 315_360_000.0 {
        return None;
    }
    Some(Duration::milliseconds((secs * 1000.0).round() as i64))
}

/// `timeConstraint.activityDomain`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// Inside each person's working days and hours (Graph's default; `unknown` behaves so too).
    Work,
    /// Inside each person's working hours, any day of the week.
    Personal,
    /// Any time.
    Unrestricted,
}

/// How Graph weighs an attendee's free/busy status in a suggestion's confidence
/// (`user-findmeetingtimes.md`: free 100 %, unknown 49 %, busy 0 %). Tentative is not
/// documented; it counts as a half chance here, which lowers confidence without falling below
/// the default 50 % threshold. Someone working elsewhere is working, so counts as free.
fn attendance_chance(availability: &str) -> f64 {
    match availability {
        "free" | "workingElsewhere" => 100.0,
        "tentative" => 50.0,
        "unknown" => 49.0,
        _ => 0.0,
    }
}

/// One person whose calendar the search consults: the organiser or an attendee.
struct Person<'a> {
    user: Option<&'a User>,
    /// Events that block time (not cancelled, not shown as free).
    events: Vec<&'a Event>,
}

impl Person<'_> {
    /// The free/busy status over `[start, end)`: the strongest overlapping event's, `unknown`
    /// for someone outside the tenant.
    fn availability(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> &'static str {
        if self.user.is_none() {
            return "unknown";
        }
        self.events
            .iter()
            .filter(|e| e.start < end && e.end > start)
            .map(|e| status_code(e.show_as))
            .max_by_key(|c| rank(*c))
            .map_or("free", |c| match c {
                1 => "tentative",
                2 => "busy",
                3 => "oof",
                4 => "workingElsewhere",
                _ => "free",
            })
    }

    /// Whether `[start, end)` lies inside this person's working hours, read in the working
    /// hours' own zone (the mailbox zone unless set). Unknown people have no known hours.
    fn in_hours(&self, domain: Domain, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let Some(user) = self.user else { return true };
        if domain == Domain::Unrestricted {
            return true;
        }
        let wh = &user.working_hours;
        let tz = zone(wh.time_zone.as_deref().unwrap_or(&user.time_zone)).unwrap_or(Tz::UTC);
        let (ls, le) = (start.with_timezone(&tz), end.with_timezone(&tz));
        // The meeting must sit inside one local working day.
        if ls.date_naive() != le.date_naive() || ls.time() < wh.start || le.time() > wh.end {
            return false;
        }
        if domain == Domain::Personal {
            return true;
        }
        let day = ls.format("%A").to_string().to_ascii_lowercase();
        wh.days.iter().any(|d| d.eq_ignore_ascii_case(&day))
    }
}

fn person<'a>(
    tenant: &'a fixtures::Tenant,
    idx: &crate::store::TenantIndex,
    user: Option<&'a User>,
) -> Person<'a> {
    let events = user
        .and_then(|u| idx.calendars.get(&u.oid))
        .map(|p| {
            tenant.content.calendars[*p]
                .events
                .iter()
                .filter(|e| !e.is_cancelled && e.show_as != ShowAs::Free)
                .collect()
        })
        .unwrap_or_default();
    Person { user, events }
}

/// Why a candidate time was not suggested; the first reason in this order that rejected every
/// candidate becomes `emptySuggestionsReason`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rejection {
    Organizer,
    AttendeesUnknown,
    Attendees,
}

/// The longest span the time slots may cover, as for getSchedule (the same free/busy service
/// answers both) [unverified for findMeetingTimes].
const MAX_WINDOW_DAYS: i64 = 62;
/// Candidate start times are on the half hour, as Outlook's suggestions are.
const STEP_MINUTES: i64 = 30;

/// `findMeetingTimes` after `user-findmeetingtimes.md`: candidates every half hour inside the
/// requested time slots (or the next two days), kept inside the organiser's and every known
/// attendee's working hours in their own mailbox zone (`activityDomain`), dropped when the
/// organiser is busy (unless `isOrganizerOptional`) or when the average attendance chance is
/// below `minimumAttendeePercentage` (default 50); ordered by confidence, then time.
pub fn find_meeting_times(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::FIND_MEETING_TIMES)?;
    let req: FindRequest = serde_json::from_slice(ctx.body).map_err(|e| {
        GraphError::bad_request("ErrorInvalidRequest", format!("The request body is invalid: {e}"))
    })?;
    let duration = match req.meeting_duration.as_deref() {
        None => Duration::minutes(30),
        Some(d) => iso_duration(d).ok_or_else(|| literal_error(d, "Edm.Duration"))?,
    };
    if duration <= Duration::zero() {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "The meeting duration must be greater than zero.",
        ));
    }
    let organizer_optional = loose_bool(req.is_organizer_optional.as_ref())?.unwrap_or(false);
    let reasons = loose_bool(req.return_suggestion_reasons.as_ref())?.unwrap_or(false);
    let min_pct =
        loose_number(req.minimum_attendee_percentage.as_ref(), "Edm.Double")?.unwrap_or(50.0);
    if !(0.0..=100.0).contains(&min_pct) {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "minimumAttendeePercentage must be between 0 and 100.",
        ));
    }
    let max = match loose_number(req.max_candidates.as_ref(), "Edm.Int32")? {
        None => 5,
        Some(n) if n < 0.0 => {
            return Err(GraphError::bad_request(
                "ErrorInvalidParameter",
                "maxCandidates must not be negative.",
            ));
        }
        Some(n) => n.min(10_000.0) as usize,
    };
    let tc = req.time_constraint.as_ref();
    let domain = match tc.and_then(|t| t.activity_domain.as_deref()) {
        None => Domain::Work,
        Some(d) if d.eq_ignore_ascii_case("work") || d.eq_ignore_ascii_case("unknown") => {
            Domain::Work
        }
        Some(d) if d.eq_ignore_ascii_case("personal") => Domain::Personal,
        Some(d) if d.eq_ignore_ascii_case("unrestricted") => Domain::Unrestricted,
        Some(d) => return Err(literal_error(d, "microsoft.graph.activityDomain")),
    };
    let attendee_kinds: Vec<&'static str> = req
        .attendees
        .iter()
        .map(|a| match a.kind.as_deref() {
            None => Ok("required"),
            Some(k) if k.eq_ignore_ascii_case("required") => Ok("required"),
            Some(k) if k.eq_ignore_ascii_case("optional") => Ok("optional"),
            Some(k) if k.eq_ignore_ascii_case("resource") => Ok("resource"),
            Some(k) => Err(literal_error(k, "microsoft.graph.attendeeType")),
        })
        .collect::<Result<_, _>>()?;
    // Slots in the past are accepted, as Graph does.
    let slots: Vec<(DateTime<Utc>, DateTime<Utc>)> = match tc {
        Some(tc) if !tc.time_slots.is_empty() => tc
            .time_slots
            .iter()
            .map(|s| Ok((parse_dttz(&s.start)?, parse_dttz(&s.end)?)))
            .collect::<Result<_, GraphError>>()?,
        _ => vec![(ctx.now, ctx.now + Duration::days(2))],
    };
    let first = slots.iter().map(|s| s.0).min().unwrap_or(ctx.now);
    let last = slots.iter().map(|s| s.1).max().unwrap_or(ctx.now);
    if last - first > Duration::days(MAX_WINDOW_DAYS) {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            format!("The time slots must lie within {MAX_WINDOW_DAYS} days."),
        ));
    }

    let (tenant, idx) = ctx.tenant()?;
    let organizer = person(tenant, idx, ctx.store.user_by_oid(ctx.caller.tid, ctx.caller.oid));
    // Everyone is looked up in the caller's tenant only: another tenant's users, external
    // addresses and rooms the tenant does not hold are `unknown`, as in Graph.
    let attendees: Vec<Person<'_>> = req
        .attendees
        .iter()
        .map(|a| {
            person(tenant, idx, ctx.store.user(ctx.caller.tid, a.email_address.address.trim()))
        })
        .collect();

    // Candidate start times: on the half hour, the whole meeting inside one slot.
    let step = Duration::minutes(STEP_MINUTES);
    let mut starts = std::collections::BTreeSet::new();
    for (s, e) in &slots {
        let secs = s.timestamp();
        let aligned = secs.div_euclid(step.num_seconds()) * step.num_seconds();
        let mut t = DateTime::<Utc>::from_timestamp(aligned, 0).unwrap_or(*s);
        if t < *s {
            t += step;
        }
        while t + duration <= *e {
            starts.insert(t);
            t += step;
        }
    }

    let (tz, tz_name, pref) = out_zone(ctx);
    let mut rejections = Vec::new();
    let mut found: Vec<(f64, DateTime<Utc>, &'static str, Vec<&'static str>)> = Vec::new();
    for &t in &starts {
        let end = t + duration;
        let organizer_status = organizer.availability(t, end);
        if !organizer_optional
            && (!organizer.in_hours(domain, t, end) || matches!(organizer_status, "busy" | "oof"))
        {
            rejections.push(Rejection::Organizer);
            continue;
        }
        if !attendees.iter().all(|a| a.in_hours(domain, t, end)) {
            rejections.push(Rejection::Attendees);
            continue;
        }
        let availability: Vec<&'static str> =
            attendees.iter().map(|a| a.availability(t, end)).collect();
        let confidence = if availability.is_empty() {
            100.0
        } else {
            availability.iter().map(|a| attendance_chance(a)).sum::<f64>()
                / availability.len() as f64
        };
        if confidence < min_pct {
            rejections.push(if availability.contains(&"unknown") {
                Rejection::AttendeesUnknown
            } else {
                Rejection::Attendees
            });
            continue;
        }
        found.push((confidence, t, organizer_status, availability));
    }
    // By confidence, high to low, then chronologically (`meetingTimeSuggestion.order`).
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    found.truncate(max);

    let lc = req.location_constraint.as_ref();
    let locations: Vec<Value> = lc
        .map(|l| {
            l.locations
                .iter()
                .map(|loc| json!({"displayName": loc.display_name.clone().unwrap_or_default()}))
                .collect()
        })
        .unwrap_or_default();
    // The fake tenants hold no rooms: a required location Graph has to find cannot be found.
    let location_unavailable = match lc {
        Some(l) => {
            loose_bool(l.is_required.as_ref())?.unwrap_or(false)
                && loose_bool(l.suggest_location.as_ref())?.unwrap_or(false)
                && l.locations.is_empty()
        }
        None => false,
    };

    let empty_reason = if location_unavailable && !found.is_empty() {
        found.clear();
        "LocationsUnavailable"
    } else if !found.is_empty() {
        ""
    } else if starts.is_empty() {
        "Unknown"
    } else if rejections.iter().all(|r| *r == Rejection::Organizer) {
        "OrganizerUnavailable"
    } else if rejections.contains(&Rejection::AttendeesUnknown) {
        "AttendeesUnavailableOrUnknown"
    } else {
        "AttendeesUnavailable"
    };

    let suggestions: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(i, (confidence, t, organizer_status, availability))| {
            let mut v = json!({
                "confidence": confidence,
                "order": i + 1,
                "organizerAvailability": organizer_status,
                "attendeeAvailability": req.attendees.iter().zip(&attendee_kinds).zip(availability).map(|((a, kind), av)| json!({
                    "attendee": {"type": kind, "emailAddress": {"address": a.email_address.address}},
                    "availability": av,
                })).collect::<Vec<_>>(),
                "locations": locations,
                "meetingTimeSlot": {
                    "start": date_time_tz(*t, tz, &tz_name),
                    "end": date_time_tz(*t + duration, tz, &tz_name),
                },
            });
            if reasons {
                v["suggestionReason"] = json!(if *confidence >= 100.0 {
                    "Suggested because it is one of the nearest times when all attendees are available."
                } else {
                    "Suggested because it is one of the nearest times when most attendees are available."
                });
            }
            v
        })
        .collect();
    Ok(applied(
        json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.meetingTimeSuggestionsResult",
            "emptySuggestionsReason": empty_reason,
            "meetingTimeSuggestions": suggestions,
        })),
        &pref,
    ))
}
