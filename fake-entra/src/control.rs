//! The control API under `/_fake/` (JSON), mirrored by methods on [`crate::FakeEntra`].
//!
//! | Method and path | Body | Effect |
//! |---|---|---|
//! | `POST /_fake/tenants/{t}/users/{u}/disable` · `/enable` | — | user enabled flag (`userDisabled` event) |
//! | `POST /_fake/tenants/{t}/users/{u}/revoke-sessions` | — | revoke refresh tokens and sessions (`sessionsRevoked`) |
//! | `POST /_fake/tenants/{t}/users/{u}/reset-password` | — | same effect, `passwordReset` event |
//! | `POST /_fake/tenants/{t}/consent/grant` | `{"clientId","resource","scopes"}` | add scopes to the grant |
//! | `POST /_fake/tenants/{t}/consent/revoke` | `{"clientId"?,"resource"?,"scopes"?}` | remove scopes (all when absent) |
//! | `PUT /_fake/tenants/{t}/assignment-required` | `{"required":bool}` | |
//! | `POST /_fake/tenants/{t}/assignments` · `DELETE …/assignments/{principal}` | `{"principal"}` | UPN or group name |
//! | `POST /_fake/tenants/{t}/ca-policies` · `DELETE …/ca-policies/{id}` | a `CaPolicy` | |
//! | `PUT /_fake/tenants/{t}/token-lifetime` | a `TokenLifetimePolicy` | |
//! | `POST /_fake/keys/rotate` · `/keys/add` · `/keys/{kid}/activate` · `/keys/{kid}/retire` · `GET /_fake/keys` | — | |
//! | `POST /_fake/clock/advance` | `{"seconds":n}` | moves the shared clock |
//! | `POST /_fake/faults` · `DELETE /_fake/faults` | a `Fault` | |
//! | `GET /_fake/journal` · `DELETE /_fake/journal` | — | |
//! | `GET /_fake/events?after={seq}` | — | the CAE feed |
//! | `PUT /_fake/user-rate-limit` · `DELETE` | `{"maxRequests","windowSeconds"}` | per-user AADSTS50196 limit |
//! | `GET /_fake/mutating-requests` | — | requests that would change a tenant |
//!
//! `{t}` is a tenant GUID, verified domain or short name; `{u}` an object id or UPN.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use fixtures::{CaPolicy, ConsentGrant, GrantResource, TokenLifetimePolicy};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    faults::Fault,
    journal::{EventFeed, EventType, IdentityEvent, JournalEntry},
    keys::{KeyState, SigningKey},
    state::{AppState, Shared},
    throttle::UserRateLimit,
};

/// A refused control request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown tenant '{0}'")]
    UnknownTenant(String),
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    #[error("unknown key '{0}'")]
    UnknownKey(String),
    #[error("unknown CA policy '{0}'")]
    UnknownPolicy(String),
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::NOT_FOUND,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

fn tenant_id(s: &Shared, t: &str) -> Result<Uuid, ControlError> {
    s.lock().dir.tenant(t).map(|t| t.id).ok_or_else(|| ControlError::UnknownTenant(t.into()))
}

