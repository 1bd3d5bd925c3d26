//! The token endpoint (reference/entra.md §5.2–§7): parses the form, resolves the tenant,
//! applies scripted faults, hands the request to its grant, applies the per-user loop
//! protection, journals the outcome and signs the tokens outside the state lock.

use std::collections::HashMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{
    error,
    faults::{Endpoint, apply_fault},
    grants::{self, Trail},
    journal::JournalEntry,
    listener::{Peer, conn_of},
    state::AppState,
    tenant::resolve_tenant,
    throttle,
};

pub(super) async fn token(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    peer: Peer,
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
    let conn = conn_of(peer);
    if let Some(r) =
        apply_fault(s.as_ref(), Endpoint::Token, t.id(), client_id.as_deref(), &conn, &headers)
            .await
    {
        return r;
    }
    let mut trail = Trail {
        grant: p.get("grant_type").cloned().unwrap_or_default(),
        client_id: client_id.clone(),
        tenant_id: t.id(),
        ..Trail::default()
    };
    let mut inner = s.lock();
    let mut result = grants::handle(&s, &mut inner, t, &tenant, &p, basic, &mut trail, now);
    // Loop protection counts every request that names a user, granted or refused.
    if let (Some(tid), Some(oid)) = (trail.tenant_id, trail.user_id) {
        let limit = inner.user_rate_limit;
        if let Err(e) = throttle::admit(limit, &mut inner.user_requests, (tid, oid), now) {
            if let Ok(issued) = &result
                && let Some(rt) = &issued.resp.refresh_token
            {
                // Never handed out: forget it.
                inner.refresh.remove(rt);
            }
            result = Err(e);
        }
    }
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

/// HTTP Basic client authentication: `(client_id, client_secret)`, form-decoded as RFC 6749
/// §2.3.1 asks.
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
