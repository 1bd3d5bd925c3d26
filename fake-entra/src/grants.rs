//! The token endpoint: `authorization_code`, `refresh_token`, `client_credentials` and
//! On-Behalf-Of (`urn:ietf:params:oauth:grant-type:jwt-bearer`), with the checks of
//! reference/entra.md §5–§7 in Entra's order.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chrono::{DateTime, Utc};
use fixtures::{AppRegistration, TenantKind};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    error::{self, AadError},
    faults::Endpoint,
    journal::JournalEntry,
    routes::{
        AppState, CODE_LIFETIME, Resource, TenantRef, access_lifetime, apply_fault, cae_lifetime,
        check_ca, check_consent, parse_claims, parse_scopes, qualify, resolve_tenant,
    },
    state::{Inner, RefreshGrant, Shared, SignInContext},
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
/// lock; [`token`] signs after releasing the lock, so concurrent requests sign on all cores
/// instead of queueing on the mutex (an RS256 signature is the most expensive step).
struct Issued {
    /// The response with `access_token` (and `id_token`) still empty.
    resp: TokenResponse,
    access: tokens::Unsigned,
    id: Option<tokens::Unsigned>,
}

impl Issued {
    fn sign(self) -> TokenResponse {
        let Self { mut resp, access, id } = self;
        resp.access_token = access.sign();
        resp.id_token = id.map(|t| t.sign());
        resp
    }
}

/// What the journal records about a request while it is processed.
#[derive(Default)]
struct Trail {
    grant: String,
    client_id: Option<String>,
    tenant_id: Option<Uuid>,
    user_id: Option<Uuid>,
    scopes: Vec<String>,
    uti: Option<String>,
    cp1: bool,
}

