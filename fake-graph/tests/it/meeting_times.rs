//! findMeetingTimes: working hours in each mailbox's zone, Graph's confidence rule, empty
//! suggestion reasons, candidate limits and bad input.
//!
//! Dates are in October 2026, after the fixture calendars end (they stop 90 days after
//! 2026-06-01), so only the events a test adds are in the way. 2026-10-05 is a Monday; the
//! US zones are on daylight time (PDT = UTC−7, EDT = UTC−4) and Berlin on CEST (UTC+2).
//! Adele works 08:00–17:00 Pacific Mon–Fri, Alex 09:00–17:30 Eastern Mon–Fri and Diego
//! 08:30–18:00 W. Europe Mon–Thu.

use chrono::{DateTime, Utc};
use fixtures::{EmailAddress, Event, ShowAs};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Resp, TestWorld};

const SHARED: &[&str] = &["Calendars.Read.Shared"];
const PATH: &str = "/v1.0/me/findMeetingTimes";

fn slot(start: &str, end: &str) -> Value {
    json!({"start": {"dateTime": start, "timeZone": "UTC"}, "end": {"dateTime": end, "timeZone": "UTC"}})
}

fn attendee(address: &str) -> Value {
    json!({"type": "required", "emailAddress": {"address": address}})
}

fn suggestions(r: &Resp) -> Vec<Value> {
    r.body["meetingTimeSuggestions"].as_array().cloned().unwrap_or_default()
}

fn starts(r: &Resp) -> Vec<String> {
    suggestions(r)
        .iter()
        .filter_map(|s| s["meetingTimeSlot"]["start"]["dateTime"].as_str().map(str::to_owned))
        .collect()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("RFC 3339").with_timezone(&Utc)
}

/// Puts an event on a Contoso user's calendar.
fn add_event(w: &TestWorld, local: &str, start: &str, end: &str, show_as: ShowAs) {
    let (_, oid) = w.persona("contoso", local);
    let added = w.graph.edit_world(|world| {
        let t = world.tenants.iter_mut().find(|t| t.name == "contoso").expect("contoso");
        let Some(cal) = t.content.calendars.iter_mut().find(|c| c.owner == oid) else {
            return false;
        };
        let me = EmailAddress { name: local.into(), address: format!("{local}@contoso.com") };
        cal.events.push(Event {
            id: format!("AAMkTest{local}{}", cal.events.len()),
            subject: "Test hold".into(),
            body_preview: String::new(),
            organizer: me.clone(),
            attendees: vec![me],
            start: utc(start),
            end: utc(end),
            original_time_zone: "UTC".into(),
            is_all_day: false,
            show_as,
            location: None,
            event_type: "singleInstance".into(),
            series_master_id: None,
            is_cancelled: false,
            sensitivity: "normal".into(),
        });
        true
    });
    assert!(added, "{local} has a calendar");
}

#[tokio::test]
async fn suggestions_stay_inside_every_attendees_working_hours_in_their_own_zone() {
    // Arrange
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", SHARED);
    let day = slot("2026-10-05T00:00:00", "2026-10-06T00:00:00");
    let body = |who: &[&str], domain: &str| {
        json!({
            "attendees": who.iter().map(|a| attendee(a)).collect::<Vec<_>>(),
            "timeConstraint": {"activityDomain": domain, "timeSlots": [day.clone()]},
            "meetingDuration": "PT1H",
            "maxCandidates": 100,
        })
    };

    // Act
    let two_zones = w.post(&t, PATH, body(&["alex@contoso.com"], "work")).await;
    let three_zones =
        w.post(&t, PATH, body(&["alex@contoso.com", "diego@contoso.com"], "work")).await;
    let unrestricted = w.post(&t, PATH, body(&["alex@contoso.com"], "unrestricted")).await;
    let pacific = w
        .send(
            reqwest::Method::POST,
            Some(&t),
            PATH,
            Some(body(&["alex@contoso.com"], "work")),
            &[("Prefer", "outlook.timezone=\"Pacific Standard Time\"")],
        )
        .await;

    // Assert: Adele 15:00–24:00 UTC ∩ Alex 13:00–21:30 UTC = 15:00–21:30 UTC.
    assert_eq!(two_zones.status, StatusCode::OK, "{}", two_zones.body);
    let expected: Vec<String> = (0..12)
        .map(|i| format!("2026-10-05T{:02}:{:02}:00.0000000", 15 + i / 2, (i % 2) * 30))
        .collect();
    assert_eq!(starts(&two_zones), expected);
    assert_eq!(two_zones.body["emptySuggestionsReason"], "");
    for s in suggestions(&two_zones) {
        assert_eq!(s["confidence"], 100.0);
        assert_eq!(s["organizerAvailability"], "free");
        assert_eq!(s["attendeeAvailability"][0]["availability"], "free");
        assert_eq!(
            s["attendeeAvailability"][0]["attendee"]["emailAddress"]["address"],
            "alex@contoso.com"
        );
        assert_eq!(s["meetingTimeSlot"]["start"]["timeZone"], "UTC");
    }
    // Diego (08:30–18:00 CEST = 06:30–16:00 UTC) leaves one hour: 15:00–16:00 UTC.
    assert_eq!(starts(&three_zones), ["2026-10-05T15:00:00.0000000"]);
    // Without working hours every half hour of the day fits a one-hour meeting.
    assert_eq!(suggestions(&unrestricted).len(), 47);
    // The same times, shown in the preferred zone.
    assert_eq!(pacific.header("preference-applied"), "outlook.timezone=\"Pacific Standard Time\"");
    let first = &suggestions(&pacific)[0]["meetingTimeSlot"];
    assert_eq!(first["start"]["dateTime"], "2026-10-05T08:00:00.0000000");
    assert_eq!(first["start"]["timeZone"], "Pacific Standard Time");
    assert_eq!(first["end"]["dateTime"], "2026-10-05T09:00:00.0000000");
}

