//! OIDC discovery (v2 and v1) and MSAL instance discovery (reference/entra.md §2.1, §2.2,
//! §2.5), with the headers Entra sends on metadata, and the tenant check and fault hook that
//! the metadata endpoints (discovery, keys) share.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    faults::{Endpoint, apply_fault},
    listener::{Conn, Peer, conn_of},
    state::AppState,
    tenant::{TenantRef, resolve_tenant, seg_and_issuer},
};

/// The caching, CORS and request-id headers of Entra's metadata answers.
pub(super) fn discovery_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, private"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    resp
}

/// The tenant a metadata request (discovery, keys) names, after any scripted fault for that
/// endpoint: an unknown tenant or a fault is the finished response.
pub(super) async fn tenant_for_metadata(
    s: &AppState,
    tenant: &str,
    endpoint: Endpoint,
    conn: &Conn,
    headers: &HeaderMap,
) -> Result<TenantRef, Response> {
    let resolved = resolve_tenant(&s.lock().dir, tenant);
    let t = resolved.map_err(|e| e.render(s.now(), headers))?;
    match apply_fault(s.as_ref(), endpoint, t.id(), None, conn, headers).await {
        Some(fault) => Err(fault),
        None => Ok(t),
    }
}

pub(super) async fn discovery_v2(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Discovery, &conn_of(peer), &headers)
        .await
    {
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

pub(super) async fn discovery_v1(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Discovery, &conn_of(peer), &headers)
        .await
    {
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

pub(super) async fn instance_discovery(
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
