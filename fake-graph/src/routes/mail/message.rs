//! How a message is written: the `Value` rendering (`message_json`) and the same JSON written
//! field by field into the response buffer for list pages (`write_message`, `MESSAGE_FIELDS` in
//! `Value`'s key order), with `Prefer` body type and immutable ids applied. A unit test checks
//! both give the same bytes for every fixture message.

use fixtures::{BodyType, Message};
use serde_json::{Map, Value, json};

use crate::{auth::perms, odata, routes::Ctx, text::plain_body, wire::JsonBuf};
/// How a message is rendered for this request.
pub struct Render {
    pub bodies: bool,
    pub immutable: bool,
    pub text: bool,
    pub html: bool,
}

impl Render {
    pub fn new(ctx: &Ctx<'_>) -> Self {
        Self {
            bodies: ctx.caller.has_any(perms::MESSAGE_BODIES)
                || ctx.caller.has_any(perms::MESSAGES_SHARED.any_of),
            immutable: ctx.prefs.immutable_id,
            text: ctx.prefs.body_text,
            html: ctx.prefs.body_html,
        }
    }

    pub fn applied(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.immutable {
            v.push("IdType=\"ImmutableId\"".to_owned());
        }
        if self.text {
            v.push("outlook.body-content-type=\"text\"".to_owned());
        }
        if self.html {
            v.push("outlook.body-content-type=\"html\"".to_owned());
        }
        v
    }
}

fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>\r\n");
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>{escaped}</body></html>"
    )
}

/// Graph's `bodyPreview`: the first 255 characters of the text, whitespace collapsed.
pub fn preview(m: &Message) -> String {
    plain_body(m).split_whitespace().collect::<Vec<_>>().join(" ").chars().take(255).collect()
}

fn addr(a: &fixtures::EmailAddress) -> Value {
    json!({"emailAddress": {"name": a.name, "address": a.address}})
}

pub fn message_id(m: &Message, immutable: bool) -> &str {
    if immutable { &m.immutable_id } else { &m.id }
}