#[tokio::test]
async fn a_tentative_or_unknown_attendee_lowers_confidence_and_orders_the_suggestions() {
    // Arrange: Alex is tentative 16:00–17:00 UTC.
    let w = TestWorld::start().await;
    add_event(&w, "alex", "2026-10-05T16:00:00Z", "2026-10-05T17:00:00Z", ShowAs::Tentative);
    let t = w.token("contoso", "adele", SHARED);
    let body = |who: &[&str], extra: Value| {
        let mut b = json!({
            "attendees": who.iter().map(|a| attendee(a)).collect::<Vec<_>>(),
            "timeConstraint": {"timeslots": [slot("2026-10-05T15:00:00", "2026-10-05T18:00:00")]},
            "meetingDuration": "PT1H",
            "maxCandidates": 10,
            "returnSuggestionReasons": "true",
        });
        if let (Value::Object(b), Value::Object(extra)) = (&mut b, extra) {
            b.extend(extra);
        }
        b
    };

    // Act
    let tentative = w.post(&t, PATH, body(&["alex@contoso.com"], json!({}))).await;
    let strict = w
        .post(&t, PATH, body(&["alex@contoso.com"], json!({"minimumAttendeePercentage": "100"})))
        .await;
    let external =
        w.post(&t, PATH, body(&["alex@contoso.com", "kim.akers@litware.com"], json!({}))).await;

    // Assert: the two fully free hours first, then the tentative ones in time order.
    assert_eq!(tentative.status, StatusCode::OK, "{}", tentative.body);
    assert_eq!(
        starts(&tentative),
        [
            "2026-10-05T15:00:00.0000000",
            "2026-10-05T17:00:00.0000000",
            "2026-10-05T15:30:00.0000000",
            "2026-10-05T16:00:00.0000000",
            "2026-10-05T16:30:00.0000000",
        ]
    );
    let s = suggestions(&tentative);
    assert_eq!(
        s.iter().map(|s| s["order"].as_u64().unwrap_or(0)).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(s[0]["confidence"], 100.0);
    assert!(s[2]["confidence"].as_f64().is_some_and(|c| (50.0..100.0).contains(&c)), "{}", s[2]);
    assert_eq!(s[2]["attendeeAvailability"][0]["availability"], "tentative");
    assert!(s[2]["suggestionReason"].is_string());
    // Asking for certainty leaves the free hours only.
    assert_eq!(starts(&strict), ["2026-10-05T15:00:00.0000000", "2026-10-05T17:00:00.0000000"]);
    // Someone outside the tenant is unknown: 49 % (Graph's figure), averaged with Alex's 100 %.
    let first = &suggestions(&external)[0];
    assert_eq!(first["attendeeAvailability"][1]["availability"], "unknown");
    assert_eq!(first["confidence"], 74.5);
}

#[tokio::test]
async fn empty_suggestions_say_why() {
    // Arrange: Adele is busy all Tuesday afternoon UTC.
    let w = TestWorld::start().await;
    add_event(&w, "adele", "2026-10-06T12:00:00Z", "2026-10-07T00:00:00Z", ShowAs::Busy);
    let t = w.token("contoso", "adele", SHARED);
    let ask = |who: &[&str], slot: Value, extra: Value| {
        let mut b = json!({
            "attendees": who.iter().map(|a| attendee(a)).collect::<Vec<_>>(),
            "timeConstraint": {"activityDomain": "work", "timeSlots": [slot]},
            "meetingDuration": "PT1H",
        });
        if let (Value::Object(b), Value::Object(extra)) = (&mut b, extra) {
            b.extend(extra);
        }
        b
    };
    let saturday = slot("2026-10-10T00:00:00", "2026-10-11T00:00:00");
    let friday = slot("2026-10-09T00:00:00", "2026-10-10T00:00:00");
    let tuesday = slot("2026-10-06T00:00:00", "2026-10-07T00:00:00");
    let monday = slot("2026-10-05T00:00:00", "2026-10-06T00:00:00");
    let cases = [
        // Nobody works on Saturday; the organiser's hours rule first.
        (ask(&["alex@contoso.com"], saturday, json!({})), "OrganizerUnavailable"),
        // Diego does not work on Fridays.
        (ask(&["diego@contoso.com"], friday, json!({})), "AttendeesUnavailable"),
        // The organiser is busy whenever she works on Tuesday.
        (ask(&["alex@contoso.com"], tuesday.clone(), json!({})), "OrganizerUnavailable"),
        // An outsider alone is 49 % < the default 50 %.
        (
            ask(&["kim.akers@litware.com"], monday.clone(), json!({})),
            "AttendeesUnavailableOrUnknown",
        ),
        // A one-hour meeting does not fit a half-hour slot.
        (ask(&[], slot("2026-10-05T16:00:00", "2026-10-05T16:30:00"), json!({})), "Unknown"),
        // A room Graph would have to find: the tenant has none.
        (
            ask(
                &["alex@contoso.com"],
                monday,
                json!({"locationConstraint": {"isRequired": true, "suggestLocation": true, "locations": []}}),
            ),
            "LocationsUnavailable",
        ),
    ];

    for (body, reason) in cases {
        // Act
        let r = w.post(&t, PATH, body.clone()).await;
        // Assert
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["emptySuggestionsReason"], reason, "{body}");
        assert_eq!(suggestions(&r).len(), 0, "{body}");
    }

    // An optional organiser's busy time no longer blocks Tuesday.
    let r = w
        .post(&t, PATH, ask(&["alex@contoso.com"], tuesday, json!({"isOrganizerOptional": true})))
        .await;
    let s = suggestions(&r);
    assert!(!s.is_empty(), "{}", r.body);
    assert!(s.iter().any(|s| s["organizerAvailability"] == "busy"));
}