fn user_ids(s: &Shared, t: &str, u: &str) -> Result<(Uuid, Uuid), ControlError> {
    let inner = s.lock();
    let tenant = inner.dir.tenant(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    let user = tenant.find_user(u).ok_or_else(|| ControlError::UnknownUser(u.into()))?;
    Ok((tenant.id, user.oid))
}

fn push_event(s: &Shared, kind: EventType, tid: Uuid, oid: Uuid) {
    let now = s.now();
    let mut inner = s.lock();
    let seq = inner.events.len() as u64 + 1;
    inner.events.push(IdentityEvent { seq, kind, tenant_id: tid, user_id: oid, time: now });
}

pub(crate) fn set_user_enabled(
    s: &Shared,
    t: &str,
    u: &str,
    enabled: bool,
) -> Result<(), ControlError> {
    let (tid, oid) = user_ids(s, t, u)?;
    {
        let mut inner = s.lock();
        if let Some(user) = inner.dir.tenant_mut(&tid.to_string()).and_then(|t| t.user_mut(oid)) {
            user.enabled = enabled;
        }
    }
    if !enabled {
        push_event(s, EventType::UserDisabled, tid, oid);
    }
    Ok(())
}

/// The first instant of the clock's next millisecond. Tokens carry their issue time in
/// milliseconds and a revocation covers tokens issued strictly before it; starting it on a
/// fresh millisecond revokes a token minted just before the call (same millisecond, which
/// fast signing makes common) and spares one minted just after. The clock follows the system
/// time, so this waits under a millisecond; the bound guards against a clock stepped back.
fn next_millisecond(s: &Shared) -> chrono::DateTime<chrono::Utc> {
    let start = s.now().timestamp_millis();
    for _ in 0..100 {
        let now = s.now();
        if now.timestamp_millis() > start {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    s.now()
}

pub(crate) fn revoke(s: &Shared, t: &str, u: &str, kind: EventType) -> Result<(), ControlError> {
    let (tid, oid) = user_ids(s, t, u)?;
    let now = next_millisecond(s);
    s.lock().revoked_at.insert((tid, oid), now);
    push_event(s, kind, tid, oid);
    Ok(())
}

/// Body of a consent change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentChange {
    /// Client app id; default the connector.
    #[serde(default)]
    pub client_id: Option<Uuid>,
    /// `graph` (default) or `connector`.
    #[serde(default)]
    pub resource: Option<GrantResource>,
    /// Scopes; on revoke, absent means all.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

pub(crate) fn grant_consent(s: &Shared, t: &str, c: ConsentChange) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let connector = inner.dir.apps.connector.app_id;
    let client = c.client_id.unwrap_or(connector);
    let resource = c.resource.unwrap_or(GrantResource::Graph);
    let scopes = c.scopes.unwrap_or_default();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    if !tenant.state.service_principals.contains(&client) {
        tenant.state.service_principals.push(client);
    }
    match tenant
        .state
        .consent_grants
        .iter_mut()
        .find(|g| g.client_app_id == client && g.resource == resource)
    {
        Some(g) => {
            for sc in scopes {
                if !g.scopes.iter().any(|x| x.eq_ignore_ascii_case(&sc)) {
                    g.scopes.push(sc);
                }
            }
        }
        None => tenant.state.consent_grants.push(ConsentGrant {
            client_app_id: client,
            resource,
            scopes,
        }),
    }
    Ok(())
}

pub(crate) fn revoke_consent(s: &Shared, t: &str, c: ConsentChange) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    let matches = |g: &ConsentGrant| {
        c.client_id.is_none_or(|id| id == g.client_app_id)
            && c.resource.is_none_or(|r| r == g.resource)
    };
    match &c.scopes {
        None => tenant.state.consent_grants.retain(|g| !matches(g)),
        Some(scopes) => {
            for g in tenant.state.consent_grants.iter_mut().filter(|g| matches(g)) {
                g.scopes.retain(|x| !scopes.iter().any(|r| r.eq_ignore_ascii_case(x)));
            }
        }
    }
    Ok(())
}

pub(crate) fn set_assignment_required(
    s: &Shared,
    t: &str,
    required: bool,
) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    tenant.state.assignment_required = required;
    Ok(())
}

pub(crate) fn assign(s: &Shared, t: &str, principal: &str, on: bool) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    if on {
        if !tenant.state.assigned.iter().any(|p| p.eq_ignore_ascii_case(principal)) {
            tenant.state.assigned.push(principal.to_string());
        }
    } else {
        tenant.state.assigned.retain(|p| !p.eq_ignore_ascii_case(principal));
    }
    Ok(())
}

pub(crate) fn add_ca_policy(s: &Shared, t: &str, p: CaPolicy) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    tenant.state.conditional_access.retain(|x| x.id != p.id);
    tenant.state.conditional_access.push(p);
    Ok(())
}

pub(crate) fn remove_ca_policy(s: &Shared, t: &str, id: &str) -> Result<(), ControlError> {
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    let before = tenant.state.conditional_access.len();
    tenant
        .state
        .conditional_access
        .retain(|x| x.id.to_string() != id && !x.display_name.eq_ignore_ascii_case(id));
    if tenant.state.conditional_access.len() == before {
        return Err(ControlError::UnknownPolicy(id.into()));
    }
    Ok(())
}

pub(crate) fn set_token_lifetime(
    s: &Shared,
    t: &str,
    p: TokenLifetimePolicy,
) -> Result<(), ControlError> {
    if let Some(m) = p.access_token_minutes
        && !(10..=1440).contains(&m)
    {
        return Err(ControlError::Invalid("access_token_minutes must be within 10..=1440".into()));
    }
    let mut inner = s.lock();
    let tenant = inner.dir.tenant_mut(t).ok_or_else(|| ControlError::UnknownTenant(t.into()))?;
    tenant.state.token_lifetime = p;
    Ok(())
}

