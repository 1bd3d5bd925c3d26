//! On-Behalf-Of (reference/entra.md §7): the assertion (signature over a published key, issuer
//! and tenant, time window, user token with `scp`, audience = the client), one Graph resource,
//! the user's state, consent, assignment and CA, then a v1 Graph token (20–28 h for cp1).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fixtures::{AppRegistration, TenantKind};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use uuid::Uuid;

use super::{Issued, SKEW_SECS, Trail, check_user, issue_user_tokens};
use crate::{
    consent::{Resource, check_policy, parse_claims, parse_scopes},
    error::{self, AadError},
    state::{Inner, Shared, SignInContext},
    tenant::TenantRef,
    tokens,
};

fn bad_assertion_sig(reason: &str) -> AadError {
    AadError::new(
        "invalid_grant",
        50013,
        format!("Assertion contains an invalid signature. [Reason - {reason}]"),
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn on_behalf_of(
    s: &Shared,
    inner: &mut Inner,
    app: &AppRegistration,
    azpacr: &str,
    t: TenantRef,
    p: &HashMap<String, String>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let assertion = p.get("assertion").ok_or_else(|| error::missing_param("assertion"))?;
    let raw_scope = p.get("scope").ok_or_else(|| error::missing_param("scope"))?;
    let (cp1, _) = parse_claims(p.get("claims").map(String::as_str));
    trail.cp1 = cp1;
    // 1. The assertion: RS256 over a published key of this fake.
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| AadError::new("invalid_grant", 50027, "JWT token is invalid or malformed."))?;
    if header.alg != Algorithm::RS256 {
        return Err(bad_assertion_sig("The algorithm is not RS256."));
    }
    let kid = header.kid.unwrap_or_default();
    let key = inner.keys.verifying(&kid).ok_or_else(|| {
        bad_assertion_sig(&format!(
            "The key was not found., Thumbprint of key used by client: '{kid}'"
        ))
    })?;
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &key.decoding, &v)
        .map_err(|_| {
            bad_assertion_sig(
                "The provided signature value did not match the expected signature value.",
            )
        })?
        .claims;
    let tid = claims["tid"].as_str().and_then(|x| Uuid::parse_str(x).ok()).ok_or_else(|| {
        AadError::new("invalid_grant", 50027, "JWT token is invalid or malformed: tid.")
    })?;
    let iss = claims["iss"].as_str().unwrap_or("");
    if iss != s.issuer_v2(tid) && iss != format!("{}/{tid}/", tokens::V1_ISSUER_HOST) {
        return Err(AadError::new(
            "invalid_grant",
            50027,
            "JWT token is invalid or malformed: the issuer does not match the tenant.",
        ));
    }
    trail.tenant_id = Some(tid);
    let oid = claims["oid"].as_str().and_then(|x| Uuid::parse_str(x).ok());
    trail.user_id = oid;
    let (Some(exp), Some(nbf)) =
        (claims["exp"].as_i64(), claims["nbf"].as_i64().or(claims["iat"].as_i64()))
    else {
        return Err(AadError::new(
            "invalid_grant",
            50027,
            "JWT token is invalid or malformed: exp/nbf.",
        ));
    };
    if exp + SKEW_SECS < now.timestamp() || nbf - SKEW_SECS > now.timestamp() {
        return Err(AadError::new(
            "invalid_grant",
            500133,
            format!(
                "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: {}, expiry time of assertion {}.",
                crate::error::entra_iso(now),
                crate::error::entra_iso(
                    DateTime::<Utc>::from_timestamp(exp, 0).unwrap_or_default()
                )
            ),
        ));
    }
    let is_app = claims["idtyp"].as_str() == Some("app")
        || (claims["scp"].is_null() && !claims["roles"].is_null());
    if is_app {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "The provided value for the 'assertion' is not valid. The assertion is an app-only token: the On-Behalf-Of flow only works for user principals.",
        ));
    }
    if claims["scp"].is_null() {
        return Err(AadError::new(
            "invalid_grant",
            240002,
            "Input id_token cannot be used as 'urn:ietf:params:oauth:grant-type:jwt-bearer' grant.",
        ));
    }
    let aud = claims["aud"].as_str().unwrap_or("");
    let app_uri = app.identifier_uri.clone().unwrap_or_default();
    if aud != app.app_id.to_string() && (app_uri.is_empty() || aud != app_uri) {
        return Err(AadError::new(
            "invalid_grant",
            500131,
            format!(
                "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '{aud}' and the expected audience is '{}' or one of the Application Uris of this application with App ID '{}'({}).",
                app.app_id, app.app_id, app.display_name
            ),
        ));
    }
    let Some(oid) = oid else {
        return Err(AadError::new(
            "invalid_grant",
            50027,
            "JWT token is invalid or malformed: oid.",
        ));
    };
    if let TenantRef::Tenant(path_tid) = t
        && path_tid != tid
    {
        let upn = claims["preferred_username"].as_str().unwrap_or("");
        return Err(error::user_not_in_tenant(upn, &path_tid.to_string()));
    }
    // 2. Scopes: one resource, Graph.
    let scopes = parse_scopes(&inner.dir, raw_scope)?;
    trail.scopes = scopes.all(&inner.dir);
    if scopes.resource != Some(Resource::Graph) {
        return Err(error::invalid_scope(raw_scope));
    }
    // 3. Tenant and user state.
    let iat = claims["iat"].as_i64().unwrap_or(nbf);
    let aio = claims["aio"].as_str().and_then(tokens::decode_aio);
    // Precise issue time from `aio` when the fake minted the token; else whole seconds.
    let issued = aio
        .as_ref()
        .and_then(|c| {
            DateTime::<Utc>::from_timestamp_millis(c.issued_ms).filter(|_| c.issued_ms > 0)
        })
        .or_else(|| DateTime::<Utc>::from_timestamp(iat, 0))
        .unwrap_or(now);
    check_user(inner, tid, oid, issued)?;
    let ctx = aio.unwrap_or_else(|| {
        inner
            .dir
            .tenant_by_id(tid)
            .and_then(|td| td.user(oid))
            .map(|u| SignInContext::for_user(u, issued))
            .unwrap_or(SignInContext {
                mfa: false,
                compliant: false,
                ip: "127.0.0.1".into(),
                auth_time: iat,
                issued_ms: 0,
            })
    });
    if let Some(td) = inner.dir.tenant_by_id(tid)
        && td.kind == TenantKind::Organization
        && !td.state.service_principals.contains(&app.app_id)
        && !td.state.consent_grants.iter().any(|g| g.client_app_id == app.app_id)
    {
        return Err(error::consent_required(app.app_id, &app.display_name));
    }
    // 4. Consent per scope, assignment, Conditional Access.
    let granted = check_policy(inner, app, tid, oid, scopes.resource, &scopes.names, &ctx)?;
    let granted = if granted.is_empty() { scopes.names.clone() } else { granted };
    // 5. Issue the v1 Graph token.
    issue_user_tokens(
        s,
        inner,
        app,
        azpacr,
        tid,
        oid,
        Some(Resource::Graph),
        &granted,
        scopes.has("offline_access"),
        None,
        false,
        &ctx,
        cp1,
        trail,
        now,
    )
    .map(|mut r| {
        r.resp.ext_expires_in = r.resp.expires_in;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::{super::testing::*, *};
    use crate::{BadToken, FakeEntra, TokenSpec};

    const MAIL_READ: &str = "https://graph.microsoft.com/Mail.Read";

    fn adele(entra: &FakeEntra) -> (Uuid, Uuid) {
        entra.persona("adele@contoso.com").unwrap_or_default()
    }

    /// The connector exchanges `assertion` for `scope` on the path of tenant `t`.
    fn exchange(
        entra: &FakeEntra,
        t: TenantRef,
        assertion: &str,
        scope: &str,
    ) -> Result<Issued, AadError> {
        let now = entra.shared.now();
        let mut inner = entra.shared.lock();
        let app = inner.dir.apps.connector.clone();
        let mut trail = trail(app.app_id);
        let mut pairs = vec![("requested_token_use", "on_behalf_of"), ("scope", scope)];
        if !assertion.is_empty() {
            pairs.push(("assertion", assertion));
        }
        on_behalf_of(&entra.shared, &mut inner, &app, "1", t, &form(&pairs), &mut trail, now)
    }

    fn contoso(entra: &FakeEntra) -> TenantRef {
        TenantRef::Tenant(adele(entra).0)
    }

    fn bad(entra: &FakeEntra, defect: BadToken) -> String {
        let (tid, oid) = adele(entra);
        entra.mint(&TokenSpec::user(tid, oid).bad(defect))
    }

    #[tokio::test]
    async fn a_user_token_for_the_connector_becomes_a_graph_token() {
        let entra = entra().await;
        let (tid, oid) = adele(&entra);
        let issued = exchange(&entra, contoso(&entra), &entra.user_token(tid, oid), MAIL_READ);
        assert!(issued.is_ok_and(|i| i.resp.scope == MAIL_READ), "Mail.Read granted");
    }

    #[tokio::test]
    async fn a_missing_or_malformed_assertion_is_refused() {
        let entra = entra().await;
        let t = contoso(&entra);
        assert_refused(exchange(&entra, t, "", MAIL_READ), "invalid_request", 900144, 400);
        assert_refused(exchange(&entra, t, "not-a-jwt", MAIL_READ), "invalid_grant", 50027, 400);
    }

    #[tokio::test]
    async fn an_assertion_not_signed_by_a_published_key_is_refused_with_50013() {
        let entra = entra().await;
        let t = contoso(&entra);
        for defect in
            [BadToken::UnknownKey, BadToken::ForeignKeyKnownKid, BadToken::TamperedPayload]
        {
            let token = bad(&entra, defect.clone());
            assert_refused(exchange(&entra, t, &token, MAIL_READ), "invalid_grant", 50013, 400);
        }
    }

    #[tokio::test]
    async fn an_expired_assertion_is_refused_with_500133() {
        let entra = entra().await;
        let token = bad(&entra, BadToken::Expired);
        let r = exchange(&entra, contoso(&entra), &token, MAIL_READ);
        assert_refused(r, "invalid_grant", 500133, 400);
    }

    #[tokio::test]
    async fn an_app_only_assertion_is_refused_with_70000_and_an_id_token_with_240002() {
        let entra = entra().await;
        let t = contoso(&entra);
        let app_only = bad(&entra, BadToken::AppOnly);
        assert_refused(exchange(&entra, t, &app_only, MAIL_READ), "invalid_grant", 70000, 400);
        let id_token = bad(&entra, BadToken::MissingScp);
        assert_refused(exchange(&entra, t, &id_token, MAIL_READ), "invalid_grant", 240002, 400);
    }

    #[tokio::test]
    async fn an_assertion_for_another_audience_is_refused_with_500131() {
        let entra = entra().await;
        let token = bad(&entra, BadToken::WrongAudience);
        let r = exchange(&entra, contoso(&entra), &token, MAIL_READ);
        assert_refused(r, "invalid_grant", 500131, 400);
    }

    #[tokio::test]
    async fn a_scope_that_is_not_graph_is_refused_with_70011() {
        let entra = entra().await;
        let (tid, oid) = adele(&entra);
        let scope = format!("api://{}/access_as_user", entra.connector_id());
        let r = exchange(&entra, contoso(&entra), &entra.user_token(tid, oid), &scope);
        assert_refused(r, "invalid_scope", 70011, 400);
    }

    #[tokio::test]
    async fn a_user_of_another_tenant_than_the_path_is_refused_with_50020() {
        let entra = entra().await;
        let (tid, oid) = adele(&entra);
        let fabrikam = TenantRef::Tenant(entra.tenant_id("fabrikam.com").unwrap_or_default());
        let r = exchange(&entra, fabrikam, &entra.user_token(tid, oid), MAIL_READ);
        assert_refused(r, "invalid_grant", 50020, 400);
    }

    #[tokio::test]
    async fn revoked_consent_is_refused_with_65001_and_no_assignment_with_50105() {
        let entra = entra().await;
        let (tid, oid) = adele(&entra);
        let t = contoso(&entra);
        entra.set_assignment_required("contoso", true).unwrap_or_default();
        let r = exchange(&entra, t, &entra.user_token(tid, oid), MAIL_READ);
        assert_refused(r, "invalid_grant", 50105, 400);
        entra.set_assignment_required("contoso", false).unwrap_or_default();
        entra.revoke_all_consent("contoso").unwrap_or_default();
        let r = exchange(&entra, t, &entra.user_token(tid, oid), MAIL_READ);
        assert_refused(r, "invalid_grant", 65001, 400);
    }

    #[tokio::test]
    async fn a_disabled_user_is_refused_with_50057() {
        let entra = entra().await;
        let (tid, oid) = adele(&entra);
        let token = entra.user_token(tid, oid);
        entra.disable_user("contoso", "adele@contoso.com").unwrap_or_default();
        let r = exchange(&entra, contoso(&entra), &token, MAIL_READ);
        assert_refused(r, "invalid_grant", 50057, 400);
    }
}
