//! `read_resource` of a calendar event.

use super::{ReadOptions, ReadResult, address, mail::body_text, put, set_text};
use crate::domain::uri::M365Uri;
use crate::graph::{GraphRequest, model::Event};
use crate::tools::{
    mailbox::MailboxZone,
    pipeline::{Scope, ToolError},
    shaping::{DateTimes, SourceStatus},
};

/// One event: its times, place, people and body as text.
pub(super) async fn read_event(
    call: &Scope<'_>,
    uri: &M365Uri,
    zone: &MailboxZone,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Calendars.Read"]);
    let req = GraphRequest::get(uri.graph_path())
        .select(&[
            "id",
            "subject",
            "start",
            "end",
            "location",
            "organizer",
            "attendees",
            "body",
            "isAllDay",
            "isCancelled",
            "webLink",
            "showAs",
        ])
        .prefer("outlook.body-content-type=\"text\"")
        .prefer("outlook.timezone=\"UTC\"")
        .prefer("IdType=\"ImmutableId\"");
    let event = session.get_json::<Event>(&req).await?.body;
    result.title = event.subject.clone();
    result.web_url = event.web_link.clone();
    for (key, time) in [("start", &event.start), ("end", &event.end)] {
        let time = time.as_ref().and_then(|t| t.date_time.as_deref());
        if let Some(d) = time.and_then(|t| DateTimes::parse(t, zone)) {
            result.dates.insert(key.into(), d);
        }
    }
    put(result, "location", event.location_name().map(str::to_owned));
    put(result, "organizer", event.organizer.as_ref().and_then(address));
    put(result, "show_as", event.show_as.clone());
    if event.is_all_day == Some(true) {
        put(result, "all_day", Some("true".into()));
    }
    if event.is_cancelled == Some(true) {
        put(result, "cancelled", Some("true".into()));
    }
    let attendees: Vec<String> = event.attendees.iter().filter_map(address).collect();
    put(result, "attendees", (!attendees.is_empty()).then(|| attendees.join(", ")));
    set_text(result, &body_text(event.body.as_ref()), options.max_chars);
    result.sources.push(SourceStatus::ok("event"));
    Ok(())
}