/// A summary of one key for the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub state: String,
}

pub(crate) fn key_list(s: &Shared) -> Vec<KeyInfo> {
    s.lock()
        .keys
        .all()
        .iter()
        .map(|k| KeyInfo { kid: k.kid.clone(), state: format!("{:?}", k.state).to_lowercase() })
        .collect()
}

/// Adds a key (the first pending test key, else a generated one) as published; its kid.
pub(crate) fn add_key(s: &Shared) -> Result<String, ControlError> {
    {
        let mut inner = s.lock();
        if let Some(kid) = inner.keys.pending().map(|k| k.kid.clone()) {
            inner.keys.set_state(&kid, KeyState::Published);
            return Ok(kid);
        }
    }
    // Generation is slow; do it without the lock.
    let key = SigningKey::generate(KeyState::Published)
        .map_err(|e| ControlError::Invalid(e.to_string()))?;
    Ok(s.lock().keys.add(key))
}

pub(crate) fn set_key_state(s: &Shared, kid: &str, state: KeyState) -> Result<(), ControlError> {
    if s.lock().keys.set_state(kid, state) {
        Ok(())
    } else {
        Err(ControlError::UnknownKey(kid.into()))
    }
}

/// Rotation: publish a new key, make it active, retire the previously active one.
pub(crate) fn rotate(s: &Shared) -> Result<String, ControlError> {
    let old = s.lock().keys.active().kid.clone();
    let new = add_key(s)?;
    set_key_state(s, &new, KeyState::Active)?;
    set_key_state(s, &old, KeyState::Retired)?;
    Ok(new)
}

pub(crate) fn events(s: &Shared, after: u64) -> EventFeed {
    let inner = s.lock();
    EventFeed {
        events: inner.events.iter().filter(|e| e.seq > after).cloned().collect(),
        last_seq: inner.events.last().map(|e| e.seq).unwrap_or(0),
    }
}

// ─── HTTP ───────────────────────────────────────────────────────────────────────────────

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/_fake/tenants/{t}/users/{u}/{action}", post(user_action))
        .route("/_fake/tenants/{t}/consent/grant", post(http_grant))
        .route("/_fake/tenants/{t}/consent/revoke", post(http_revoke))
        .route("/_fake/tenants/{t}/assignment-required", put(http_assignment_required))
        .route("/_fake/tenants/{t}/assignments", post(http_assign))
        .route("/_fake/tenants/{t}/assignments/{p}", delete(http_unassign))
        .route("/_fake/tenants/{t}/ca-policies", post(http_add_ca))
        .route("/_fake/tenants/{t}/ca-policies/{id}", delete(http_remove_ca))
        .route("/_fake/tenants/{t}/token-lifetime", put(http_lifetime))
        .route("/_fake/keys", get(http_keys))
        .route("/_fake/keys/rotate", post(http_rotate))
        .route("/_fake/keys/add", post(http_add_key))
        .route("/_fake/keys/{kid}/{action}", post(http_key_action))
        .route("/_fake/clock/advance", post(http_advance))
        .route("/_fake/faults", post(http_add_fault).delete(http_clear_faults))
        .route("/_fake/journal", get(http_journal).delete(http_clear_journal))
        .route("/_fake/events", get(http_events))
        .route("/_fake/user-rate-limit", put(http_set_rate_limit).delete(http_clear_rate_limit))
        .route("/_fake/mutating-requests", get(http_mutating))
}

type R = Result<Response, ControlError>;

fn ok() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn user_action(
    State(s): State<AppState>,
    Path((t, u, action)): Path<(String, String, String)>,
) -> R {
    match action.as_str() {
        "disable" => set_user_enabled(&s, &t, &u, false)?,
        "enable" => set_user_enabled(&s, &t, &u, true)?,
        "revoke-sessions" => revoke(&s, &t, &u, EventType::SessionsRevoked)?,
        "reset-password" => revoke(&s, &t, &u, EventType::PasswordReset)?,
        other => return Err(ControlError::Invalid(format!("unknown user action '{other}'"))),
    }
    Ok(ok())
}

async fn http_grant(
    State(s): State<AppState>,
    Path(t): Path<String>,
    Json(c): Json<ConsentChange>,
) -> R {
    grant_consent(&s, &t, c).map(|_| ok())
}

