//! What the caller's granted Graph permissions allow: the tools `tools/list` offers, the
//! session (and mailbox time zone) each call opens, and the message a call gets when a
//! permission is missing.
//!
//! # Design
//! Entra tells which delegated permissions a tenant granted only through token exchanges: an
//! On-Behalf-Of request for scopes that are all granted succeeds (its `scope` lists them), and
//! one asking for any scope that is not granted fails with `consent_required` (AADSTS65001).
//! So [`granted_tools`] first asks for the union of every tool's scopes (the one token every
//! call shares, see [`crate::obo`]); when that is refused for consent, it asks for each tool's
//! own scope set ([`permissions::TOOL_NEEDS`]). Those are exactly the sets the calls then use,
//! so the tokens it obtains are the calls' cache hits. Any other failure (Conditional Access, Entra
//! unreachable) says nothing about permissions: the list falls back to the policy alone and the
//! calls report the error themselves.

use std::collections::BTreeSet;

use futures::future::join_all;

use super::{
    ToolContext,
    mailbox::MailboxZone,
    permissions,
    pipeline::{CallSession, Scope, ToolError},
    session::SessionError,
};
use crate::{
    domain::{Caller, ScopeSet},
    obo::OboError,
};

/// The tools `caller`'s granted permissions allow, among `tools`; `None` when the grants could
/// not be learned (a failure other than missing consent).
pub async fn granted_tools(
    ctx: &ToolContext,
    caller: &Caller,
    tools: &[&str],
) -> Option<BTreeSet<String>> {
    let sets: BTreeSet<Vec<&str>> = tools
        .iter()
        .flat_map(|t| permissions::tool_needs(t).iter())
        .map(|set| {
            let mut v = set.to_vec();
            v.sort_unstable();
            v
        })
        .collect();
    let mut union: ScopeSet = sets.iter().flatten().copied().collect();
    if union.is_empty() {
        return Some(BTreeSet::new());
    }
    // Ask for the provider's own union when it covers these tools: it is the token the calls
    // share (a cache hit after the first), and a refusal of it is remembered, where a refusal
    // of a smaller set would be asked again on every list.
    if let Some(all) = ctx.provider.union().filter(|all| union.iter().all(|s| all.contains(s))) {
        union = all.clone();
    }
    let granted = match ctx.provider.graph_token(caller, &union, None).await {
        Ok(token) => token.scopes,
        Err(OboError::ConsentRequired { .. }) => {
            let outcomes = join_all(sets.iter().map(|set| {
                let scopes: ScopeSet = set.iter().copied().collect();
                async move { ctx.provider.graph_token(caller, &scopes, None).await }
            }))
            .await;
            let mut granted = Vec::new();
            for outcome in outcomes {
                match outcome {
                    Ok(token) => granted.extend(token.scopes.iter().map(str::to_owned)),
                    // Not granted: its scopes stay out unless another set brings them.
                    Err(OboError::ConsentRequired { .. }) => {}
                    Err(_) => return None,
                }
            }
            granted.into_iter().collect()
        }
        Err(_) => return None,
    };
    Some(
        tools
            .iter()
            .filter(|t| permissions::tool_granted(t, &granted))
            .map(|t| (*t).to_owned())
            .collect(),
    )
}

/// Opens the call's Graph session with `scopes` and reads the mailbox time zone
/// ([`super::pipeline::Scope::open`]). The session's token is obtained first (a cache hit
/// after the first call), so a token failure ends the call before any Graph request. The time
/// zone never fails the call ([`super::mailbox::mailbox_zone`]).
pub async fn open(
    call: &Scope<'_>,
    scopes: &[&str],
) -> Result<(CallSession, MailboxZone), ToolError> {
    use super::mailbox;
    let ctx = call.ctx;
    let session = call.session(scopes);
    let key = crate::graph::MailboxKey::from(call.caller());
    let cached = ctx.settings.get(key, ctx.clock.now()).await;
    // Both tokens are usually the one union token (one exchange, shared by single flight);
    // in a partly consented tenant they are two exchanges (the tool's scopes, and
    // MailboxSettings.Read for the zone): run them side by side rather than one after the
    // other. The settings request still waits for the tool's token, so a refused call sends
    // nothing to Graph.
    let zone_session = cached.is_none().then(|| mailbox::zone_session(call));
    let zone_token = async {
        match &zone_session {
            Some(s) => Some(ctx.provider.graph_token(call.caller(), s.scopes(), None).await),
            None => None,
        }
    };
    let (tool_token, zone_token) =
        futures::join!(ctx.provider.graph_token(call.caller(), session.scopes(), None), zone_token);
    if let Err(error) = tool_token {
        return Err(ToolError::Token { error, scopes: session.scopes().clone() });
    }
    let zone = match (cached, zone_session, zone_token) {
        (Some(hit), _, _) => hit.zone.clone(),
        (None, _, Some(Err(error))) => mailbox::unreadable(&SessionError::Token(error).code()),
        (None, Some(zone_session), _) => mailbox::read_zone(ctx, &zone_session).await,
        (None, None, _) => mailbox::mailbox_zone(call).await,
    };
    Ok((session, zone))
}

/// The scopes of `scopes` that are not granted, found one exchange per scope (a failure path
/// only; granted ones are cache hits afterwards). When none can be singled out, all of them.
pub async fn missing_scopes(ctx: &ToolContext, caller: &Caller, scopes: &ScopeSet) -> Vec<String> {
    let outcomes = join_all(scopes.iter().map(|s| async move {
        let one = ScopeSet::from_iter([s]);
        (s, ctx.provider.graph_token(caller, &one, None).await)
    }))
    .await;
    let missing: Vec<String> = outcomes
        .into_iter()
        .filter(|(_, r)| matches!(r, Err(OboError::ConsentRequired { .. })))
        .map(|(s, _)| s.to_owned())
        .collect();
    if missing.is_empty() { scopes.iter().map(str::to_owned).collect() } else { missing }
}

/// "The tool `x` needs the Microsoft Graph permission … An administrator can grant …".
pub fn missing_permission_message(tool: &str, missing: &[String], consent_url: &str) -> String {
    let (noun, them) =
        if missing.len() == 1 { ("permission", "it") } else { ("permissions", "them") };
    let mut text = format!(
        "The tool `{tool}` needs the delegated Microsoft Graph {noun} {}, which your organization \
         has not granted to the connector.",
        missing.join(", ")
    );
    if missing.iter().any(|m| m.eq_ignore_ascii_case("Sites.Read.All")) {
        text.push_str(
            " SharePoint search runs across the whole tenant, so a Sites.Selected grant (chosen \
             sites only) cannot serve it.",
        );
    }
    text.push_str(&format!(
        " An administrator can grant {them} to the connector by opening {consent_url} (or in the \
         Microsoft Entra admin center under Enterprise applications)."
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_each_missing_permission_and_the_consent_url() {
        let one = missing_permission_message(
            "sharepoint_search",
            &["Sites.Read.All".into()],
            "https://login.example/t/v2.0/adminconsent?client_id=c",
        );
        assert!(one.contains("permission Sites.Read.All,"));
        assert!(one.contains("Sites.Selected"));
        assert!(one.contains("grant it to the connector by opening https://login.example/"));
        let two = missing_permission_message(
            "outlook_email_search",
            &["Mail.Read".into(), "MailboxSettings.Read".into()],
            "u",
        );
        assert!(two.contains("permissions Mail.Read, MailboxSettings.Read,"));
        assert!(!two.contains("Sites.Selected"));
    }
}
