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
