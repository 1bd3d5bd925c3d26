//! The `/v1.0` API. Paths are split into percent-decoded segments and matched on their lower-case
//! form (Graph's path segments are case-insensitive; ids are not), so ids containing `:`, `@`,
//! `,`, `!`, `=` or an encoded `/` work as they do against Graph.

pub mod calendar;
pub mod files;
pub mod mail;
pub mod meeting_times;
pub mod search;
pub mod teams;
pub mod users;

use std::{borrow::Cow, sync::Arc};

use axum::{
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    Shared, auth::Caller, error::GraphError, odata::Query, store::Store, trimming::Viewer,
};

/// Everything a handler needs about one request.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub store: &'a Store,
    pub caller: &'a Caller,
    pub method: &'a Method,
    /// The request path (raw).
    pub path: &'a str,
    pub query: Query,
    pub headers: &'a HeaderMap,
    pub prefs: Prefs,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            oid: self.caller.oid,
            groups: self.store.groups_of(self.caller.tid, self.caller.oid),
        }
    }

    pub fn tenant(&self) -> Result<(&fixtures::Tenant, &crate::store::TenantIndex), GraphError> {
        self.store.tenant(self.caller.tid).ok_or_else(GraphError::item_not_found)
    }

    pub fn base(&self) -> &str {
        self.shared.base()
    }
}

/// `Prefer` header preferences Graph honours here.
#[derive(Debug, Default, Clone)]
pub struct Prefs {
    pub immutable_id: bool,
    pub body_text: bool,
    pub body_html: bool,
    pub timezone: Option<String>,
}

impl Prefs {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut p = Prefs::default();
        for v in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
            for part in v.split(',') {
                let Some((k, val)) = part.trim().split_once('=') else { continue };
                let val = val.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "idtype" => p.immutable_id = val.eq_ignore_ascii_case("ImmutableId"),
                    "outlook.body-content-type" => {
                        p.body_text = val.eq_ignore_ascii_case("text");
                        p.body_html = val.eq_ignore_ascii_case("html");
                    }
                    "outlook.timezone" => p.timezone = Some(val.to_owned()),
                    _ => {}
                }
            }
        }
        p
    }
}

/// A JSON 200 response.
pub fn json(value: Value) -> Response {
    let mut r = (StatusCode::OK, axum::Json(value)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"),
    );
    r
}

/// Adds `Preference-Applied`.
pub fn applied(mut r: Response, prefs: &[String]) -> Response {
    if !prefs.is_empty()
        && let Ok(v) = HeaderValue::from_str(&prefs.join(", "))
    {
        r.headers_mut().insert("preference-applied", v);
    }
    r
}

/// A request path split into percent-decoded segments, with the lower-case forms the routes
/// match on. Parsed once per request and shared by the concurrency check and the dispatcher;
/// segments that need no decoding or case folding (the usual case) borrow from the path.
pub struct Segments<'a> {
    raw: Vec<Cow<'a, str>>,
    lower: Vec<Cow<'a, str>>,
}

impl<'a> Segments<'a> {
    pub fn parse(path: &'a str) -> Self {
        let raw: Vec<Cow<'a, str>> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
            .collect();
        let lower = raw
            .iter()
            .map(|s| {
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(s.to_ascii_lowercase())
                } else {
                    s.clone()
                }
            })
            .collect();
        Self { raw, lower }
    }

    /// The lower-case segments, for matching against route patterns.
    fn lower(&self) -> Vec<&str> {
        self.lower.iter().map(|s| s.as_ref()).collect()
    }

    /// Segment `i` as received (decoded, case kept): ids are case-sensitive.
    fn raw(&self, i: usize) -> &str {
        self.raw.get(i).map(|s| s.as_ref()).unwrap_or("")
    }
}

/// The mailbox owner an Outlook request addresses (for the concurrency limit), if any.
pub fn outlook_mailbox(segs: &Segments<'_>, caller: &Caller, store: &Store) -> Option<Uuid> {
    let outlook = |s: &str| {
        matches!(
            s,
            "messages"
                | "mailfolders"
                | "events"
                | "calendarview"
                | "calendar"
                | "mailboxsettings"
                | "findmeetingtimes"
        )
    };
    match segs.lower().as_slice() {
        ["v1.0", "me", s, ..] if outlook(s) => Some(caller.oid),
        ["v1.0", "users", _, s, ..] if outlook(s) => {
            store.user(caller.tid, segs.raw(2)).map(|u| u.oid)
        }
        _ => None,
    }
}

