//! The Entra-shaped routes: discovery (v2 and v1), JWKS, MSAL instance discovery and
//! `/authorize`. The token endpoint is in [`crate::grants`].

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use chrono::Duration;
use fixtures::{CONSUMER_TENANT_ID, CaControl, GrantResource, TenantKind, User};
use serde_json::json;
use uuid::Uuid;

use crate::{
    error::{self, AadError},
    faults::{Endpoint, FaultKind},
    journal::JournalEntry,
    state::{AuthCode, Directory, Shared, SignInContext, TenantDir},
};

/// Route paths, as the real service spells them.
pub mod paths {
    pub const DISCOVERY_V2: &str = "/{tenant}/v2.0/.well-known/openid-configuration";
    pub const DISCOVERY_V1: &str = "/{tenant}/.well-known/openid-configuration";
    pub const KEYS_V2: &str = "/{tenant}/discovery/v2.0/keys";
    pub const KEYS_V1: &str = "/{tenant}/discovery/keys";
    pub const INSTANCE: &str = "/common/discovery/instance";
    pub const AUTHORIZE: &str = "/{tenant}/oauth2/v2.0/authorize";
    pub const TOKEN: &str = "/{tenant}/oauth2/v2.0/token";
}

pub(crate) type AppState = Arc<Shared>;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(paths::DISCOVERY_V2, get(discovery_v2))
        .route(paths::DISCOVERY_V1, get(discovery_v1))
        .route(paths::KEYS_V2, get(keys))
        .route(paths::KEYS_V1, get(keys))
        .route(paths::INSTANCE, get(instance_discovery))
        .route(paths::AUTHORIZE, get(authorize))
        .route(paths::TOKEN, post(crate::grants::token))
        .merge(crate::control::router())
        .with_state(state)
}

/// The `{tenant}` path segment, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantRef {
    Common,
    Organizations,
    Consumers,
    Tenant(Uuid),
}

impl TenantRef {
    pub fn id(self) -> Option<Uuid> {
        match self {
            TenantRef::Tenant(t) => Some(t),
            TenantRef::Consumers => Some(CONSUMER_TENANT_ID),
            _ => None,
        }
    }

    /// May a user of `tenant` sign in through this path?
    pub fn admits(self, tenant: &TenantDir) -> bool {
        match self {
            TenantRef::Common => true,
            TenantRef::Organizations => tenant.kind == TenantKind::Organization,
            TenantRef::Consumers => tenant.kind == TenantKind::Consumer,
            TenantRef::Tenant(t) => t == tenant.id,
        }
    }
}

pub(crate) fn resolve_tenant(dir: &Directory, seg: &str) -> Result<TenantRef, AadError> {
    match seg.to_ascii_lowercase().as_str() {
        "common" => Ok(TenantRef::Common),
        "organizations" => Ok(TenantRef::Organizations),
        "consumers" => Ok(TenantRef::Consumers),
        _ => {
            // Entra accepts GUIDs and verified domains, not the fixtures' short names.
            let t = match Uuid::parse_str(seg) {
                Ok(id) => dir.tenant_by_id(id),
                Err(_) => dir
                    .tenants
                    .iter()
                    .find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(seg))),
            };
            t.map(|t| TenantRef::Tenant(t.id)).ok_or_else(|| error::tenant_not_found(seg))
        }
    }
}