pub(crate) async fn token(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut p: HashMap<String, String> = HashMap::new();
    for (k, v) in form {
        p.entry(k).or_insert(v);
    }
    let now = s.now();
    let resolved = resolve_tenant(&s.lock().dir, &tenant);
    let t = match resolved {
        Ok(t) => t,
        Err(e) => return e.render(now, &headers),
    };
    let basic = basic_auth(&headers);
    let client_id = p.get("client_id").cloned().or_else(|| basic.as_ref().map(|b| b.0.clone()));
    if let Some(r) = apply_fault(&s, Endpoint::Token, t.id(), client_id.as_deref(), &headers).await
    {
        return r;
    }
    let mut trail = Trail {
        grant: p.get("grant_type").cloned().unwrap_or_default(),
        client_id: client_id.clone(),
        tenant_id: t.id(),
        ..Trail::default()
    };
    let result = {
        let mut inner = s.lock();
        handle(&s, &mut inner, t, &tenant, &p, basic, &mut trail, now)
    };
    let mut inner = s.lock();
    let seq = inner.journal.len() as u64 + 1;
    let (code, err) = match &result {
        Ok(_) => (None, None),
        Err(e) => (Some(e.code), Some(e.error.clone())),
    };
    inner.journal.push(JournalEntry {
        seq,
        time: now,
        endpoint: "token".into(),
        grant: trail.grant,
        client_id: trail.client_id,
        tenant_id: trail.tenant_id,
        user_id: trail.user_id,
        scopes: trail.scopes,
        uti: trail.uti,
        error_code: code,
        error: err,
        cp1: trail.cp1,
    });
    drop(inner);
    match result {
        Ok(issued) => {
            let mut resp = axum::Json(issued.sign()).into_response();
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
            if let Ok(v) = HeaderValue::from_str(&error::correlation_id(&headers)) {
                h.insert("client-request-id", v);
            }
            resp
        }
        Err(e) => e.render(now, &headers),
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |x: &str| {
        url::form_urlencoded::parse(format!("x={x}").as_bytes()).next().map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

#[allow(clippy::too_many_arguments)]
fn handle(
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
            authorization_code(s, inner, &app, acr, p, trail, now)
        }
        "refresh_token" => {
            trail.grant = "refresh_token".into();
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            refresh(s, inner, &app, acr, p, trail, now)
        }
        "client_credentials" => {
            trail.grant = "client_credentials".into();
            let acr = authenticate(s, &app, p, basic, t, tenant_seg, now)?;
            if acr == "0" {
                return Err(error::missing_client_credential());
            }
            client_credentials(s, inner, &app, t, p, trail, now)
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
            on_behalf_of(s, inner, &app, acr, t, p, trail, now)
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
fn issue_user_tokens(
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
    let (access, lifetime, scope) = match resource {
        Some(Resource::Graph) => {
            // Long-lived CAE tokens only where the tenant issues them; otherwise a cp1 client
            // gets an ordinary token (and no `xms_cc`), as under a CA policy disabling CAE.
            let cae = cp1 && inner.cae_tokens;
            let life = if cae { cae_lifetime(inner) } else { access_lifetime(inner, tid) };
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
            let scope = granted
                .iter()
                .map(|g| qualify(&inner.dir, resource, g))
                .collect::<Vec<_>>()
                .join(" ");
            (tokens::Unsigned::new(inner.keys.active(), claims, true, true), life, scope)
        }
        _ => {
            let life = access_lifetime(inner, tid);
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
            let scope = granted
                .iter()
                .map(|g| qualify(&inner.dir, resource, g))
                .collect::<Vec<_>>()
                .join(" ");
            (tokens::Unsigned::new(inner.keys.active(), claims, false, false), life, scope)
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
fn check_user(inner: &Inner, tid: Uuid, oid: Uuid, issued: DateTime<Utc>) -> Result<(), AadError> {
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

/// Consent, assignment and CA for a delegated token in an organisation tenant.
fn check_policy(
    inner: &Inner,
    client: &AppRegistration,
    tid: Uuid,
    oid: Uuid,
    resource: Option<Resource>,
    names: &[String],
    ctx: &SignInContext,
) -> Result<Vec<String>, AadError> {
    let Some(tdir) = inner.dir.tenant_by_id(tid) else { return Ok(names.to_vec()) };
    if tdir.kind == TenantKind::Consumer {
        return Ok(names.to_vec());
    }
    let Some(user) = tdir.user(oid) else { return Ok(names.to_vec()) };
    let granted = match resource {
        Some(r) => check_consent(tdir, client, r, names)?,
        None => vec![],
    };
    let connector = &inner.dir.apps.connector;
    let involves_connector =
        resource == Some(Resource::Connector) || client.app_id == connector.app_id;
    if involves_connector && !tdir.is_assigned(user) {
        return Err(error::not_assigned(&user.upn, connector.app_id, &connector.display_name));
    }
    let resource_name = match resource {
        Some(Resource::Graph) => tokens::GRAPH_AUDIENCE.to_string(),
        _ => connector.app_id.to_string(),
    };
    check_ca(tdir, user, ctx, &resource_name)?;
    Ok(granted)
}

fn authorization_code(
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

fn refresh(
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

fn client_credentials(
    s: &Shared,
    inner: &mut Inner,
    app: &AppRegistration,
    t: TenantRef,
    p: &HashMap<String, String>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let Some(tid) = t.id().filter(|_| matches!(t, TenantRef::Tenant(_))) else {
        return Err(AadError::new(
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        ));
    };
    let raw = p.get("scope").ok_or_else(|| error::missing_param("scope"))?;
    trail.scopes = vec![raw.clone()];
    let scopes = parse_scopes(&inner.dir, raw)?;
    if scopes.names != [".default"] || scopes.resource.is_none() {
        return Err(AadError::new(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {raw} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let tdir = inner
        .dir
        .tenant_by_id(tid)
        .cloned()
        .ok_or_else(|| error::tenant_not_found(&tid.to_string()))?;
    let has_sp = tdir.state.service_principals.contains(&app.app_id)
        || tdir.state.consent_grants.iter().any(|g| g.client_app_id == app.app_id);
    if !has_sp {
        return Err(error::app_not_found(&app.app_id.to_string(), &tid.to_string()));
    }
    let life = access_lifetime(inner, tid);
    let uti = tokens::new_uti();
    let graph = scopes.resource == Some(Resource::Graph);
    let (aud, roles) = if graph {
        (tokens::GRAPH_AUDIENCE.to_string(), app.app_roles.clone())
    } else {
        (inner.dir.apps.connector.app_id.to_string(), vec![])
    };
    let claims = tokens::app_only_claims(
        &s.issuer_v2(tid),
        tid,
        app.app_id,
        &app.display_name,
        &aud,
        graph,
        &roles,
        Times::new(now, life),
        &uti,
    );
    trail.uti = Some(uti);
    Ok(Issued {
        resp: TokenResponse {
            token_type: "Bearer".into(),
            scope: raw.clone(),
            expires_in: life,
            ext_expires_in: life,
            access_token: String::new(),
            refresh_token: None,
            id_token: None,
            client_info: None,
        },
        access: tokens::Unsigned::new(inner.keys.active(), claims, graph, graph),
        id: None,
    })
}

fn bad_assertion_sig(reason: &str) -> AadError {
    AadError::new(
        "invalid_grant",
        50013,
        format!("Assertion contains an invalid signature. [Reason - {reason}]"),
    )
}

#[allow(clippy::too_many_arguments)]
fn on_behalf_of(
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
