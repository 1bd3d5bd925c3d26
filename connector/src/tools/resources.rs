//! MCP resources: `resources/templates/list` and `resources/read` for `m365://` URIs.
//!
//! # Design
//! The same reads as the `read_resource` tool ([`read_target`]), exposed through MCP's
//! resource API (mcp.md §4.4): one template per [`ResourceKind`], and `resources/read` of an
//! `m365://` URI. Only `m365://` URIs are accepted here (no web links: a resource URI is an
//! identifier, not something pasted), parsed before any network work. Each read is admitted
//! by the tenant policy as `read_resource` and audited like the tool.
//!
//! Errors follow the resource rules (mcp.md §1.11): a malformed URI, or an item Graph does
//! not find, is `resource_not_found` (`-32602`), never empty contents; other Graph failures
//! are protocol errors carrying the user-safe message; a claims challenge also arms the
//! request's challenge slot so the middleware answers HTTP 401. No resources are *listed*:
//! the connector has no catalogue, only what searches return.

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{ReadResourceResult, ResourceContents, ResourceTemplate},
    service::RequestContext,
};
use serde_json::json;

use super::{
    Authenticated, ToolContext,
    pipeline::{ArgumentShape, Checks, Reply, Settled, ToolArgs},
    read::{READ_RESOURCE, ReadOptions, read_target, render},
};
use crate::audit::Outcome;
use crate::domain::uri::{LinkTarget, M365Uri, ResourceKind};

/// A `resources/read` of a parsed `m365://` URI: nothing left to validate.
struct ResourceReadArgs(M365Uri);

impl ToolArgs for ResourceReadArgs {
    type Valid = M365Uri;
    fn validate(self, _: &Checks) -> Result<M365Uri, McpError> {
        Ok(self.0)
    }
}

/// The caller and challenge slot from a `resources/read` context (the same HTTP request
/// parts the tools' [`Authenticated`] extractor reads).
pub fn authenticated(context: &RequestContext<RoleServer>) -> Result<Authenticated, McpError> {
    let parts = context.extensions.get::<http::request::Parts>();
    let caller = parts.and_then(|p| p.extensions.get::<crate::domain::Caller>().cloned());
    let challenge = parts
        .and_then(|p| p.extensions.get::<crate::auth::ChallengeSlot>().cloned())
        .unwrap_or_default();
    caller.map(|caller| Authenticated { caller, challenge }).ok_or_else(|| {
        McpError::internal_error("the request carries no authenticated caller", None)
    })
}

/// One template per kind of `m365://` URI.
pub fn templates() -> Vec<ResourceTemplate> {
    ResourceKind::ALL
        .iter()
        .map(|kind| {
            ResourceTemplate::new(kind.template(), kind.name())
                .with_description(describe(*kind))
                .with_mime_type("text/plain")
        })
        .collect()
}

fn describe(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Mail => {
            "A mail message of the signed-in user, as text, with its attachments listed"
        }
        ResourceKind::MailAttachment => "A file attached to a mail message, as text",
        ResourceKind::Event => "An event of the signed-in user's calendar",
        ResourceKind::DriveItem => "A OneDrive or SharePoint file as text, or a folder listing",
        ResourceKind::ListItem => "A SharePoint list item's fields",
        ResourceKind::Chat => "The newest messages of a Teams chat",
        ResourceKind::ChatMessage => "One Teams chat message",
    }
}

/// `resources/read`: reads `uri` as the caller and returns its text rendering.
pub async fn read(
    ctx: &ToolContext,
    auth: &Authenticated,
    uri: &str,
) -> Result<ReadResourceResult, McpError> {
    let parsed = M365Uri::parse(uri).map_err(|e| {
        McpError::resource_not_found(
            format!("not a readable m365:// URI: {e}"),
            Some(json!({"uri": truncate(uri)})),
        )
    })?;
    let mut shape = ArgumentShape::default();
    shape.0.insert("uri".to_owned(), parsed.kind().name());
    let options =
        ReadOptions { max_chars: super::read::DEFAULT_MAX_CHARS, ..ReadOptions::default() };
    let outcome = ctx
        .execute(auth, &READ_RESOURCE, shape, ResourceReadArgs(parsed), |call, uri| async move {
            read_target(&call, LinkTarget::Uri(uri), &options).await
        })
        .await;
    match outcome {
        Ok(result) => Ok(ReadResourceResult::new(vec![
            ResourceContents::text(render(&result), result.uri.clone())
                .with_mime_type("text/plain"),
        ])),
        Err(Settled { reply: Reply::Protocol(e), .. }) => Err(e),
        Err(Settled { reply: Reply::Message(message), outcome, code, .. }) => Err(match outcome {
            Outcome::NotFound => {
                McpError::resource_not_found(message, Some(json!({"uri": truncate(uri)})))
            }
            Outcome::PolicyRefused | Outcome::Refused => McpError::invalid_request(message, None),
            _ => McpError::internal_error(message, Some(json!({"code": code}))),
        }),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).flat_map(char::escape_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_template() {
        let t = templates();
        assert_eq!(t.len(), ResourceKind::ALL.len());
        assert!(t.iter().any(|t| t.uri_template == "m365://drive/{driveId}/item/{itemId}"));
    }
}