/// Applies the first matching scripted fault: `Some(response)` to answer with it.
pub(crate) async fn apply_fault(
    s: &Shared,
    ep: Endpoint,
    tenant: Option<Uuid>,
    client: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let kind = {
        let mut inner = s.lock();
        let i = inner.faults.iter().position(|f| f.times > 0 && f.matches(ep, tenant, client))?;
        let kind = inner.faults[i].fault.clone();
        inner.faults[i].times -= 1;
        if inner.faults[i].times == 0 {
            inner.faults.remove(i);
        }
        kind
    };
    let err = match kind {
        FaultKind::Latency { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return None;
        }
        FaultKind::Aadsts { code, error, description, status } => {
            let mut e = AadError::new(
                error.as_deref().unwrap_or("invalid_grant"),
                code,
                description.unwrap_or_else(|| format!("Scripted failure {code}.")),
            );
            if let Some(st) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
                e = e.status(st);
            }
            e
        }
        FaultKind::TooManyRequests { retry_after } => {
            let mut e = AadError::new(
                "temporarily_unavailable",
                90055,
                "TenantThrottlingError: There are too many incoming requests. This exception is thrown for blocked tenants.",
            )
            .status(StatusCode::TOO_MANY_REQUESTS);
            e.retry_after = retry_after;
            e
        }
        FaultKind::Unavailable { retry_after } => {
            let mut e = AadError::new(
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
            .status(StatusCode::SERVICE_UNAVAILABLE);
            e.retry_after = retry_after;
            e
        }
    };
    let now = s.now();
    if ep == Endpoint::Token || ep == Endpoint::Authorize {
        let mut inner = s.lock();
        let seq = inner.journal.len() as u64 + 1;
        inner.journal.push(JournalEntry {
            seq,
            time: now,
            endpoint: format!("{ep:?}").to_lowercase(),
            grant: "fault".into(),
            client_id: client.map(str::to_string),
            tenant_id: tenant,
            user_id: None,
            scopes: vec![],
            uti: None,
            error_code: Some(err.code),
            error: Some(err.error.clone()),
            cp1: false,
        });
    }
    Some(err.render(now, headers))
}

fn discovery_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, private"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    resp
}

/// The path segment used in endpoint URLs and the issuer for a resolved tenant.
fn seg_and_issuer(s: &Shared, t: TenantRef) -> (String, String) {
    match t {
        TenantRef::Common => ("common".into(), format!("{}/{{tenantid}}/v2.0", s.base)),
        TenantRef::Organizations => {
            ("organizations".into(), format!("{}/{{tenantid}}/v2.0", s.base))
        }
        TenantRef::Consumers => ("consumers".into(), s.issuer_v2(CONSUMER_TENANT_ID)),
        TenantRef::Tenant(tid) => (tid.to_string(), s.issuer_v2(tid)),
    }
}

/// The tenant a metadata request (discovery, keys) names, after any scripted fault for that
/// endpoint: an unknown tenant or a fault is the finished response.
async fn tenant_for_metadata(
    s: &AppState,
    tenant: &str,
    endpoint: Endpoint,
    headers: &HeaderMap,
) -> Result<TenantRef, Response> {
    let resolved = resolve_tenant(&s.lock().dir, tenant);
    let t = resolved.map_err(|e| e.render(s.now(), headers))?;
    match apply_fault(s, endpoint, t.id(), None, headers).await {
        Some(fault) => Err(fault),
        None => Ok(t),
    }
}

