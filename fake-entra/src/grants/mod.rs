//! The grants of the token endpoint: `authorization_code`, `refresh_token`,
//! `client_credentials` and On-Behalf-Of (`urn:ietf:params:oauth:grant-type:jwt-bearer`), one
//! file each, with the checks of reference/entra.md §5–§7 in Entra's order. This file holds
//! what they share: the dispatch on `grant_type`, client authentication, the user-state check
//! and token issuance.

mod auth_code;
mod client_credentials;
mod obo;
mod refresh;
#[cfg(test)]
mod testing;

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use fixtures::AppRegistration;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    consent::{Resource, qualify},
    error::{self, AadError},
    state::{Inner, RefreshGrant, Shared, SignInContext},
    tenant::TenantRef,
    tokens::{self, Times},
};

pub const GRANT_OBO: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew Entra tolerates on assertions.
const SKEW_SECS: i64 = 300;

/// A successful token response (reference/entra.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token_type: String,
    pub scope: String,
    pub expires_in: i64,
    pub ext_expires_in: i64,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_info: Option<String>,
}

/// A token response whose tokens are not signed yet. The grants build it under the state
/// lock; the token route signs after releasing the lock, so concurrent requests sign on all cores
/// instead of queueing on the mutex (an RS256 signature is the most expensive step).
pub(crate) struct Issued {
    /// The response with `access_token` (and `id_token`) still empty.
    pub resp: TokenResponse,
    pub access: tokens::Unsigned,
    pub id: Option<tokens::Unsigned>,
}

impl Issued {
    pub fn sign(self) -> TokenResponse {
        let Self { mut resp, access, id } = self;
        resp.access_token = access.sign();
        resp.id_token = id.map(|t| t.sign());
        resp
    }
}

