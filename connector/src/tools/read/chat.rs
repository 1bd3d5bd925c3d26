//! `read_resource` of a Teams chat (its newest messages) and of one chat message.

use super::{ChatLine, LIMIT_MAX_CHARS, ReadOptions, ReadResult, put, set_text};
use crate::domain::uri::M365Uri;
use crate::extract::{self, FileKind, Limits, Selection};
use crate::graph::{
    GraphRequest,
    model::{ChatMessage, ODataPage},
};
use crate::tools::{
    mailbox::MailboxZone,
    pipeline::{Scope, ToolError},
    shaping::{DateTimes, SourceStatus},
};

/// One chat message, as text.
pub(super) async fn read_chat_message(
    call: &Scope<'_>,
    uri: &M365Uri,
    chat: &str,
    zone: &MailboxZone,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Chat.Read"]);
    let req = GraphRequest::get(uri.graph_path());
    let message = session.get_json::<ChatMessage>(&req).await?.body;
    let web_url = message.web_url.clone();
    let line = chat_line(chat, message, zone).await;
    result.title =
        Some(format!("Message from {}", line.from.as_deref().unwrap_or("unknown sender")));
    put(result, "from", line.from.clone());
    if let Some(sent) = line.sent.clone() {
        result.dates.insert("sent".into(), sent);
    }
    result.web_url = web_url;
    set_text(result, &line.text, options.max_chars);
    result.sources.push(SourceStatus::ok("chat message"));
    Ok(())
}

/// The `newest` messages of a chat, newest first.
pub(super) async fn read_chat(
    call: &Scope<'_>,
    uri: &M365Uri,
    chat: &str,
    newest: u32,
    zone: &MailboxZone,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Chat.Read"]);
    let req = GraphRequest::get(uri.graph_path()).top(newest);
    let page = session.get_json::<ODataPage<ChatMessage>>(&req).await?.body;
    let mut lines = Vec::new();
    for m in page.value {
        if m.message_type.as_deref().is_some_and(|t| t != "message") {
            continue;
        }
        lines.push(chat_line(chat, m, zone).await);
    }
    let text: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} ({}): {}",
                l.from.as_deref().unwrap_or("?"),
                l.sent.as_ref().map(|s| s.local.as_str()).unwrap_or("?"),
                l.text
            )
        })
        .collect();
    set_text(result, &text.join("\n"), options.max_chars);
    if page.next_link.is_some() {
        result.notes.push(format!("only the {newest} newest messages are shown"));
    }
    result.messages = lines;
    result.sources.push(SourceStatus::ok("chat messages"));
    Ok(())
}

async fn chat_line(chat: &str, m: ChatMessage, zone: &MailboxZone) -> ChatLine {
    let body = m.body.unwrap_or_default();
    let content = body.content.unwrap_or_default();
    let html = body.content_type.is_none_or(|t| t.eq_ignore_ascii_case("html"));
    let text = if html { html_to_text(content).await } else { content };
    ChatLine {
        uri: m
            .id
            .map(|id| M365Uri::chat_message(chat, id))
            .filter(M365Uri::is_valid)
            .map(|u| u.to_string()),
        from: m.from.and_then(|f| f.user?.display_name),
        sent: m.created_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
        text,
    }
}

async fn html_to_text(html: String) -> String {
    let limits = Limits { max_output_chars: LIMIT_MAX_CHARS as usize, ..Limits::default() };
    match extract::extract_blocking(html.into_bytes(), FileKind::Html, Selection::all(), limits)
        .await
    {
        Ok(e) => e.parts.into_iter().map(|p| p.text).collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    }
}