async fn discovery_v2(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Discovery, &headers).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let (seg, issuer) = seg_and_issuer(&s, t);
    let b = &s.base;
    let mut doc = json!({
        "token_endpoint": format!("{b}/{seg}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{seg}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{b}/{seg}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{seg}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{seg}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{b}/{seg}/kerberos"),
        "tenant_region_scope": if matches!(t, TenantRef::Tenant(_)) { json!("WW") } else { json!(null) },
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    // Entra omits this field although PKCE works (reference/entra.md §2.1); opt-in knob.
    if s.lock().advertise_pkce
        && let Some(m) = doc.as_object_mut()
    {
        m.insert("code_challenge_methods_supported".into(), json!(["plain", "S256"]));
    }
    discovery_headers(axum::Json(doc).into_response())
}

async fn discovery_v1(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Discovery, &headers).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let (seg, _) = seg_and_issuer(&s, t);
    let issuer = match t.id() {
        Some(tid) => format!("{}/{tid}/", crate::tokens::V1_ISSUER_HOST),
        None => format!("{}/{{tenantid}}/", crate::tokens::V1_ISSUER_HOST),
    };
    let b = &s.base;
    let doc = json!({
        "token_endpoint": format!("{b}/{seg}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/common/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": issuer,
        "microsoft_multi_refresh_token": true,
        "authorization_endpoint": format!("{b}/{seg}/oauth2/authorize"),
        "device_authorization_endpoint": format!("{b}/{seg}/oauth2/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{seg}/oauth2/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"],
        "check_session_iframe": format!("{b}/{seg}/oauth2/checksession"),
        "userinfo_endpoint": format!("{b}/{seg}/openid/userinfo"),
        "kerberos_endpoint": format!("{b}/{seg}/kerberos"),
        "tenant_region_scope": if matches!(t, TenantRef::Tenant(_)) { json!("WW") } else { json!(null) },
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    discovery_headers(axum::Json(doc).into_response())
}

async fn keys(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Keys, &headers).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let (_, metadata_issuer) = seg_and_issuer(&s, t);
    let now = s.now();
    let keys: Vec<_> = {
        let mut inner = s.lock();
        let issuer = match inner.jwks_issuer {
            crate::state::JwksIssuer::AsMetadata => Some(metadata_issuer),
            crate::state::JwksIssuer::Omitted => None,
            crate::state::JwksIssuer::Tenant(tid) => Some(s.issuer_v2(tid)),
        };
        let keys = inner
            .keys
            .published()
            .map(|k| {
                let mut jwk = k.jwk(issuer.as_deref().unwrap_or_default());
                if issuer.is_none()
                    && let Some(m) = jwk.as_object_mut()
                {
                    m.remove("issuer");
                }
                jwk
            })
            .collect();
        // Journalled so a scenario can count fetches (a flood of unknown kids must not
        // become a flood of JWKS requests).
        let seq = inner.journal.len() as u64 + 1;
        inner.journal.push(JournalEntry {
            seq,
            time: now,
            endpoint: "keys".into(),
            grant: "keys".into(),
            client_id: None,
            tenant_id: t.id(),
            user_id: None,
            scopes: vec![],
            uti: None,
            error_code: None,
            error: None,
            cp1: false,
        });
        keys
    };
    discovery_headers(axum::Json(json!({ "keys": keys })).into_response())
}

async fn instance_discovery(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let tenant = q
        .get("authorization_endpoint")
        .and_then(|a| url::Url::parse(a).ok())
        .and_then(|u| u.path_segments().and_then(|mut p| p.next().map(str::to_string)))
        .unwrap_or_else(|| "common".into());
    let host = url::Url::parse(&s.base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    axum::Json(json!({
        "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", s.base),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }))
    .into_response()
}

// ─── Scopes ─────────────────────────────────────────────────────────────────────────────

/// The resource a set of scopes names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Connector,
    Graph,
}

impl Resource {
    pub fn grant(self) -> GrantResource {
        match self {
            Resource::Connector => GrantResource::Connector,
            Resource::Graph => GrantResource::Graph,
        }
    }
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scopes {
    pub resource: Option<Resource>,
    /// Resource scope names without prefix (`access_as_user`, `Mail.Read`, `.default`).
    pub names: Vec<String>,
    /// `openid`, `profile`, `email`, `offline_access`.
    pub oidc: Vec<String>,
}

impl Scopes {
    pub fn has(&self, oidc: &str) -> bool {
        self.oidc.iter().any(|s| s == oidc)
    }

    /// All scopes, fully qualified, for the journal.
    pub fn all(&self, dir: &Directory) -> Vec<String> {
        let mut v: Vec<String> =
            self.names.iter().map(|n| qualify(dir, self.resource, n)).collect();
        v.extend(self.oidc.iter().cloned());
        v
    }
}

pub(crate) fn qualify(dir: &Directory, r: Option<Resource>, name: &str) -> String {
    match r {
        Some(Resource::Connector) => {
            let base = dir
                .apps
                .connector
                .identifier_uri
                .clone()
                .unwrap_or_else(|| format!("api://{}", dir.apps.connector.app_id));
            format!("{base}/{name}")
        }
        Some(Resource::Graph) => format!("{}/{name}", crate::tokens::GRAPH_AUDIENCE),
        None => name.to_string(),
    }
}

pub(crate) fn parse_scopes(dir: &Directory, raw: &str) -> Result<Scopes, AadError> {
    let connector = dir.apps.connector.app_id.to_string();
    let connector_prefixes = [
        dir.apps.connector.identifier_uri.clone().unwrap_or_else(|| format!("api://{connector}")),
        format!("api://{connector}"),
        connector.clone(),
    ];
    let graph_prefixes = ["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"];
    let mut out = Scopes::default();
    for s in raw.split([' ', '+']).filter(|s| !s.is_empty()) {
        let lower = s.to_ascii_lowercase();
        if ["openid", "profile", "email", "offline_access"].contains(&lower.as_str()) {
            out.oidc.push(lower);
            continue;
        }
        let (resource, name) = if let Some(n) = connector_prefixes
            .iter()
            .find_map(|p| s.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix('/')))
        {
            (Resource::Connector, n)
        } else if let Some(n) =
            graph_prefixes.iter().find_map(|p| s.strip_prefix(p).and_then(|r| r.strip_prefix('/')))
        {
            (Resource::Graph, n)
        } else if !s.contains('/') && !s.contains(':') {
            // A bare scope name is a Graph scope, as in Entra.
            (Resource::Graph, s)
        } else {
            return Err(AadError::new(
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {s} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            ));
        };
        if name.is_empty() {
            return Err(error::invalid_scope(s));
        }
        if out.resource.is_some_and(|r| r != resource) {
            return Err(AadError::new(
                "invalid_scope",
                700022,
                "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope "
                    .to_string()
                    + raw
                    + " is not valid.",
            ));
        }
        if resource == Resource::Connector
            && name != ".default"
            && !dir.apps.connector.exposed_scopes.iter().any(|e| e == name)
        {
            return Err(error::invalid_scope(s));
        }
        out.resource = Some(resource);
        out.names.push(name.to_string());
    }
    Ok(out)
}

/// Checks tenant-wide consent of `client` for each scope: the granted names (with the
/// grant's casing), or AADSTS65001.
pub(crate) fn check_consent(
    tenant: &TenantDir,
    client: &fixtures::AppRegistration,
    resource: Resource,
    names: &[String],
) -> Result<Vec<String>, AadError> {
    let refuse = || error::consent_required(client.app_id, &client.display_name);
    let Some(granted) = tenant.granted(client.app_id, resource.grant()) else {
        return Err(refuse());
    };
    if names.iter().any(|n| n == ".default") {
        let all: Vec<String> = granted.into_iter().filter(|g| g != "offline_access").collect();
        if all.is_empty() {
            return Err(refuse());
        }
        return Ok(all);
    }
    names
        .iter()
        .map(|n| granted.iter().find(|g| g.eq_ignore_ascii_case(n)).cloned().ok_or_else(refuse))
        .collect()
}

/// Conditional Access on a sign-in, as Entra answers at the token endpoint.
pub(crate) fn check_ca(
    tenant: &TenantDir,
    user: &User,
    ctx: &SignInContext,
    resource_name: &str,
) -> Result<(), AadError> {
    let Some(p) = tenant.ca_violation(user, ctx) else { return Ok(()) };
    Err(match &p.control {
        CaControl::RequireMfa if user.mfa_registered => error::mfa_required(resource_name, p.id),
        CaControl::RequireMfa => error::mfa_enrollment_required(resource_name, p.id),
        CaControl::RequireCompliantDevice => error::device_not_compliant(),
        CaControl::AllowedIpRanges { .. } | CaControl::Block => error::ca_blocked(),
    })
}

/// Parses a `claims` parameter: (cp1 declared, MFA requested).
pub(crate) fn parse_claims(raw: Option<&str>) -> (bool, bool) {
    let Some(v) = raw.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()) else {
        return (false, false);
    };
    let at = &v["access_token"];
    let cp1 = at["xms_cc"]["values"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("cp1")));
    // A CA claims challenge (capolids / polids), an auth-context or amr request asks for a
    // stronger sign-in: the fake treats it as "perform MFA".
    let mfa = ["capolids", "polids", "acrs", "amr"].iter().any(|k| !at[k].is_null())
        || !v["id_token"]["amr"].is_null();
    (cp1, mfa)
}

