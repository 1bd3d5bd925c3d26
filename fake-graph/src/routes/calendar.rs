//! Calendar: `calendarView` (required window, `Prefer: outlook.timezone`), events, and
//! `getSchedule` (≤ 20 schedules, < 62 days, interval 5–1440, per-schedule errors); the time
//! helpers (`dateTimeTimeZone`, Windows zone names, free/busy codes) that `findMeetingTimes`
//! (`meeting_times.rs`) shares.

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
pub(super) fn date_time_tz(d: DateTime<Utc>, tz: Tz, name: &str) -> Value {
    json!({"dateTime": format!("{}.0000000", d.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S")), "timeZone": name})
}

/// Parses a `dateTimeTimeZone` object.
pub(super) fn parse_dttz(v: &DateTimeTimeZone) -> Result<DateTime<Utc>, GraphError> {
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
pub(super) struct DateTimeTimeZone {
    date_time: String,
    time_zone: String,
}

/// The output zone from `Prefer: outlook.timezone` (UTC by default).
pub(super) fn out_zone(ctx: &Ctx<'_>) -> (Tz, String, Vec<String>) {
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

pub(super) fn status_code(s: ShowAs) -> u8 {
    match s {
        ShowAs::Free => 0,
        ShowAs::Tentative => 1,
        ShowAs::Busy => 2,
        ShowAs::Oof => 3,
        ShowAs::WorkingElsewhere => 4,
    }
}

/// Which status wins when several events overlap a slot.
pub(super) fn rank(code: u8) -> u8 {
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