/// What the journal records about a request while it is processed.
#[derive(Default)]
pub(crate) struct Trail {
    pub grant: String,
    pub client_id: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub scopes: Vec<String>,
    pub uti: Option<String>,
    pub cp1: bool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn handle(
    s: &Shared,
    inner: &mut Inner,
    t: TenantRef,
    tenant_seg: &str,
    p: &HashMap<String, String>,
    basic: Option<(String, String)>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let grant = p
        .get("grant_type")
        .map(String::as_str)
        .ok_or_else(|| error::missing_param("grant_type"))?;
    let client_id = trail.client_id.clone().ok_or_else(|| error::missing_param("client_id"))?;
    let app = inner
        .dir
        .app(&client_id)
        .cloned()
        .ok_or_else(|| error::app_not_found(&client_id, tenant_seg))?;
    match grant {
        "authorization_code" => {
            trail.grant = "authorization_code".into();
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            auth_code::authorization_code(s, inner, &app, acr, p, trail, now)
        }
        "refresh_token" => {
            trail.grant = "refresh_token".into();
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            refresh::refresh(s, inner, &app, acr, p, trail, now)
        }
        "client_credentials" => {
            trail.grant = "client_credentials".into();
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            if acr == "0" {
                return Err(error::missing_client_credential());
            }
            client_credentials::client_credentials(s, inner, &app, t, p, trail, now)
        }
        GRANT_OBO => {
            trail.grant = "on_behalf_of".into();
            if p.get("requested_token_use").map(String::as_str) != Some("on_behalf_of") {
                return Err(error::invalid_request(
                    90009,
                    "The request must contain 'requested_token_use=on_behalf_of' for the jwt-bearer grant.",
                ));
            }
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            if acr == "0" {
                return Err(error::missing_client_credential());
            }
            obo::on_behalf_of(s, inner, &app, acr, t, p, trail, now)
        }
        other => Err(error::unsupported_grant(other)),
    }
}

/// Client authentication: `"0"` public, `"1"` secret, `"2"` certificate (the `azpacr` value).
fn authenticate(
    s: &Shared,
    app: &AppRegistration,
    p: &HashMap<String, String>,
    basic: Option<(String, String)>,
    t: TenantRef,
    tenant_seg: &str,
    now: DateTime<Utc>,
) -> Result<&'static str, AadError> {
    let secret = p.get("client_secret").cloned().or_else(|| basic.map(|b| b.1));
    let assertion = p.get("client_assertion");
    if app.public_client {
        if secret.is_some() || assertion.is_some() {
            return Err(AadError::new(
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            ));
        }
        return Ok("0");
    }
    if let Some(secret) = secret {
        return if app.client_secrets.iter().any(|c| c == &secret) {
            Ok("1")
        } else {
            Err(error::invalid_client_secret(app.app_id))
        };
    }
    let Some(assertion) = assertion else { return Err(error::missing_client_credential()) };
    if p.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
        return Err(error::invalid_request(
            9002333,
            "The client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        ));
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        error::bad_client_assertion("The client assertion is not a well-formed JWT")
    })?;
    let candidates: Vec<_> = app
        .certificates
        .iter()
        .filter(|c| header.x5t.as_deref().is_none_or(|x| x == c.x5t))
        .collect();
    if candidates.is_empty() {
        return Err(error::bad_client_assertion("The key was not found"));
    }
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = candidates
        .iter()
        .find_map(|c| {
            let key = DecodingKey::from_rsa_pem(c.public_key_pem.as_bytes()).ok()?;
            jsonwebtoken::decode::<Value>(assertion, &key, &v).ok().map(|d| d.claims)
        })
        .ok_or_else(|| error::bad_client_assertion("The signature is invalid"))?;
    let cid = app.app_id.to_string();
    if claims["iss"].as_str() != Some(&cid) || claims["sub"].as_str() != Some(&cid) {
        return Err(error::bad_client_assertion("iss and sub must be the client id"));
    }
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        [tenant_seg.to_string(), t.id().map(|x| x.to_string()).unwrap_or_default()].iter().any(
            |seg| {
                a == format!("{}/{seg}/oauth2/v2.0/token", s.base)
                    || a == format!("{}/{seg}/oauth2/token", s.base)
            },
        )
    };
    let aud_matches = match &claims["aud"] {
        Value::String(a) => aud_ok(a),
        Value::Array(a) => a.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !aud_matches {
        return Err(error::bad_client_assertion("The audience is not the token endpoint"));
    }
    let exp = claims["exp"].as_i64().ok_or_else(|| error::bad_client_assertion("exp missing"))?;
    if exp + SKEW_SECS < now.timestamp() {
        return Err(AadError::new(
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    if claims["nbf"].as_i64().is_some_and(|n| n - SKEW_SECS > now.timestamp()) {
        return Err(AadError::new(
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok("2")
}

/// Builds the user tokens for a connector or Graph resource. Shared by code and refresh.
#[allow(clippy::too_many_arguments)]
pub(super) fn issue_user_tokens(
    s: &Shared,
    inner: &mut Inner,
    client: &AppRegistration,
    azpacr: &str,
    tid: Uuid,
    oid: Uuid,
    resource: Option<Resource>,
    granted: &[String],
    want_refresh: bool,
    id_token: Option<Option<String>>,
    client_info: bool,
    ctx: &SignInContext,
    cp1: bool,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let user = inner.dir.tenant_by_id(tid).and_then(|t| t.user(oid)).cloned().ok_or_else(|| {
        AadError::new("invalid_grant", 50034, "The user account does not exist in the directory.")
    })?;
    let uti = tokens::new_uti();
    let scope =
        granted.iter().map(|g| qualify(&inner.dir, resource, g)).collect::<Vec<_>>().join(" ");
    let (access, lifetime) = match resource {
        Some(Resource::Graph) => {
            // Long-lived CAE tokens only where the tenant issues them; otherwise a cp1 client
            // gets an ordinary token (and no `xms_cc`), as under a CA policy disabling CAE.
            let cae = cp1 && inner.cae_tokens;
            let life = if cae { inner.cae_lifetime() } else { inner.access_lifetime(tid) };
            let cp1 = cae;
            let claims = tokens::graph_user_claims(
                tid,
                &user,
                client.app_id,
                &client.display_name,
                azpacr,
                &granted.join(" "),
                ctx,
                cp1,
                Times::new(now, life),
                &uti,
            );
            (tokens::Unsigned::new(inner.keys.active(), claims, true, true), life)
        }
        _ => {
            let life = inner.access_lifetime(tid);
            let connector = inner.dir.apps.connector.app_id;
            let claims = tokens::v2_user_claims(
                &s.issuer_v2(tid),
                tid,
                &user,
                connector,
                client.app_id,
                azpacr,
                &granted.join(" "),
                ctx,
                Times::new(now, life),
                &uti,
            );
            (tokens::Unsigned::new(inner.keys.active(), claims, false, false), life)
        }
    };
    let mut resp = TokenResponse {
        token_type: "Bearer".into(),
        scope,
        expires_in: lifetime,
        ext_expires_in: lifetime,
        access_token: String::new(),
        refresh_token: None,
        id_token: None,
        client_info: None,
    };
    if resource.is_none() {
        // Only OIDC scopes: Entra answers with a Graph User.Read token; keep it simple and
        // report the OIDC scopes.
        resp.scope = "openid profile".into();
    }
    if want_refresh {
        let rt = format!("1.AR{}{}{}", tokens::new_uti(), tokens::new_uti(), tokens::new_uti());
        let scopes = granted
            .iter()
            .map(|g| qualify(&inner.dir, resource, g))
            .chain(["offline_access".to_string()])
            .collect();
        inner.refresh.insert(
            rt.clone(),
            RefreshGrant {
                client_id: client.app_id,
                tid,
                oid,
                scopes,
                ctx: ctx.clone(),
                cp1,
                issued: now,
                last_used: now,
            },
        );
        resp.refresh_token = Some(rt);
    }
    let mut id = None;
    if let Some(nonce) = id_token {
        let life = 3600;
        let claims = tokens::id_token_claims(
            &s.issuer_v2(tid),
            tid,
            &user,
            client.app_id,
            nonce.as_deref(),
            ctx,
            Times::new(now, life),
        );
        id = Some(tokens::Unsigned::new(inner.keys.active(), claims, false, false));
    }
    if client_info {
        resp.client_info =
            Some(URL_SAFE_NO_PAD.encode(format!("{{\"uid\":\"{oid}\",\"utid\":\"{tid}\"}}")));
    }
    trail.uti = Some(uti);
    Ok(Issued { resp, access, id })
}

/// User-state checks shared by every delegated grant: enabled, not revoked since `issued`.
pub(super) fn check_user(
    inner: &Inner,
    tid: Uuid,
    oid: Uuid,
    issued: DateTime<Utc>,
) -> Result<(), AadError> {
    let user = inner.dir.tenant_by_id(tid).and_then(|t| t.user(oid));
    match user {
        None => Err(AadError::new(
            "invalid_grant",
            50034,
            "The user account does not exist in the directory.",
        )),
        Some(u) if !u.enabled => Err(error::user_disabled()),
        Some(_) => match inner.revoked_since(tid, oid, issued) {
            Some(at) => Err(error::grant_revoked(issued, at)),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::*, *};
    use crate::FakeEntra;

    fn run(entra: &FakeEntra, pairs: &[(&str, &str)]) -> Result<Issued, AadError> {
        let now = entra.shared.now();
        let t = TenantRef::Tenant(entra.tenant_id("contoso.com").unwrap_or_default());
        let mut inner = entra.shared.lock();
        let p = form(pairs);
        let mut trail = Trail { client_id: p.get("client_id").cloned(), ..Trail::default() };
        handle(&entra.shared, &mut inner, t, "contoso.com", &p, None, &mut trail, now)
    }

    #[tokio::test]
    async fn grant_type_and_client_are_required_and_known() {
        let entra = entra().await;
        let client = entra.mcp_client_id().to_string();
        assert_refused(run(&entra, &[("client_id", &client)]), "invalid_request", 900144, 400);
        assert_refused(run(&entra, &[("grant_type", "password")]), "invalid_request", 900144, 400);
        let unknown = [("grant_type", "client_credentials"), ("client_id", "not-an-app")];
        assert_refused(run(&entra, &unknown), "unauthorized_client", 700016, 400);
        let password = [("grant_type", "password"), ("client_id", client.as_str())];
        assert_refused(run(&entra, &password), "unsupported_grant_type", 70003, 400);
    }

    #[tokio::test]
    async fn client_authentication_refusals_are_401() {
        let entra = entra().await;
        let public = entra.mcp_client_id().to_string();
        let confidential = entra.connector_id().to_string();
        let scope = ("scope", "https://graph.microsoft.com/.default");
        let cc = ("grant_type", "client_credentials");
        // A public client must not present a secret.
        let r = run(&entra, &[cc, scope, ("client_id", &public), ("client_secret", "x")]);
        assert_refused(r, "invalid_client", 700025, 401);
        let r = run(&entra, &[cc, scope, ("client_id", &confidential), ("client_secret", "x")]);
        assert_refused(r, "invalid_client", 7000215, 401);
        let r = run(&entra, &[cc, scope, ("client_id", &confidential)]);
        assert_refused(r, "invalid_client", 7000218, 401);
        // A public client cannot use client credentials at all.
        let r = run(&entra, &[cc, scope, ("client_id", &public)]);
        assert_refused(r, "invalid_client", 7000218, 401);
    }

    #[tokio::test]
    async fn on_behalf_of_requires_requested_token_use() {
        let entra = entra().await;
        let confidential = entra.connector_id().to_string();
        let r = run(&entra, &[("grant_type", GRANT_OBO), ("client_id", &confidential)]);
        assert_refused(r, "invalid_request", 90009, 400);
    }
}