// ─── /authorize ─────────────────────────────────────────────────────────────────────────

/// Does `given` match a registered redirect URI? Loopback URIs match on any port.
pub(crate) fn redirect_allowed(registered: &[String], given: &str) -> bool {
    let Ok(g) = url::Url::parse(given) else { return false };
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        let Ok(r) = url::Url::parse(r) else { return false };
        let loopback = matches!(r.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        loopback
            && r.scheme() == g.scheme()
            && r.host_str() == g.host_str()
            && r.path() == g.path()
            && r.query() == g.query()
    })
}

fn redirect_error(
    redirect_uri: &str,
    mode: &str,
    state: Option<&str>,
    err: &AadError,
    now: chrono::DateTime<chrono::Utc>,
    headers: &HeaderMap,
) -> Response {
    let trace = Uuid::new_v4().to_string();
    let corr = error::correlation_id(headers);
    let body = err.body(now, &trace, &corr);
    let mut params = vec![
        ("error", body.error.clone()),
        ("error_description", body.error_description.clone()),
        ("error_codes", err.code.to_string()),
        ("timestamp", body.timestamp.clone()),
        ("trace_id", trace),
        ("correlation_id", corr),
        ("error_uri", body.error_uri.clone()),
    ];
    if let Some(sub) = &err.suberror {
        params.push(("suberror", sub.clone()));
    }
    if let Some(c) = &err.claims {
        params.push(("claims", c.clone()));
    }
    if let Some(st) = state {
        params.push(("state", st.to_string()));
    }
    respond_to_redirect(redirect_uri, mode, &params)
}

