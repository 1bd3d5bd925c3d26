//! calendarView, events, getSchedule, findMeetingTimes.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestWorld;

const CAL: &[&str] = &["Calendars.Read"];

#[tokio::test]
async fn calendar_view_needs_a_window_and_honours_the_timezone_preference() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", CAL);
    let r = w.get(&t, "/v1.0/me/calendarView").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "ErrorInvalidParameter"));
    let path = "/v1.0/me/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-12-31T00:00:00Z&$top=5";
    let r = w.get_h(&t, path, &[("Prefer", "outlook.timezone=\"Pacific Standard Time\"")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.body["value"].as_array().expect("value");
    assert!(!v.is_empty());
    assert_eq!(v[0]["start"]["timeZone"], "Pacific Standard Time");
    assert!(r.body["@odata.nextLink"].is_string());
    assert_eq!(r.header("preference-applied"), "outlook.timezone=\"Pacific Standard Time\"");
}

#[tokio::test]
async fn get_schedule_returns_views_errors_and_enforces_limits() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", CAL);
    let body = json!({
        "schedules": ["adele@contoso.com", "nobody@contoso.com"],
        "startTime": {"dateTime": "2026-06-01T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-06-08T00:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 60,
    });
    let r = w.post(&t, "/v1.0/me/calendar/getSchedule", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["value"][0]["availabilityView"].as_str().expect("view").len(), 7 * 24);
    assert!(r.body["value"][0]["workingHours"]["daysOfWeek"].is_array());
    assert!(r.body["value"][1]["error"]["message"].is_string());
    let too_long = json!({
        "schedules": ["adele@contoso.com"],
        "startTime": {"dateTime": "2026-01-01T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-03-05T00:00:00", "timeZone": "UTC"},
    });
    assert_eq!(
        w.post(&t, "/v1.0/me/calendar/getSchedule", too_long).await.status,
        StatusCode::BAD_REQUEST
    );
    let many: Vec<String> = (0..21).map(|i| format!("u{i}@contoso.com")).collect();
    let too_many = json!({
        "schedules": many,
        "startTime": {"dateTime": "2026-06-01T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-06-02T00:00:00", "timeZone": "UTC"},
    });
    assert_eq!(
        w.post(&t, "/v1.0/me/calendar/getSchedule", too_many).await.status,
        StatusCode::BAD_REQUEST
    );
    let basic = w.token("contoso", "adele", &["Calendars.ReadBasic"]);
    let r = w.post(&basic, "/v1.0/me/calendar/getSchedule", json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "ErrorAccessDenied"));
}

#[tokio::test]
async fn find_meeting_times_needs_the_shared_scope() {
    let w = TestWorld::start().await;
    let body = json!({
        "attendees": [{"emailAddress": {"address": "alex@contoso.com"}}],
        "timeConstraint": {"timeSlots": [{"start": {"dateTime": "2026-06-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-06-02T17:00:00", "timeZone": "UTC"}}]},
        "meetingDuration": "PT1H",
    });
    let t = w.token("contoso", "adele", CAL);
    assert_eq!(
        w.post(&t, "/v1.0/me/findMeetingTimes", body.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let t = w.token("contoso", "adele", &["Calendars.Read.Shared"]);
    let r = w.post(&t, "/v1.0/me/findMeetingTimes", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["meetingTimeSuggestions"].is_array());
}

#[tokio::test]
async fn events_list_and_get() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", CAL);
    let r = w.get(&t, "/v1.0/me/events?$top=3").await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.body["value"][0]["id"].as_str().expect("id").to_owned();
    let one = w.get(&t, &format!("/v1.0/me/events/{}", crate::helpers::seg(&id))).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["id"], serde_json::Value::String(id));
}
