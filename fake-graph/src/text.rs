//! Plain text out of stored content, for search indexes, KQL properties, previews and hit
//! summaries. The store builds its indexes from these and the route handlers render from them, so
//! they live below both (the store must not reach into the handlers).

use fixtures::{BodyType, DriveItem, Message};

/// Text of an HTML body: tags become spaces, the common entities are decoded, whitespace is
/// collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A message body as text (HTML bodies through [`html_to_text`]).
pub fn plain_body(m: &Message) -> String {
    match m.body_type {
        BodyType::Text => m.body.clone(),
        BodyType::Html => html_to_text(&m.body),
    }
}

/// Text content of plain files (used by search); Office files are matched by name only.
pub fn file_text(item: &DriveItem) -> String {
    match (&item.bytes, item.mime_type.as_deref()) {
        (Some(b), Some(m)) if m.starts_with("text/") => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}