fn respond_to_redirect(redirect_uri: &str, mode: &str, params: &[(&str, String)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    match mode {
        "fragment" => {
            let frag =
                url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            url.set_fragment(Some(&frag));
            found(url.as_str())
        }
        "form_post" => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                        html_escape(k),
                        html_escape(v)
                    )
                })
                .collect();
            Html(format!(
                "<html><head><title>Working...</title></head><body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}<noscript><input type=\"submit\" value=\"Continue\"/></noscript></form><script>document.forms[0].submit()</script></body></html>",
                html_escape(redirect_uri)
            ))
            .into_response()
        }
        _ => {
            url.query_pairs_mut().extend_pairs(params);
            found(url.as_str())
        }
    }
}

/// Entra answers `/authorize` with 302 Found.
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn authorize(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let mut p: HashMap<String, String> = HashMap::new();
    for (k, v) in &q {
        p.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let now = s.now();
    let resolved = resolve_tenant(&s.lock().dir, &tenant);
    let t = match resolved {
        Ok(t) => t,
        Err(e) => return e.render(now, &headers),
    };
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    if let Some(r) = apply_fault(&s, Endpoint::Authorize, t.id(), Some(&client_id), &headers).await
    {
        return r;
    }
    // Errors before the redirect URI is trusted are shown to the user, not redirected.
    let (app, dir_snapshot) = {
        let inner = s.lock();
        (inner.dir.app(&client_id).cloned(), inner.dir.clone())
    };
    let Some(app) = app else {
        return if client_id.is_empty() {
            error::missing_param("client_id").render(now, &headers)
        } else {
            error::app_not_found(&client_id, &tenant).render(now, &headers)
        };
    };
    let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
        return error::missing_param("redirect_uri").render(now, &headers);
    };
    if !redirect_allowed(&app.redirect_uris, &redirect_uri) {
        return AadError::new(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
                app.app_id
            ),
        )
        .render(now, &headers);
    }
    let mode = p.get("response_mode").cloned().unwrap_or_else(|| "query".into());
    let state = p.get("state").cloned();
    let fail =
        |e: AadError| redirect_error(&redirect_uri, &mode, state.as_deref(), &e, now, &headers);

    if p.get("response_type").map(String::as_str) != Some("code") {
        return fail(AadError::new(
            "unsupported_response_type",
            700054,
            "response_type must be 'code' for this application.",
        ));
    }
    let method = p.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into());
    let challenge = p.get("code_challenge").cloned();
    if !matches!(method.as_str(), "S256" | "plain") {
        return fail(error::invalid_request(
            501491,
            format!("Unsupported code_challenge_method '{method}'. Supported: S256, plain."),
        ));
    }
    if let Some(c) = &challenge
        && !(43..=128).contains(&c.len())
    {
        return fail(error::invalid_request(501491, "Invalid size of Code_Challenge parameter."));
    }
    let scopes = match parse_scopes(&dir_snapshot, p.get("scope").map(String::as_str).unwrap_or(""))
    {
        Ok(sc) if sc.resource.is_none() && sc.oidc.is_empty() => {
            return fail(error::invalid_scope(p.get("scope").map(String::as_str).unwrap_or("")));
        }
        Ok(sc) => sc,
        Err(e) => return fail(e),
    };
    let (cp1, claims_mfa) = parse_claims(p.get("claims").map(String::as_str));

    // No login_hint: the persona picker, for a person with a browser.
    let Some(hint) = p.get("login_hint").cloned() else {
        return persona_page(&dir_snapshot, t, &tenant, &q);
    };
    let Some((tdir, user)) = dir_snapshot.user_by_upn(&hint) else {
        return fail(AadError::new(
            "invalid_request",
            50034,
            format!(
                "The user account {hint} does not exist in the '{tenant}' directory. To sign into this application, the account must be added to the directory."
            ),
        ));
    };
    let journal_scopes = scopes.all(&dir_snapshot);
    let record = |code: Option<u32>, err: Option<String>| {
        let mut inner = s.lock();
        let seq = inner.journal.len() as u64 + 1;
        inner.journal.push(JournalEntry {
            seq,
            time: now,
            endpoint: "authorize".into(),
            grant: "authorize".into(),
            client_id: Some(client_id.clone()),
            tenant_id: Some(tdir.id),
            user_id: Some(user.oid),
            scopes: journal_scopes.clone(),
            uti: None,
            error_code: code,
            error: err,
            cp1,
        });
    };
    let refuse = |e: AadError, redirect_err: &str| {
        record(Some(e.code), Some(e.error.clone()));
        let mut e = e;
        e.error = redirect_err.into();
        fail(e)
    };
    if !t.admits(tdir) {
        return refuse(error::user_not_in_tenant(&user.upn, &tenant), "access_denied");
    }
    if !user.enabled {
        return refuse(error::user_disabled(), "access_denied");
    }
    // The sign-in context Conditional Access evaluates.
    let want_mfa = p.get("fake_mfa").is_some_and(|v| v == "true") || claims_mfa;
    let mut ctx = SignInContext::for_user(user, now);
    ctx.mfa = want_mfa && user.mfa_registered;
    if let Some(c) = p.get("fake_device_compliant") {
        ctx.compliant = c == "true";
    }
    ctx.ip = p
        .get("fake_ip")
        .cloned()
        .or_else(|| user.device.ip.clone())
        .or_else(|| connect.map(|c| c.0.0.ip().to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());

    if tdir.kind == TenantKind::Organization {
        if let Some(resource) = scopes.resource
            && let Err(e) = check_consent(tdir, &app, resource, &scopes.names)
        {
            return refuse(e, "consent_required");
        }
        if scopes.resource == Some(Resource::Connector) && !tdir.is_assigned(user) {
            let c = &dir_snapshot.apps.connector;
            return refuse(
                error::not_assigned(&user.upn, c.app_id, &c.display_name),
                "access_denied",
            );
        }
        let resource_name = match scopes.resource {
            Some(Resource::Graph) => crate::tokens::GRAPH_AUDIENCE.to_string(),
            _ => dir_snapshot.apps.connector.app_id.to_string(),
        };
        if let Err(e) = check_ca(tdir, user, &ctx, &resource_name) {
            let redirect_err = if matches!(e.code, 50076 | 50079) {
                "interaction_required"
            } else {
                "access_denied"
            };
            return refuse(e, redirect_err);
        }
    }
    let code = format!("1.A{}", crate::tokens::new_uti() + &crate::tokens::new_uti());
    {
        let mut inner = s.lock();
        inner.codes.insert(
            code.clone(),
            AuthCode {
                client_id: app.app_id,
                redirect_uri: redirect_uri.clone(),
                code_challenge: challenge,
                code_challenge_method: method,
                scopes: journal_scopes.clone(),
                tid: tdir.id,
                oid: user.oid,
                ctx,
                cp1,
                nonce: p.get("nonce").cloned(),
                issued: now,
                redeemed: false,
            },
        );
    }
    record(None, None);
    let mut params = vec![("code", code)];
    if let Some(st) = &state {
        params.push(("state", st.clone()));
    }
    params.push(("session_state", Uuid::new_v5(&tdir.id, user.oid.as_bytes()).to_string()));
    respond_to_redirect(&redirect_uri, &mode, &params)
}

