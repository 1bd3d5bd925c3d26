//! `POST /me/findMeetingTimes` after `user-findmeetingtimes.md`: candidate times on the half
//! hour inside the requested slots, kept inside everyone's working hours in their own mailbox
//! zone, scored by Graph's confidence rule, with the documented empty-suggestion reasons. The
//! request body is read loosely, as Graph reads it (booleans and numbers may come as strings).

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use fixtures::{Event, ShowAs, User};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Ctx, applied,
    calendar::{DateTimeTimeZone, date_time_tz, out_zone, parse_dttz, rank, status_code, zone},
    json,
};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult},
};

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
