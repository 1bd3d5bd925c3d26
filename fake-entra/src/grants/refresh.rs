//! The `refresh_token` grant (reference/entra.md §6): opaque tokens bound to the user and
//! client, a new one on each use (the old one stays valid), an inactivity window from the
//! tenant's policy, and the user, revocation, consent and CA checks of each redemption.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fixtures::AppRegistration;

use super::{Issued, Trail, check_user, issue_user_tokens};
use crate::{
    consent::{check_policy, parse_claims, parse_scopes},
    error::{self, AadError},
    state::{Inner, Shared},
};

pub(super) fn refresh(
    s: &Shared,
    inner: &mut Inner,
    app: &AppRegistration,
    azpacr: &str,
    p: &HashMap<String, String>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let rt = p.get("refresh_token").ok_or_else(|| error::missing_param("refresh_token"))?;
    let Some(grant) = inner.refresh.get(rt).cloned() else {
        return Err(AadError::new(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        ));
    };
    trail.tenant_id = Some(grant.tid);
    trail.user_id = Some(grant.oid);
    if grant.client_id != app.app_id {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "The refresh token was issued to another client.",
        ));
    }
    let days = inner
        .dir
        .tenant_by_id(grant.tid)
        .map(|t| t.state.token_lifetime.refresh_token_max_inactive_days)
        .unwrap_or(90);
    if now - grant.last_used > chrono::Duration::days(i64::from(days)) {
        return Err(AadError::new(
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {days}.00:00:00.",
                crate::error::entra_iso(grant.issued)
            ),
        )
        .suberror("bad_token"));
    }
    check_user(inner, grant.tid, grant.oid, grant.issued)?;
    let (cp1_now, _) = parse_claims(p.get("claims").map(String::as_str));
    let cp1 = grant.cp1 || cp1_now;
    trail.cp1 = cp1;
    let requested = p.get("scope").cloned().unwrap_or_else(|| grant.scopes.join(" "));
    let scopes = parse_scopes(&inner.dir, &requested)?;
    trail.scopes = scopes.all(&inner.dir);
    let granted =
        check_policy(inner, app, grant.tid, grant.oid, scopes.resource, &scopes.names, &grant.ctx)?;
    let granted = if scopes.resource.is_some() && granted.is_empty() {
        scopes.names.clone()
    } else {
        granted
    };
    // Each use resets the inactivity window of the token used; the old one stays valid.
    if let Some(g) = inner.refresh.get_mut(rt) {
        g.last_used = now;
    }
    let resp = issue_user_tokens(
        s,
        inner,
        app,
        azpacr,
        grant.tid,
        grant.oid,
        scopes.resource,
        &granted,
        true,
        scopes.has("openid").then_some(None),
        p.get("client_info").is_some_and(|v| v == "1"),
        &grant.ctx,
        cp1,
        trail,
        now,
    )?;
    // The new refresh token carries the original issue time (revocation compares with it)
    // but a fresh inactivity window.
    if let Some(new_rt) = &resp.resp.refresh_token
        && let Some(g) = inner.refresh.get_mut(new_rt)
    {
        g.issued = grant.issued;
    }
    Ok(resp)
}