/// The HTML persona picker: one link per persona that completes the flow.
fn persona_page(
    dir: &Directory,
    t: TenantRef,
    tenant_seg: &str,
    q: &[(String, String)],
) -> Response {
    let mut rows = String::new();
    for tenant in dir.tenants.iter().filter(|td| t.admits(td)) {
        rows.push_str(&format!("<h2>{}</h2><ul>", html_escape(&tenant.display_name)));
        for u in &tenant.users {
            let link = |mfa: bool| {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in q.iter().filter(|(k, _)| k != "login_hint" && k != "fake_mfa") {
                    ser.append_pair(k, v);
                }
                ser.append_pair("login_hint", &u.upn);
                if mfa {
                    ser.append_pair("fake_mfa", "true");
                }
                format!("/{}/oauth2/v2.0/authorize?{}", tenant_seg, ser.finish())
            };
            rows.push_str(&format!(
                "<li><a href=\"{}\">{}</a> ({}){} — <a href=\"{}\">with MFA</a></li>",
                html_escape(&link(false)),
                html_escape(&u.display_name),
                html_escape(&u.upn),
                if u.enabled { "" } else { " [disabled]" },
                html_escape(&link(true)),
            ));
        }
        rows.push_str("</ul>");
    }
    Html(format!(
        "<!doctype html><html><head><title>Sign in to your account (fake-entra)</title></head><body><h1>Pick an account</h1><p>fake-entra: a test identity provider. Choose a persona.</p>{rows}</body></html>"
    ))
    .into_response()
}

/// Access-token lifetime in seconds for a tenant (its policy, else 60–90 minutes).
pub(crate) fn access_lifetime(inner: &mut crate::state::Inner, tid: Uuid) -> i64 {
    let fixed =
        inner.dir.tenant_by_id(tid).and_then(|t| t.state.token_lifetime.access_token_minutes);
    match fixed {
        Some(m) => i64::from(m) * 60,
        None => inner.between(3600, 5400),
    }
}

/// CAE lifetime for cp1 clients on Graph: 20–28 hours.
pub(crate) fn cae_lifetime(inner: &mut crate::state::Inner) -> i64 {
    inner.between(20 * 3600, 28 * 3600)
}

pub(crate) const CODE_LIFETIME: Duration = Duration::minutes(10);
