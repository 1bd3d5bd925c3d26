//! `read_resource` of a mail (with its attachments listed) and of one attachment.

use base64::Engine as _;

use super::{AttachmentRef, ReadOptions, ReadResult, address, file::extract_into, put, set_text};
use crate::domain::uri::M365Uri;
use crate::graph::{
    GraphPath, GraphRequest,
    model::{Attachment, ItemBody, Message, ODataPage},
};
use crate::tools::{
    mailbox::MailboxZone,
    pipeline::{Scope, ToolError},
    shaping::{DateTimes, SourceStatus},
};

/// One mail: its fields, its body as text and its attachments (a failure to list them is a
/// source status, not a failed read).
pub(super) async fn read_mail(
    call: &Scope<'_>,
    message: &str,
    zone: &MailboxZone,
    max_chars: u32,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Mail.Read"]);
    let req = GraphRequest::get(GraphPath::fixed("/me/messages").segment(message))
        .select(&[
            "id",
            "subject",
            "from",
            "toRecipients",
            "ccRecipients",
            "receivedDateTime",
            "sentDateTime",
            "body",
            "hasAttachments",
            "webLink",
            "importance",
        ])
        .prefer("outlook.body-content-type=\"text\"")
        .prefer("IdType=\"ImmutableId\"");
    let mail = session.get_json::<Message>(&req).await?.body;
    result.title = mail.subject.clone();
    result.web_url = mail.web_link.clone();
    put(result, "from", mail.from.as_ref().and_then(address));
    for (key, recipients) in [("to", &mail.to_recipients), ("cc", &mail.cc_recipients)] {
        let list: Vec<String> = recipients.iter().filter_map(address).collect();
        put(result, key, (!list.is_empty()).then(|| list.join(", ")));
    }
    put(result, "importance", mail.importance.clone().filter(|i| i != "normal"));
    for (key, time) in [("received", &mail.received_date_time), ("sent", &mail.sent_date_time)] {
        if let Some(d) = time.as_deref().and_then(|t| DateTimes::parse(t, zone)) {
            result.dates.insert(key.into(), d);
        }
    }
    let text = body_text(mail.body.as_ref());
    set_text(result, &text, max_chars);
    result.sources.push(SourceStatus::ok("message"));
    if mail.has_attachments == Some(true) {
        let req = GraphRequest::get(
            GraphPath::fixed("/me/messages").segment(message).then("attachments"),
        )
        .select(&["id", "name", "contentType", "size", "isInline"])
        .prefer("IdType=\"ImmutableId\"");
        match session.get_json::<ODataPage<Attachment>>(&req).await {
            Ok(resp) => {
                for a in resp.body.value {
                    let Some(name) = a.name else { continue };
                    let uri = a.id.map(|id| M365Uri::Mail {
                        message: message.to_owned(),
                        attachment: Some(id),
                    });
                    result.attachments.push(AttachmentRef {
                        uri: uri.filter(M365Uri::is_valid).map(|u| u.to_string()),
                        name,
                        content_type: a.content_type,
                        size: a.size,
                        inline: a.is_inline.unwrap_or(false),
                    });
                }
                result.sources.push(SourceStatus::ok("attachments"));
            }
            Err(failure) => {
                if let Some(claims) = failure.claims_challenge() {
                    call.auth.challenge.request_claims(claims);
                }
                result.sources.push(SourceStatus::failed("attachments", failure.user_message()));
            }
        }
    }
    Ok(())
}

/// One attachment's content, as text.
pub(super) async fn read_attachment(
    call: &Scope<'_>,
    uri: &M365Uri,
    options: &ReadOptions,
    result: &mut ReadResult,
) -> Result<(), ToolError> {
    let session = call.session(&["Mail.Read"]);
    let req = GraphRequest::get(uri.graph_path()).prefer("IdType=\"ImmutableId\"");
    let body = session.get_json::<Attachment>(&req).await?.body;
    let name = body.name.unwrap_or_else(|| "attachment".into());
    result.title = Some(name.clone());
    let content_type = body.content_type;
    result.fields.extend(content_type.clone().map(|c| ("content_type".into(), c)));
    let bytes = body
        .content_bytes
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| {
            ToolError::Refused(format!(
                "The attachment {name:?} has no readable content (it may be an item or a link attachment)."
            ))
        })?;
    extract_into(result, bytes, &name, content_type.as_deref(), options).await?;
    result.sources.push(SourceStatus::ok("attachment"));
    Ok(())
}

/// A message's or event's body text, trimmed.
pub(super) fn body_text(body: Option<&ItemBody>) -> String {
    body.and_then(|b| b.content.as_deref()).unwrap_or_default().trim().to_owned()
}
