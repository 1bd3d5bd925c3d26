//! Outlook hits: messages (newest `sent` first, by the precomputed rank) and events (latest
//! start first), narrowed by each mailbox's and calendar's posting index.

use fixtures::Event;
use serde_json::json;

use super::Hit;
use crate::{
    error::GraphError,
    kql::{Expr, KqlDoc, PropValue, Query, SearchText},
    routes::{Ctx, mail},
    text,
};

pub(super) fn message_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let Some(mbi) = idx.mailboxes.get(&ctx.caller.oid) else { return Ok((0, Vec::new())) };
    let mb = &tenant.content.mailboxes[mbi.pos];
    let query = Query::new(expr);
    let mut positions =
        mbi.postings.matching(mb.messages.len(), &query, &mail::message_in_text, |i| {
            query
                .matches(&mail::MsgDoc { m: &mb.messages[i as usize], text: &mbi.text[i as usize] })
        });
    // Newest `sent` first, equal times in position order (the scan's stable sort), by rank.
    positions.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
    let immutable = ctx.prefs.immutable_id;
    let total = positions.len();
    Ok((total, positions
        .into_iter()
        .skip(from)
        .take(size)
        .map(|i| {
            let m = &mb.messages[i as usize];
            let addr = |a: &fixtures::EmailAddress| json!({"emailAddress": {"name": a.name, "address": a.address}});
            Hit {
                hit_id: mail::message_id(m, immutable).to_owned(),
                summary_text: format!("{} {}", m.subject, text::plain_body(m)),
                resource: json!({
                    "@odata.type": "#microsoft.graph.message",
                    "createdDateTime": crate::odata::dt(m.received),
                    "lastModifiedDateTime": crate::odata::dt(m.received),
                    "receivedDateTime": crate::odata::dt(m.received),
                    "sentDateTime": crate::odata::dt(m.sent),
                    "hasAttachments": !m.attachments.is_empty(),
                    "subject": m.subject,
                    "bodyPreview": mail::preview(m),
                    "importance": m.importance,
                    "replyTo": [],
                    "sender": addr(&m.from),
                    "from": addr(&m.from),
                }),
            }
        })
        .collect()))
}

/// Event properties inside the indexed event text.
pub(super) fn event_in_text(name: &str) -> bool {
    matches!(name, "subject" | "title" | "organizer" | "from" | "location")
}

pub(super) struct EventDoc<'a> {
    pub(super) e: &'a Event,
    pub(super) text: &'a SearchText,
}

impl KqlDoc for EventDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }
    fn prop(&self, name: &str) -> PropValue {
        match name {
            "subject" | "title" => PropValue::Text(SearchText::new(&self.e.subject)),
            "organizer" | "from" => PropValue::Text(SearchText::new(&format!(
                "{} {}",
                self.e.organizer.name, self.e.organizer.address
            ))),
            "attendees" | "participants" | "to" => PropValue::Text(SearchText::new(
                &self
                    .e
                    .attendees
                    .iter()
                    .map(|a| format!("{} {}", a.name, a.address))
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
            "location" => {
                PropValue::Text(SearchText::new(self.e.location.as_deref().unwrap_or("")))
            }
            "start" => PropValue::Date(self.e.start),
            "end" => PropValue::Date(self.e.end),
            _ => PropValue::Unknown,
        }
    }
}

fn pascal(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The total and the `[from, from + size)` page of event hits, latest start first.
pub(super) fn event_hits(
    ctx: &Ctx<'_>,
    expr: &Expr,
    from: usize,
    size: usize,
) -> Result<(usize, Vec<Hit>), GraphError> {
    let (tenant, idx) = ctx.tenant()?;
    let Some(pos) = idx.calendars.get(&ctx.caller.oid) else { return Ok((0, Vec::new())) };
    let all = &tenant.content.calendars[*pos].events;
    let search = &idx.calendar_search[*pos];
    let query = Query::new(expr);
    let mut events: Vec<&Event> = search
        .postings
        .matching(all.len(), &query, &event_in_text, |i| {
            let e = &all[i as usize];
            query.matches(&EventDoc { e, text: &search.text[i as usize] })
        })
        .into_iter()
        .map(|i| &all[i as usize])
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.start));
    let total = events.len();
    let page = events
        .into_iter()
        .skip(from)
        .take(size)
        .map(|e| Hit {
            hit_id: e.id.clone(),
            summary_text: format!("{} {}", e.subject, e.body_preview),
            resource: json!({
                "@odata.type": "#microsoft.graph.event",
                "end": {"dateTime": crate::odata::dt(e.end), "timeZone": "UTC"},
                "hasAttachments": false,
                "iCalUId": format!("040000008200E00074C5B7101A82E008{}", e.id.len()),
                "isAllDay": e.is_all_day,
                "sensitivity": pascal(&e.sensitivity),
                "start": {"dateTime": crate::odata::dt(e.start), "timeZone": "UTC"},
                "subject": e.subject,
                "type": match e.event_type.as_str() { "singleInstance" => "Single".to_owned(), other => pascal(other) },
            }),
        })
        .collect();
    Ok((total, page))
}