async fn http_revoke(
    State(s): State<AppState>,
    Path(t): Path<String>,
    body: Option<Json<ConsentChange>>,
) -> R {
    revoke_consent(&s, &t, body.map(|b| b.0).unwrap_or_default()).map(|_| ok())
}

#[derive(Deserialize)]
struct Required {
    required: bool,
}

async fn http_assignment_required(
    State(s): State<AppState>,
    Path(t): Path<String>,
    Json(r): Json<Required>,
) -> R {
    set_assignment_required(&s, &t, r.required).map(|_| ok())
}

#[derive(Deserialize)]
struct Principal {
    principal: String,
}

async fn http_assign(
    State(s): State<AppState>,
    Path(t): Path<String>,
    Json(p): Json<Principal>,
) -> R {
    assign(&s, &t, &p.principal, true).map(|_| ok())
}

async fn http_unassign(State(s): State<AppState>, Path((t, p)): Path<(String, String)>) -> R {
    assign(&s, &t, &p, false).map(|_| ok())
}

async fn http_add_ca(
    State(s): State<AppState>,
    Path(t): Path<String>,
    Json(p): Json<CaPolicy>,
) -> R {
    add_ca_policy(&s, &t, p).map(|_| ok())
}

async fn http_remove_ca(State(s): State<AppState>, Path((t, id)): Path<(String, String)>) -> R {
    remove_ca_policy(&s, &t, &id).map(|_| ok())
}

async fn http_lifetime(
    State(s): State<AppState>,
    Path(t): Path<String>,
    Json(p): Json<TokenLifetimePolicy>,
) -> R {
    set_token_lifetime(&s, &t, p).map(|_| ok())
}

async fn http_keys(State(s): State<AppState>) -> Json<Vec<KeyInfo>> {
    Json(key_list(&s))
}

async fn http_rotate(State(s): State<AppState>) -> R {
    rotate(&s).map(|kid| Json(json!({"kid": kid})).into_response())
}

async fn http_add_key(State(s): State<AppState>) -> R {
    add_key(&s).map(|kid| Json(json!({"kid": kid})).into_response())
}

async fn http_key_action(
    State(s): State<AppState>,
    Path((kid, action)): Path<(String, String)>,
) -> R {
    let state = match action.as_str() {
        "activate" => KeyState::Active,
        "retire" => KeyState::Retired,
        "publish" => KeyState::Published,
        other => return Err(ControlError::Invalid(format!("unknown key action '{other}'"))),
    };
    set_key_state(&s, &kid, state).map(|_| ok())
}

#[derive(Deserialize)]
struct Advance {
    seconds: u64,
}

async fn http_advance(State(s): State<AppState>, Json(a): Json<Advance>) -> Response {
    s.clock.advance(std::time::Duration::from_secs(a.seconds));
    Json(json!({"now": s.now()})).into_response()
}

async fn http_add_fault(State(s): State<AppState>, Json(f): Json<Fault>) -> Response {
    s.lock().faults.push(f);
    ok()
}

async fn http_clear_faults(State(s): State<AppState>) -> Response {
    s.lock().faults.clear();
    ok()
}

async fn http_journal(State(s): State<AppState>) -> Json<Vec<JournalEntry>> {
    Json(s.lock().journal.clone())
}

async fn http_clear_journal(State(s): State<AppState>) -> Response {
    s.lock().journal.clear();
    ok()
}

async fn http_events(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> R {
    let after = match q.get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ControlError::Invalid(format!("after must be a number, got '{a}'")))?,
    };
    Ok(Json(events(&s, after)).into_response())
}

pub(crate) fn tenant_uuid(s: &Shared, t: &str) -> Result<Uuid, ControlError> {
    tenant_id(s, t)
}

async fn http_set_rate_limit(State(s): State<AppState>, Json(limit): Json<UserRateLimit>) -> R {
    if limit.window_seconds == 0 {
        return Err(ControlError::Invalid("windowSeconds must be at least 1".into()));
    }
    let mut inner = s.lock();
    inner.user_rate_limit = Some(limit);
    inner.user_requests.clear();
    Ok(ok())
}

async fn http_clear_rate_limit(State(s): State<AppState>) -> Response {
    let mut inner = s.lock();
    inner.user_rate_limit = None;
    inner.user_requests.clear();
    ok()
}

async fn http_mutating(State(s): State<AppState>) -> Response {
    Json(s.lock().mutating.clone()).into_response()
}
