//! Response shapes: insta snapshots of representative bodies, and a structural comparison with
//! the example responses quoted in `reference/graph.md` (same field names and nesting).

use serde_json::{Value, json};

use crate::helpers::{ALL, TestWorld};

/// Every key path of `reference` must exist in `actual` (arrays compared by their first element).
fn assert_has_shape(actual: &Value, reference: &Value, at: &str) {
    match (reference, actual) {
        (Value::Object(r), Value::Object(a)) => {
            for (k, rv) in r {
                let av = a.get(k).unwrap_or_else(|| panic!("missing field {at}.{k} in {actual}"));
                assert_has_shape(av, rv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            if let (Some(r0), Some(a0)) = (r.first(), a.first()) {
                assert_has_shape(a0, r0, &format!("{at}[0]"));
            }
        }
        (Value::Object(_) | Value::Array(_), other) => {
            panic!("{at}: expected a structure, got {other}")
        }
        _ => {}
    }
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let volatile = matches!(
                    k.as_str(),
                    "request-id"
                        | "client-request-id"
                        | "date"
                        | "@microsoft.graph.downloadUrl"
                        | "@odata.nextLink"
                );
                if volatile {
                    *val = json!("[redacted]");
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

#[tokio::test]
async fn search_get_schedule_and_error_bodies_match_the_reference_examples() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "megan", ALL);
    let drive = w.post(&t, "/v1.0/search/query", json!({"requests":[{"entityTypes":["driveItem"],"query":{"queryString":"budget"},"from":0,"size":5}]})).await;
    let reference = json!({"@odata.context":"x","value":[{"searchTerms":["contoso"],"hitsContainers":[{"total":1,"moreResultsAvailable":false,
        "hits":[{"hitId":"x","rank":1,"summary":"x","resource":{"@odata.type":"#microsoft.graph.driveItem","createdDateTime":"x","lastModifiedDateTime":"x","name":"x","webUrl":"x",
        "createdBy":{"user":{"displayName":"x"}},"lastModifiedBy":{"user":{"displayName":"x"}},"parentReference":{"siteId":"x","driveId":"x"},
        "fileSystemInfo":{"createdDateTime":"x","lastModifiedDateTime":"x"}}}]}]}]});
    assert_has_shape(&drive.body, &reference, "$");

    let adele = w.token("contoso", "adele", ALL);
    let ev = w.post(&adele, "/v1.0/search/query", json!({"requests":[{"entityTypes":["event"],"query":{"queryString":"sync"},"from":0,"size":1}]})).await;
    let reference = json!({"value":[{"hitsContainers":[{"hits":[{"hitId":"x","rank":1,"summary":"x","resource":{"@odata.type":"#microsoft.graph.event",
        "end":{"dateTime":"x","timeZone":"UTC"},"hasAttachments":false,"iCalUId":"x","isAllDay":false,"sensitivity":"Normal",
        "start":{"dateTime":"x","timeZone":"UTC"},"subject":"x","type":"Single"}}]}]}]});
    assert_has_shape(&ev.body, &reference, "$");

    let chat = w.post(&adele, "/v1.0/search/query", json!({"requests":[{"entityTypes":["chatMessage"],"query":{"queryString":"budget"},"from":0,"size":1}]})).await;
    let reference = json!({"value":[{"hitsContainers":[{"hits":[{"hitId":"x","rank":1,"summary":"x","resource":{"@odata.type":"microsoft.graph.chatMessage","id":"x",
        "createdDateTime":"x","lastModifiedDateTime":"x","subject":"","importance":"normal","webLink":"x","from":{"emailAddress":{"name":"x","address":"x"}},
        "channelIdentity":{},"etag":"x","chatId":"x"}}]}]}]});
    assert_has_shape(&chat.body, &reference, "$");

    let sched = w.post(&t, "/v1.0/me/calendar/getSchedule", json!({"schedules":["adele@contoso.com"],
        "startTime":{"dateTime":"2026-06-01T09:00:00","timeZone":"UTC"},"endTime":{"dateTime":"2026-06-05T18:00:00","timeZone":"UTC"},"availabilityViewInterval":30})).await;
    let reference = json!({"@odata.context":"x","value":[{"scheduleId":"x","availabilityView":"0",
        "scheduleItems":[{"isPrivate":false,"status":"busy","start":{"dateTime":"x","timeZone":"x"},"end":{"dateTime":"x","timeZone":"x"}}],
        "workingHours":{"daysOfWeek":["monday"],"startTime":"x","endTime":"x","timeZone":{"name":"x"}}}]});
    assert_has_shape(&sched.body, &reference, "$");

    let err = w.get(&t, "/v1.0/drives/b!nope/items/nope").await;
    let reference = json!({"error":{"code":"itemNotFound","message":"x","innerError":{"date":"x","request-id":"x","client-request-id":"x"}}});
    assert_has_shape(&err.body, &reference, "$");
    let mut body = err.body.clone();
    redact(&mut body);
    insta::assert_json_snapshot!("drive_item_not_found", body);
}

#[tokio::test]
async fn snapshot_of_a_message_and_a_user() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", ALL);
    let r = w
        .get_h(
            &t,
            "/v1.0/me/messages?$filter=subject eq 'Welcome to Contoso'",
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    let mut body = r.body.clone();
    redact(&mut body);
    insta::assert_json_snapshot!("well_known_message", body);
    let mut me = w.get(&t, "/v1.0/me").await.body;
    redact(&mut me);
    insta::assert_json_snapshot!("me", me);
}
