//! The `authorization_code` grant (reference/entra.md §5.2): single-use codes of 10 minutes,
//! bound to the client and redirect URI, with PKCE; then the user, consent, assignment and CA
//! checks of the sign-in the code records.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use fixtures::AppRegistration;
use sha2::{Digest, Sha256};

use super::{Issued, Trail, check_user, issue_user_tokens};
use crate::{
    consent::{check_policy, parse_scopes},
    error::{self, AadError},
    state::{Inner, Shared},
};

/// How long a code can be redeemed.
pub(crate) const CODE_LIFETIME: Duration = Duration::minutes(10);

pub(super) fn authorization_code(
    s: &Shared,
    inner: &mut Inner,
    app: &AppRegistration,
    azpacr: &str,
    p: &HashMap<String, String>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let code = p.get("code").ok_or_else(|| error::missing_param("code"))?;
    let Some(record) = inner.codes.get_mut(code) else {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid.",
        ));
    };
    trail.tenant_id = Some(record.tid);
    trail.user_id = Some(record.oid);
    trail.scopes = record.scopes.clone();
    trail.cp1 = record.cp1;
    if record.redeemed {
        return Err(AadError::new(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    // Single use: any redemption attempt consumes the code.
    record.redeemed = true;
    let record = record.clone();
    if now - record.issued > CODE_LIFETIME {
        return Err(AadError::new(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if record.client_id != app.app_id {
        return Err(AadError::new(
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid. The code was issued to another client.",
        ));
    }
    if p.get("redirect_uri") != Some(&record.redirect_uri) {
        return Err(AadError::new(
            "invalid_grant",
            500112,
            "The reply address does not match the reply address provided when requesting Authorization code.",
        ));
    }
    if let Some(challenge) = &record.code_challenge {
        let verifier = p.get("code_verifier").map(String::as_str).unwrap_or("");
        let computed = if record.code_challenge_method == "S256" {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.to_string()
        };
        if verifier.is_empty() || &computed != challenge {
            return Err(AadError::new(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    check_user(inner, record.tid, record.oid, record.issued)?;
    let scopes = parse_scopes(&inner.dir, &record.scopes.join(" "))?;
    let granted = check_policy(
        inner,
        app,
        record.tid,
        record.oid,
        scopes.resource,
        &scopes.names,
        &record.ctx,
    )?;
    let granted = if scopes.resource.is_some() && granted.is_empty() {
        scopes.names.clone()
    } else {
        granted
    };
    let id_token = scopes.has("openid").then(|| record.nonce.clone());
    issue_user_tokens(
        s,
        inner,
        app,
        azpacr,
        record.tid,
        record.oid,
        scopes.resource,
        &granted,
        scopes.has("offline_access"),
        id_token,
        p.get("client_info").is_some_and(|v| v == "1"),
        &record.ctx,
        record.cp1,
        trail,
        now,
    )
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::{super::testing::*, *};
    use crate::{FakeEntra, state::AuthCode};

    const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123";

    /// Stores a code for Adele, issued `age` ago to the MCP client, with an S256 challenge.
    fn code(entra: &FakeEntra, age: Duration) -> String {
        let now = entra.shared.now();
        let (tid, oid) = entra.persona("adele@contoso.com").unwrap_or_default();
        let mut inner = entra.shared.lock();
        let user = inner.dir.tenant_by_id(tid).and_then(|t| t.user(oid)).cloned();
        let ctx =
            crate::state::SignInContext::for_user(&user.unwrap_or_else(|| panic!("adele")), now);
        let connector = inner.dir.apps.connector.app_id;
        let client_id = inner.dir.apps.mcp_client.app_id;
        inner.codes.insert(
            "the-code".into(),
            AuthCode {
                client_id,
                redirect_uri: "http://localhost:8400/callback".into(),
                code_challenge: Some(URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))),
                code_challenge_method: "S256".into(),
                scopes: vec![format!("api://{connector}/access_as_user")],
                tid,
                oid,
                ctx,
                cp1: false,
                nonce: None,
                issued: now - age,
                redeemed: false,
            },
        );
        "the-code".into()
    }

    fn redeem(
        entra: &FakeEntra,
        client: &AppRegistration,
        pairs: &[(&str, &str)],
    ) -> Result<Issued, AadError> {
        let now = entra.shared.now();
        let mut inner = entra.shared.lock();
        let mut trail = trail(client.app_id);
        authorization_code(&entra.shared, &mut inner, client, "0", &form(pairs), &mut trail, now)
    }

    fn mcp_client(entra: &FakeEntra) -> AppRegistration {
        entra.shared.lock().dir.apps.mcp_client.clone()
    }

    const REDIRECT: (&str, &str) = ("redirect_uri", "http://localhost:8400/callback");

    #[tokio::test]
    async fn a_good_code_is_redeemed_once_then_refused_with_54005() {
        let entra = entra().await;
        let code = code(&entra, Duration::zero());
        let client = mcp_client(&entra);
        let good = [("code", code.as_str()), REDIRECT, ("code_verifier", VERIFIER)];
        assert!(redeem(&entra, &client, &good).is_ok(), "first redemption");
        assert_refused(redeem(&entra, &client, &good), "invalid_grant", 54005, 400);
    }

    #[tokio::test]
    async fn a_missing_or_unknown_code_is_refused() {
        let entra = entra().await;
        let client = mcp_client(&entra);
        assert_refused(redeem(&entra, &client, &[REDIRECT]), "invalid_request", 900144, 400);
        let unknown = [("code", "nope"), REDIRECT, ("code_verifier", VERIFIER)];
        assert_refused(redeem(&entra, &client, &unknown), "invalid_grant", 70000, 400);
    }

    #[tokio::test]
    async fn a_code_older_than_ten_minutes_is_refused_with_70008() {
        let entra = entra().await;
        let code = code(&entra, CODE_LIFETIME + Duration::seconds(1));
        let client = mcp_client(&entra);
        let req = [("code", code.as_str()), REDIRECT, ("code_verifier", VERIFIER)];
        assert_refused(redeem(&entra, &client, &req), "invalid_grant", 70008, 400);
    }

    #[tokio::test]
    async fn a_code_of_another_client_is_refused_with_70000() {
        let entra = entra().await;
        let code = code(&entra, Duration::zero());
        let connector = entra.shared.lock().dir.apps.connector.clone();
        let req = [("code", code.as_str()), REDIRECT, ("code_verifier", VERIFIER)];
        assert_refused(redeem(&entra, &connector, &req), "invalid_grant", 70000, 400);
    }

    #[tokio::test]
    async fn another_redirect_uri_is_refused_with_500112() {
        let entra = entra().await;
        let code = code(&entra, Duration::zero());
        let client = mcp_client(&entra);
        let req = [
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost:9999/other"),
            ("code_verifier", VERIFIER),
        ];
        assert_refused(redeem(&entra, &client, &req), "invalid_grant", 500112, 400);
    }

    #[tokio::test]
    async fn a_wrong_or_missing_verifier_is_refused_with_501481() {
        let entra = entra().await;
        let client = mcp_client(&entra);
        let code1 = code(&entra, Duration::zero());
        let wrong = [("code", code1.as_str()), REDIRECT, ("code_verifier", "not-the-verifier")];
        assert_refused(redeem(&entra, &client, &wrong), "invalid_grant", 501481, 400);
        let code2 = code(&entra, Duration::zero());
        let missing = [("code", code2.as_str()), REDIRECT];
        assert_refused(redeem(&entra, &client, &missing), "invalid_grant", 501481, 400);
    }

    #[tokio::test]
    async fn a_user_disabled_since_sign_in_is_refused_with_50057() {
        let entra = entra().await;
        let code = code(&entra, Duration::zero());
        let client = mcp_client(&entra);
        entra.disable_user("contoso", "adele@contoso.com").unwrap_or_default();
        let req = [("code", code.as_str()), REDIRECT, ("code_verifier", VERIFIER)];
        assert_refused(redeem(&entra, &client, &req), "invalid_grant", 50057, 400);
    }

    #[tokio::test]
    async fn consent_revoked_since_sign_in_is_refused_with_65001() {
        let entra = entra().await;
        let code = code(&entra, Duration::zero());
        let client = mcp_client(&entra);
        entra.revoke_all_consent("contoso").unwrap_or_default();
        let req = [("code", code.as_str()), REDIRECT, ("code_verifier", VERIFIER)];
        assert_refused(redeem(&entra, &client, &req), "invalid_grant", 65001, 400);
    }
}