/// Routes one authenticated, non-mutating request.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    shared: &Arc<Shared>,
    caller: &Caller,
    method: &Method,
    uri: &Uri,
    segs: &Segments<'_>,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Response {
    let store = shared.read();
    let ctx = Ctx {
        shared,
        store: &store,
        caller,
        method,
        path: uri.path(),
        query: Query::parse(uri.query()),
        headers,
        prefs: Prefs::parse(headers),
        body,
        now,
    };
    let l = segs.lower();
    let s = |i: usize| segs.raw(i);
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let mut me_buf = Uuid::encode_buffer();
    let me: &str = caller.oid.hyphenated().encode_lower(&mut me_buf);
    let result = match l.as_slice() {
        ["v1.0", "me"] if get => users::get_user(&ctx, me, true),
        ["v1.0", "users"] if get => users::list_users(&ctx),
        ["v1.0", "users", _] if get => users::get_user(&ctx, s(2), false),
        ["v1.0", "me", "mailboxsettings"] if get => users::mailbox_settings(&ctx, me),
        ["v1.0", "users", _, "mailboxsettings"] if get => users::mailbox_settings(&ctx, s(2)),

        ["v1.0", "me", "messages"] if get => mail::list(&ctx, me, None),
        ["v1.0", "users", _, "messages"] if get => mail::list(&ctx, s(2), None),
        ["v1.0", "me", "messages", _] if get => mail::get(&ctx, me, s(3)),
        ["v1.0", "users", _, "messages", _] if get => mail::get(&ctx, s(2), s(4)),
        ["v1.0", "me", "messages", _, "attachments"] if get => {
            mail::attachments(&ctx, me, s(3), None)
        }
        ["v1.0", "me", "messages", _, "attachments", _] if get => {
            mail::attachments(&ctx, me, s(3), Some(s(5)))
        }
        ["v1.0", "users", _, "messages", _, "attachments"] if get => {
            mail::attachments(&ctx, s(2), s(4), None)
        }
        ["v1.0", "me", "mailfolders"] if get => mail::folders(&ctx, me),
        ["v1.0", "users", _, "mailfolders"] if get => mail::folders(&ctx, s(2)),
        ["v1.0", "me", "mailfolders", _] if get => mail::folder(&ctx, me, s(3)),
        ["v1.0", "me", "mailfolders", _, "messages"] if get => mail::list(&ctx, me, Some(s(3))),
        ["v1.0", "users", _, "mailfolders", _, "messages"] if get => {
            mail::list(&ctx, s(2), Some(s(4)))
        }

        ["v1.0", "me", "calendarview"] if get => calendar::calendar_view(&ctx, me),
        ["v1.0", "me", "calendar", "calendarview"] if get => calendar::calendar_view(&ctx, me),
        ["v1.0", "users", _, "calendarview"] if get => calendar::calendar_view(&ctx, s(2)),
        ["v1.0", "me", "events"] if get => calendar::list_events(&ctx, me),
        ["v1.0", "users", _, "events"] if get => calendar::list_events(&ctx, s(2)),
        ["v1.0", "me", "events", _] if get => calendar::get_event(&ctx, me, s(3)),
        ["v1.0", "me", "calendar", "getschedule"] if post => calendar::get_schedule(&ctx),
        ["v1.0", "users", _, "calendar", "getschedule"] if post => calendar::get_schedule(&ctx),
        ["v1.0", "me", "findmeetingtimes"] if post => meeting_times::find_meeting_times(&ctx),

        ["v1.0", "search", "query"] if post => search::query(&ctx),

        ["v1.0", "me", "drive"] if get => files::my_drive(&ctx),
        ["v1.0", "me", "drive", "root"] if get => files::my_drive_root(&ctx, None),
        ["v1.0", "me", "drive", "root", "children"] if get => {
            files::my_drive_root(&ctx, Some("children"))
        }
        ["v1.0", "me", "drive", "items", _] if get => files::my_drive_item(&ctx, s(4), None),
        ["v1.0", "me", "drive", "items", _, "children"] if get => {
            files::my_drive_item(&ctx, s(4), Some("children"))
        }
        ["v1.0", "me", "drive", "items", _, "content"] if get => {
            files::my_drive_item(&ctx, s(4), Some("content"))
        }
        ["v1.0", "drives", _] if get => files::get_drive(&ctx, s(2)),
        ["v1.0", "drives", _, "root"] if get => files::root(&ctx, s(2), None),
        ["v1.0", "drives", _, "root", "children"] if get => {
            files::root(&ctx, s(2), Some("children"))
        }
        ["v1.0", "drives", _, "root", q] if get && q.starts_with("search(") => {
            files::search(&ctx, s(2), s(4))
        }
        ["v1.0", "me", "drive", "root", q] if get && q.starts_with("search(") => {
            files::my_drive_search(&ctx, s(4))
        }
        ["v1.0", "drives", _, "items", _] if get => files::item(&ctx, s(2), s(4), None),
        ["v1.0", "drives", _, "items", _, "children"] if get => {
            files::item(&ctx, s(2), s(4), Some("children"))
        }
        ["v1.0", "drives", _, "items", _, "content"] if get => {
            files::item(&ctx, s(2), s(4), Some("content"))
        }
        ["v1.0", "sites"] if get => files::search_sites(&ctx),
        ["v1.0", "sites", _] if get => files::get_site(&ctx, s(2)),
        ["v1.0", "sites", _, "drives"] if get => files::site_drives(&ctx, s(2)),
        ["v1.0", "sites", _, "drive"] if get => files::site_default_drive(&ctx, s(2)),
        ["v1.0", "shares", _, "driveitem"] if get => files::share(&ctx, s(2)),

        ["v1.0", "me", "chats"] if get => teams::my_chats(&ctx),
        ["v1.0", "chats", _] if get => teams::get_chat(&ctx, s(2)),
        ["v1.0", "chats", _, "messages"] if get => teams::chat_messages(&ctx, s(2)),
        ["v1.0", "chats", _, "messages", _] if get => teams::chat_message(&ctx, s(2), s(4)),
        ["v1.0", "me", "joinedteams"] if get => teams::joined_teams(&ctx),
        ["v1.0", "teams", _, "channels"] if get => teams::channels(&ctx, s(2)),
        ["v1.0", "teams", _, "channels", _, "messages"] if get => {
            teams::channel_messages(&ctx, s(2), s(4), None)
        }
        ["v1.0", "teams", _, "channels", _, "messages", _] if get => {
            teams::channel_message(&ctx, s(2), s(4), s(6))
        }
        ["v1.0", "teams", _, "channels", _, "messages", _, "replies"] if get => {
            teams::channel_messages(&ctx, s(2), s(4), Some(s(6)))
        }

        ["v1.0", ..] => Err(GraphError::no_route(uri.path())),
        _ => Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "Resource could not be discovered.",
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
