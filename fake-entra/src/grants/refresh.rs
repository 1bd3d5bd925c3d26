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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::{super::testing::*, *};
    use crate::{
        FakeEntra,
        state::{RefreshGrant, SignInContext},
    };

    /// Stores a refresh token of Adele's for the MCP client, issued and last used `age` ago.
    fn refresh_token(entra: &FakeEntra, age: Duration) -> String {
        let now = entra.shared.now();
        let (tid, oid) = entra.persona("adele@contoso.com").unwrap_or_default();
        let mut inner = entra.shared.lock();
        let user = inner.dir.tenant_by_id(tid).and_then(|t| t.user(oid)).cloned();
        let ctx = SignInContext::for_user(&user.unwrap_or_else(|| panic!("adele")), now);
        let connector = inner.dir.apps.connector.app_id;
        let client_id = inner.dir.apps.mcp_client.app_id;
        inner.refresh.insert(
            "rt-1".into(),
            RefreshGrant {
                client_id,
                tid,
                oid,
                scopes: vec![format!("api://{connector}/access_as_user"), "offline_access".into()],
                ctx,
                cp1: false,
                issued: now - age,
                last_used: now - age,
            },
        );
        "rt-1".into()
    }

    fn redeem(entra: &FakeEntra, client: &AppRegistration, rt: &str) -> Result<Issued, AadError> {
        let now = entra.shared.now();
        let mut inner = entra.shared.lock();
        let mut trail = trail(client.app_id);
        let p = if rt.is_empty() { form(&[]) } else { form(&[("refresh_token", rt)]) };
        refresh(&entra.shared, &mut inner, client, "0", &p, &mut trail, now)
    }

    fn mcp_client(entra: &FakeEntra) -> AppRegistration {
        entra.shared.lock().dir.apps.mcp_client.clone()
    }

    #[tokio::test]
    async fn a_refresh_token_is_reusable_and_yields_a_new_one() {
        let entra = entra().await;
        let rt = refresh_token(&entra, Duration::zero());
        let client = mcp_client(&entra);
        let first = redeem(&entra, &client, &rt).map_err(|e| e.message);
        let new_rt = first.map(|i| i.resp.refresh_token);
        assert!(matches!(&new_rt, Ok(Some(n)) if n != &rt), "a new refresh token: {new_rt:?}");
        assert!(redeem(&entra, &client, &rt).is_ok(), "the old one stays valid");
    }

    #[tokio::test]
    async fn a_missing_or_unknown_token_is_refused() {
        let entra = entra().await;
        let client = mcp_client(&entra);
        assert_refused(redeem(&entra, &client, ""), "invalid_request", 900144, 400);
        assert_refused(redeem(&entra, &client, "1.ARnope"), "invalid_grant", 9002313, 400);
    }

    #[tokio::test]
    async fn a_token_of_another_client_is_refused_with_70000() {
        let entra = entra().await;
        let rt = refresh_token(&entra, Duration::zero());
        let connector = entra.shared.lock().dir.apps.connector.clone();
        assert_refused(redeem(&entra, &connector, &rt), "invalid_grant", 70000, 400);
    }

    #[tokio::test]
    async fn an_inactive_token_is_refused_with_700082_bad_token() {
        let entra = entra().await;
        let rt = refresh_token(&entra, Duration::days(91));
        let client = mcp_client(&entra);
        let result = redeem(&entra, &client, &rt);
        assert_eq!(result.as_ref().err().and_then(|e| e.suberror.as_deref()), Some("bad_token"));
        assert_refused(result, "invalid_grant", 700082, 400);
    }

    #[tokio::test]
    async fn revoked_sessions_refuse_older_tokens_with_50173() {
        let entra = entra().await;
        let rt = refresh_token(&entra, Duration::seconds(5));
        let client = mcp_client(&entra);
        entra.revoke_sessions("contoso", "adele@contoso.com").unwrap_or_default();
        assert_refused(redeem(&entra, &client, &rt), "invalid_grant", 50173, 400);
    }

    #[tokio::test]
    async fn a_disabled_user_is_refused_with_50057() {
        let entra = entra().await;
        let rt = refresh_token(&entra, Duration::zero());
        let client = mcp_client(&entra);
        entra.disable_user("contoso", "adele@contoso.com").unwrap_or_default();
        assert_refused(redeem(&entra, &client, &rt), "invalid_grant", 50057, 400);
    }
}