/// A message resource with only the `$select`ed properties (all when `select` is empty; `id` and
/// annotations always). Unselected properties are never built: on the list hot path this skips
/// most of the per-message allocations and date formatting (the result equals building the full
/// object and then trimming it with [`odata::apply_select`]).
pub fn message_json(m: &Message, r: &Render, select: &[String]) -> Value {
    let wants = |k: &str| {
        select.is_empty()
            || k == "id"
            || k.starts_with('@')
            || select.iter().any(|s| s.eq_ignore_ascii_case(k))
    };
    let id = message_id(m, r.immutable);
    let mut v = Map::new();
    let mut put = |k: &str, f: &dyn Fn() -> Value| {
        if wants(k) {
            v.insert(k.to_owned(), f());
        }
    };
    put("@odata.etag", &|| {
        json!(format!(
            "W/\"CQAAABYAAAD{}\"",
            m.immutable_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>()
        ))
    });
    put("id", &|| json!(id));
    put("createdDateTime", &|| json!(odata::dt(m.received)));
    put("lastModifiedDateTime", &|| json!(odata::dt(m.received)));
    put("changeKey", &|| json!("CQAAABYAAAD"));
    put("categories", &|| json!(m.categories));
    put("receivedDateTime", &|| json!(odata::dt(m.received)));
    put("sentDateTime", &|| json!(odata::dt(m.sent)));
    put("hasAttachments", &|| json!(!m.attachments.is_empty()));
    put("internetMessageId", &|| json!(m.internet_message_id));
    put("subject", &|| json!(m.subject));
    put("importance", &|| json!(m.importance));
    put("parentFolderId", &|| json!(m.folder_id));
    put("conversationId", &|| json!(m.conversation_id));
    put("isDeliveryReceiptRequested", &|| json!(false));
    put("isReadReceiptRequested", &|| json!(false));
    put("isRead", &|| json!(m.is_read));
    put("isDraft", &|| json!(false));
    put("webLink", &|| {
        json!(format!(
            "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        ))
    });
    put("inferenceClassification", &|| json!("focused"));
    put("sender", &|| addr(&m.from));
    put("from", &|| addr(&m.from));
    put("toRecipients", &|| json!(m.to.iter().map(addr).collect::<Vec<_>>()));
    put("ccRecipients", &|| json!(m.cc.iter().map(addr).collect::<Vec<_>>()));
    put("bccRecipients", &|| json!([]));
    put("replyTo", &|| json!([]));
    put("flag", &|| json!({"flagStatus": m.flag}));
    if r.bodies && wants("bodyPreview") {
        v.insert("bodyPreview".to_owned(), json!(preview(m)));
    }
    if r.bodies && wants("body") {
        let (kind, content) = match (m.body_type, r.text) {
            (_, true) => ("text", plain_body(m)),
            (BodyType::Html, false) => ("html", m.body.clone()),
            (BodyType::Text, false) => ("html", text_to_html(&m.body)),
        };
        v.insert("body".to_owned(), json!({"contentType": kind, "content": content}));
    }
    Value::Object(v)
}

/// Writes one message of a list page: the same bytes as `serde_json::to_vec(&message_json(..))`
/// (the unit tests compare them) without building the `Value` tree.
pub(super) fn write_message(
    b: &mut JsonBuf,
    m: &Message,
    r: &Render,
    wanted: &[bool; MESSAGE_FIELDS.len()],
) {
    b.open_obj();
    for ((key, write), want) in MESSAGE_FIELDS.iter().zip(wanted) {
        if *want && (r.bodies || !matches!(*key, "body" | "bodyPreview")) {
            b.key(key);
            write(b, m, r);
        }
    }
    b.close_obj();
}

/// Which of [`MESSAGE_FIELDS`] a `$select` keeps (all when empty; `id` and annotations always),
/// worked out once per page rather than per message.
pub(super) fn wanted_fields(select: &[String]) -> [bool; MESSAGE_FIELDS.len()] {
    let mut wanted = [true; MESSAGE_FIELDS.len()];
    if !select.is_empty() {
        for ((key, _), want) in MESSAGE_FIELDS.iter().zip(wanted.iter_mut()) {
            *want = *key == "id"
                || key.starts_with('@')
                || select.iter().any(|s| s.eq_ignore_ascii_case(key));
        }
    }
    wanted
}

type FieldWriter = fn(&mut JsonBuf, &Message, &Render);

/// The message properties of [`message_json`], in the order a `Value` object serialises them
/// (byte order of the keys; a unit test checks it), each with its writer.
const MESSAGE_FIELDS: [(&str, FieldWriter); 29] = [
    ("@odata.etag", |b, m, _| {
        b.raw("\"W/\\\"CQAAABYAAAD");
        for c in m.immutable_id.bytes().filter(u8::is_ascii_alphanumeric).take(8) {
            b.out.push(c);
        }
        b.raw("\\\"\"");
    }),
    ("bccRecipients", |b, _, _| b.raw("[]")),
    ("body", |b, m, r| {
        b.open_obj();
        b.key("content");
        match (m.body_type, r.text) {
            (_, true) => b.string(&plain_body(m)),
            (BodyType::Html, false) => b.string(&m.body),
            (BodyType::Text, false) => b.string(&text_to_html(&m.body)),
        }
        b.key("contentType");
        b.string(if r.text { "text" } else { "html" });
        b.close_obj();
    }),
    ("bodyPreview", |b, m, _| b.string(&preview(m))),
    ("categories", |b, m, _| b.value(&m.categories)),
    ("ccRecipients", |b, m, _| write_addrs(b, &m.cc)),
    ("changeKey", |b, _, _| b.raw("\"CQAAABYAAAD\"")),
    ("conversationId", |b, m, _| b.string(&m.conversation_id)),
    ("createdDateTime", |b, m, _| b.date(m.received)),
    ("flag", |b, m, _| {
        b.open_obj();
        b.key("flagStatus");
        b.string(&m.flag);
        b.close_obj();
    }),
    ("from", |b, m, _| write_addr(b, &m.from)),
    ("hasAttachments", |b, m, _| b.bool(!m.attachments.is_empty())),
    ("id", |b, m, r| b.string(message_id(m, r.immutable))),
    ("importance", |b, m, _| b.string(&m.importance)),
    ("inferenceClassification", |b, _, _| b.raw("\"focused\"")),
    ("internetMessageId", |b, m, _| b.string(&m.internet_message_id)),
    ("isDeliveryReceiptRequested", |b, _, _| b.bool(false)),
    ("isDraft", |b, _, _| b.bool(false)),
    ("isRead", |b, m, _| b.bool(m.is_read)),
    ("isReadReceiptRequested", |b, _, _| b.bool(false)),
    ("lastModifiedDateTime", |b, m, _| b.date(m.received)),
    ("parentFolderId", |b, m, _| b.string(&m.folder_id)),
    ("receivedDateTime", |b, m, _| b.date(m.received)),
    ("replyTo", |b, _, _| b.raw("[]")),
    ("sender", |b, m, _| write_addr(b, &m.from)),
    ("sentDateTime", |b, m, _| b.date(m.sent)),
    ("subject", |b, m, _| b.string(&m.subject)),
    ("toRecipients", |b, m, _| write_addrs(b, &m.to)),
    ("webLink", |b, m, r| {
        // Percent-encoded ids hold only ASCII letters, digits and `%XX`: nothing to escape.
        b.raw("\"https://outlook.office365.com/owa/?ItemID=");
        for part in percent_encoding::utf8_percent_encode(
            message_id(m, r.immutable),
            percent_encoding::NON_ALPHANUMERIC,
        ) {
            b.raw(part);
        }
        b.raw("&exvsurl=1&viewmodel=ReadMessageItem\"");
    }),
];

fn write_addr(b: &mut JsonBuf, a: &fixtures::EmailAddress) {
    b.open_obj();
    b.key("emailAddress");
    b.open_obj();
    b.key("address");
    b.string(&a.address);
    b.key("name");
    b.string(&a.name);
    b.close_obj();
    b.close_obj();
}

fn write_addrs(b: &mut JsonBuf, list: &[fixtures::EmailAddress]) {
    b.open_arr();
    for a in list {
        b.elem();
        write_addr(b, a);
    }
    b.close_arr();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_fields_are_in_value_key_order() {
        let keys: Vec<&str> = MESSAGE_FIELDS.iter().map(|(k, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn written_messages_equal_the_value_tree() {
        let world = fixtures::standard_world();
        let selects: Vec<Vec<String>> = [
            &[][..],
            &["id", "subject", "from", "receivedDateTime"][..],
            &["BODY", "bodyPreview", "webLink", "toRecipients", "ccRecipients"][..],
            &["categories", "flag", "isRead", "sender", "hasAttachments", "nonsense"][..],
        ]
        .iter()
        .map(|s| s.iter().map(|x| (*x).to_owned()).collect())
        .collect();
        let mut checked = 0;
        for m in world.tenants.iter().flat_map(|t| &t.content.mailboxes).flat_map(|b| &b.messages) {
            for bits in 0..8u8 {
                let r = Render {
                    bodies: bits & 1 != 0,
                    immutable: bits & 2 != 0,
                    text: bits & 4 != 0,
                    html: false,
                };
                for select in &selects {
                    let mut b = JsonBuf::with_capacity(256);
                    write_message(&mut b, m, &r, &wanted_fields(select));
                    let expected = serde_json::to_vec(&message_json(m, &r, select)).unwrap();
                    assert_eq!(
                        String::from_utf8(b.out).unwrap(),
                        String::from_utf8(expected).unwrap(),
                        "message {} with {select:?}",
                        m.id
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "the standard world has messages to compare ({checked})");
    }
}