#[tokio::test]
async fn max_candidates_defaults_duration_and_bad_input() {
    // Arrange
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", SHARED);
    let day = json!({"timeSlots": [slot("2026-10-05T00:00:00", "2026-10-06T00:00:00")]});

    // Act
    let three = w.post(&t, PATH, json!({"timeConstraint": day, "maxCandidates": 3})).await;
    let default = w.post(&t, PATH, json!({"timeConstraint": day})).await;
    let bad_duration =
        w.post(&t, PATH, json!({"timeConstraint": day, "meetingDuration": "an hour"})).await;
    let bad_domain = w
        .post(&t, PATH, json!({"timeConstraint": {"activityDomain": "weekend", "timeSlots": []}}))
        .await;
    let too_long = w
        .post(
            &t,
            PATH,
            json!({"timeConstraint": {"timeSlots": [slot("2026-10-01T00:00:00", "2026-12-15T00:00:00")]}}),
        )
        .await;
    let past = w
        .post(&t, PATH, json!({"timeConstraint": {"timeSlots": [slot("2020-03-02T16:00:00", "2020-03-02T18:00:00")]}}))
        .await;

    // Assert: three candidates, 30 minutes by default, no reasons unless asked for.
    assert_eq!(three.status, StatusCode::OK, "{}", three.body);
    let s = suggestions(&three);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0]["meetingTimeSlot"]["start"]["dateTime"], "2026-10-05T15:00:00.0000000");
    assert_eq!(s[0]["meetingTimeSlot"]["end"]["dateTime"], "2026-10-05T15:30:00.0000000");
    assert!(s[0].get("suggestionReason").is_none());
    assert_eq!(suggestions(&default).len(), 5);
    assert_eq!(
        (bad_duration.status, bad_duration.code()),
        (StatusCode::BAD_REQUEST, "RequestBodyRead")
    );
    assert!(bad_duration.body["error"]["message"].as_str().unwrap_or("").contains("Edm.Duration"));
    assert_eq!(bad_domain.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    // Time slots in the past are still answered.
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
}
