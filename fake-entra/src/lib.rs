//! A faithful fake of Microsoft Entra ID for offline tests: OIDC discovery (v2 and v1), JWKS
//! with per-key `issuer`, authorization code + PKCE, refresh tokens, client credentials and
//! On-Behalf-Of, with Entra's claims, error bodies (AADSTS codes), consent, assignment,
//! Conditional Access, per-user loop protection (AADSTS50196), a controllable clock, scripted
//! faults (errors, 429/503, latency, hangs, dropped connections), a journal, a CAE event feed
//! and a read-only expectation checked on drop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_entra::StartError> {
//! let entra = fake_entra::FakeEntra::builder().read_only_on_drop(true).start().await?;
//! let discovery = format!("{}/common/v2.0/.well-known/openid-configuration", entra.uri());
//! # let _ = discovery;
//! # Ok(())
//! # }
//! ```
//!
//! The signing keys shipped in `src/test_keys/` are TEST-ONLY: published private keys.
//!
//! # Layout
//! Dependencies point one way: `routes` (the router) uses everything below it, and nothing
//! imports from `routes`.
//! * `routes`: the router; `routes/{discovery,keys,authorize,token}.rs` are the handlers of
//!   OIDC and instance discovery, the JWKS, `/authorize` (and the persona picker) and the
//!   token endpoint.
//! * `grants`: the token endpoint's grants, `grants/{auth_code,refresh,obo,client_credentials}.rs`,
//!   with client authentication and token issuance shared in `grants/mod.rs`.
//! * `tenant`: what the `{tenant}` path segment resolves to, its issuer and endpoint segment.
//! * `consent`: scopes, consent, assignment and Conditional Access checks.
//! * `throttle`: the per-user token-request limit (AADSTS50196 with 429 and `Retry-After`).
//! * [`faults`]: scripted faults and the hook every endpoint calls; `listener`: the accept
//!   loop whose connections a fault can drop.
//! * `read_only`: which requests would change a real tenant, recorded for
//!   [`FakeEntra::verify_read_only`].
//! * `control`: the `/_fake/…` control API.
//! * [`keys`]: the key ring (test keys, generation, rotation) and JWKS entries.
//! * [`tokens`]: claim sets (v2 API tokens, v1 Graph tokens, ID tokens, app-only) and minting,
//!   including deliberately bad tokens ([`TokenSpec`], [`BadToken`]).
//! * [`error`]: Entra's error body and the AADSTS catalogue used.
//! * `state`: the directory and per-tenant admin state, codes, refresh tokens, revocations,
//!   token lifetimes.
//! * [`journal`]: the journal and CAE events.

pub mod error;
pub mod faults;
pub mod journal;
pub mod keys;
pub mod tokens;

mod consent;
mod control;
mod grants;
mod listener;
mod read_only;
mod routes;
mod state;
mod tenant;
mod throttle;

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fixtures::{CaPolicy, Clock, Device, TokenLifetimePolicy, User, WorkingHours, World};
use listener::{Conn, DroppableListener};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use control::{ConsentChange, ControlError, KeyInfo};
pub use error::ErrorBody;
pub use faults::{Endpoint, Fault, FaultKind};
pub use fixtures::GrantResource;
pub use grants::TokenResponse;
pub use journal::{EventFeed, EventType, IdentityEvent, JournalEntry};
pub use keys::{KeyState, Keys};
pub use read_only::MutatingRequest;
pub use routes::paths;
pub use state::JwksIssuer;
pub use throttle::UserRateLimit;
pub use tokens::{BadToken, HeaderTrick, TokenSpec};

use crate::{
    journal::EventType as Ev,
    keys::{KeyRing, KeyState as Ks},
    state::{Directory, Inner, Shared, SignInContext},
    tokens::Times,
};

/// Errors starting the fake.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
}

/// Builder for [`FakeEntra`].
#[must_use = "call `.start().await` to run the fake"]
#[derive(Debug, Default)]
pub struct FakeEntraBuilder {
    world: Option<Arc<World>>,
    clock: Option<Clock>,
    keys: Keys,
    seed: Option<u64>,
    listen: Option<SocketAddr>,
    base_url: Option<String>,
    advertise_pkce: bool,
    user_rate_limit: Option<UserRateLimit>,
    read_only_on_drop: bool,
}

impl FakeEntraBuilder {
    /// The world to serve (default: `fixtures::standard_world()`).
    pub fn world(mut self, world: Arc<World>) -> Self {
        self.world = Some(world);
        self
    }

    /// The shared clock (default: a fresh system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Where the signing keys come from (default: the TEST-ONLY keys).
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = keys;
        self
    }

    /// Seed for the random 60–90 minute and 20–28 hour lifetimes (deterministic tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Listen address (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Public base URL used in issuers and endpoints (default `http://{bound address}`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into().trim_end_matches('/').to_string());
        self
    }

    /// Add `code_challenge_methods_supported` to discovery (real Entra omits it).
    pub fn advertise_pkce(mut self, on: bool) -> Self {
        self.advertise_pkce = on;
        self
    }

    /// Refuse a user's token requests beyond `limit` with AADSTS50196, HTTP 429 and
    /// `Retry-After`, as Entra's loop protection does (default: no limit). Changeable later
    /// with [`FakeEntra::set_user_rate_limit`].
    pub fn user_rate_limit(mut self, limit: UserRateLimit) -> Self {
        self.user_rate_limit = Some(limit);
        self
    }

    /// Expect no mutating request: dropping the handle then runs
    /// [`FakeEntra::verify_read_only`] and panics, listing them, if any request would have
    /// changed a real tenant (default off). As with fake-graph's option of the same name, it
    /// stays quiet (and logs instead) when the thread is already panicking, so a failing test
    /// reports its own failure rather than aborting on a double panic.
    pub fn read_only_on_drop(mut self, on: bool) -> Self {
        self.read_only_on_drop = on;
        self
    }

    /// Binds and serves; the server stops when the handle is dropped. Like
    /// `FakeGraph::start`, a fake that cannot start is an error, never a panic.
    pub async fn start(self) -> Result<FakeEntra, StartError> {
        let addr = self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let base = self.base_url.unwrap_or_else(|| format!("http://{local}"));
        let world = self.world.unwrap_or_else(fixtures::standard_world);
        let inner = Inner {
            dir: Directory::from_world(&world),
            keys: KeyRing::load(&self.keys)?,
            codes: Default::default(),
            refresh: Default::default(),
            revoked_at: Default::default(),
            journal: vec![],
            events: vec![],
            faults: vec![],
            rng: self.seed.unwrap_or_else(|| Uuid::new_v4().as_u64_pair().0),
            advertise_pkce: self.advertise_pkce,
            jwks_issuer: JwksIssuer::default(),
            cae_tokens: true,
            user_rate_limit: self.user_rate_limit,
            user_requests: Default::default(),
            mutating: vec![],
        };
        let shared = Shared::new(inner, self.clock.unwrap_or_default(), base);
        let router = routes::router(shared.clone());
        let app = router.clone().into_make_service_with_connect_info::<Conn>();
        let stopping = shared.clone();
        tokio::spawn(async move {
            let serve = axum::serve(DroppableListener(listener), app)
                .with_graceful_shutdown(async move { stopping.stopped().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "fake-entra server stopped");
            }
        });
        Ok(FakeEntra { shared, addr: local, router, read_only_on_drop: self.read_only_on_drop })
    }
}

/// A running fake Entra ID. Dropping it stops the server.
pub struct FakeEntra {
    shared: Arc<Shared>,
    addr: SocketAddr,
    router: Router,
    /// Run [`FakeEntra::verify_read_only`] on drop.
    read_only_on_drop: bool,
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        let report = if self.read_only_on_drop { self.read_only_report() } else { None };
        // Ends the server (graceful shutdown) and every request a `Hang` fault holds.
        self.shared.stop();
        if let Some(report) = report {
            // A second panic while unwinding would abort the test binary and hide the first
            // failure: report it instead.
            if std::thread::panicking() {
                tracing::error!("{report}");
            } else {
                panic!("{report}");
            }
        }
    }
}

impl std::fmt::Debug for FakeEntra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEntra").field("uri", &self.shared.base).finish()
    }
}

impl FakeEntra {
    pub fn builder() -> FakeEntraBuilder {
        FakeEntraBuilder::default()
    }

    /// Base URL, without a trailing slash (the authority host in tests).
    pub fn uri(&self) -> String {
        self.shared.base.clone()
    }

    /// The bound socket address.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The shared clock.
    pub fn clock(&self) -> Clock {
        self.shared.clock.clone()
    }

    /// v2 issuer of a tenant: `{uri}/{tid}/v2.0`.
    pub fn issuer(&self, tid: Uuid) -> String {
        self.shared.issuer_v2(tid)
    }

    /// The templated issuer of `common`/`organizations`: `{uri}/{tenantid}/v2.0`.
    pub fn issuer_template(&self) -> String {
        format!("{}/{{tenantid}}/v2.0", self.shared.base)
    }

    /// `{uri}/common/discovery/v2.0/keys`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/common/discovery/v2.0/keys", self.shared.base)
    }

    /// `{uri}/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.base)
    }

    /// The tenant id for a GUID, domain or short name.
    pub fn tenant_id(&self, tenant: &str) -> Option<Uuid> {
        self.shared.lock().dir.tenant(tenant).map(|t| t.id)
    }

    /// `(tid, oid)` of a persona by UPN.
    pub fn persona(&self, upn: &str) -> Option<(Uuid, Uuid)> {
        self.shared.lock().dir.user_by_upn(upn).map(|(t, u)| (t.id, u.oid))
    }

    /// The connector's and the MCP client's app ids.
    pub fn connector_id(&self) -> Uuid {
        self.shared.lock().dir.apps.connector.app_id
    }

    pub fn mcp_client_id(&self) -> Uuid {
        self.shared.lock().dir.apps.mcp_client.app_id
    }

    // ─── Minting helpers ───────────────────────────────────────────────────────────────

    /// A valid v2 connector-audience token, as the auth-code flow would issue it.
    pub fn user_token(&self, tid: Uuid, oid: Uuid) -> String {
        self.mint(&TokenSpec::user(tid, oid))
    }

    /// A v1 Graph token as OBO would issue it (`nonce` header, `xms_cc` and 20–28 h when
    /// `cp1`).
    pub fn graph_token(&self, tid: Uuid, oid: Uuid, scopes: &[&str], cp1: bool) -> String {
        let now = self.shared.now();
        let mut inner = self.shared.lock();
        let user = lookup_user(&inner.dir, tid, oid);
        let ctx = SignInContext::for_user(&user, now);
        let life = if cp1 { inner.cae_lifetime() } else { inner.access_lifetime(tid) };
        let connector = inner.dir.apps.connector.clone();
        let claims = tokens::graph_user_claims(
            tid,
            &user,
            connector.app_id,
            &connector.display_name,
            "1",
            &scopes.join(" "),
            &ctx,
            cp1,
            Times::new(now, life),
            &tokens::new_uti(),
        );
        // Sign outside the state lock (the signature is the slow part).
        let key = inner.keys.active().clone();
        drop(inner);
        tokens::sign(&key, &claims, true, true)
    }

    /// Mints a token from a [`TokenSpec`], good or deliberately bad.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        let now = self.shared.now() + chrono::Duration::seconds(spec.shift_secs);
        let mut inner = self.shared.lock();
        let user = lookup_user(&inner.dir, spec.tid, spec.oid);
        let mut ctx = SignInContext::for_user(&user, now);
        ctx.mfa = spec.mfa;
        if let Some(c) = spec.compliant {
            ctx.compliant = c;
        }
        if let Some(ip) = &spec.ip {
            ctx.ip = ip.clone();
        }
        let life = spec.lifetime_secs.unwrap_or_else(|| inner.access_lifetime(spec.tid));
        let mut times = Times::new(now, life);
        match spec.bad {
            Some(BadToken::Expired) => {
                times = Times::new(now - chrono::Duration::seconds(life + 3600), life);
            }
            Some(BadToken::FutureNbf) => {
                times.nbf = times.iat + 1800;
            }
            Some(BadToken::FutureIat) => {
                times.iat += 1800;
            }
            Some(BadToken::IatAfterExp) => {
                times.iat += 30;
                times.exp = times.nbf + 10;
            }
            _ => {}
        }
        let connector = inner.dir.apps.connector.app_id;
        let azp = spec.azp.unwrap_or(inner.dir.apps.mcp_client.app_id);
        let scp = spec.scopes.clone().unwrap_or_else(|| vec!["access_as_user".into()]).join(" ");
        let issuer = self.shared.issuer_v2(spec.tid);
        let mut claims = match spec.bad {
            Some(BadToken::IdToken) => {
                tokens::id_token_claims(&issuer, spec.tid, &user, connector, None, &ctx, times)
            }
            _ => tokens::v2_user_claims(
                &issuer,
                spec.tid,
                &user,
                connector,
                azp,
                "0",
                &scp,
                &ctx,
                times,
                &tokens::new_uti(),
            ),
        };
        if let Some(m) = claims.as_object_mut() {
            match &spec.bad {
                Some(BadToken::WrongAudience) => {
                    m.insert("aud".into(), json!(tokens::GRAPH_AUDIENCE));
                }
                Some(BadToken::MismatchedIssuer { iss_tid }) => {
                    m.insert("iss".into(), json!(self.shared.issuer_v2(*iss_tid)));
                }
                Some(BadToken::AppOnly) => {
                    let sp = tokens::service_principal_id(spec.tid, azp).to_string();
                    for k in ["scp", "name", "preferred_username"] {
                        m.remove(k);
                    }
                    m.insert("roles".into(), json!(["access_as_application"]));
                    m.insert("idtyp".into(), json!("app"));
                    m.insert("oid".into(), json!(sp));
                    m.insert("sub".into(), json!(sp));
                    m.insert("azpacr".into(), json!("1"));
                }
                Some(BadToken::MissingScp) => {
                    m.remove("scp");
                }
                _ => {}
            }
            if let Some(aud) = &spec.audience {
                m.insert("aud".into(), json!(aud));
            }
            for (k, v) in &spec.extra {
                m.insert(k.clone(), v.clone());
            }
        }
        // Sign outside the state lock (the signature is the slow part).
        let (active, pending) = (inner.keys.active().clone(), inner.keys.pending().cloned());
        drop(inner);
        tokens::encode_with_defect(&claims, &active, pending.as_ref(), spec.bad.as_ref())
    }

    /// Runs `/authorize` (with `login_hint`) + PKCE S256 + code redemption through the
    /// router, in-process, and returns the token response or Entra's error body. `scopes`
    /// are passed as given (e.g. `api://{connector}/access_as_user`, `offline_access`).
    pub async fn sign_in(
        &self,
        upn: &str,
        client_id: Uuid,
        scopes: &[&str],
    ) -> Result<TokenResponse, ErrorBody> {
        self.sign_in_with(upn, client_id, scopes, &[]).await
    }

    /// [`Self::sign_in`] with extra `/authorize` parameters (`fake_mfa`, `fake_ip`,
    /// `fake_device_compliant`, `claims`).
    pub async fn sign_in_with(
        &self,
        upn: &str,
        client_id: Uuid,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, ErrorBody> {
        let (tenant, redirect, public, secret) = {
            let inner = self.shared.lock();
            let tenant = inner
                .dir
                .user_by_upn(upn)
                .map(|(t, _)| t.id.to_string())
                .unwrap_or_else(|| "common".into());
            let app = inner.dir.app(&client_id.to_string());
            let redirect = app
                .and_then(|a| a.redirect_uris.first().cloned())
                .map(|r| loopback_with_port(&r))
                .unwrap_or_else(|| "http://localhost:8400/callback".into());
            let public = app.is_none_or(|a| a.public_client);
            let secret = app.and_then(|a| a.client_secrets.first().cloned());
            (tenant, redirect, public, secret)
        };
        let verifier = format!("{}{}", tokens::new_uti(), tokens::new_uti());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = tokens::new_uti();
        let scope = scopes.join(" ");
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &client_id.to_string())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", &scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", upn);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        let uri = format!("/{tenant}/oauth2/v2.0/authorize?{}", q.finish());
        let resp = self.call(Request::get(uri).body(Body::empty())).await;
        let status = resp.0;
        let location = resp.1.unwrap_or_default();
        let body = resp.2;
        if !status.is_redirection() {
            return Err(serde_json::from_slice(&body)
                .unwrap_or_else(|_| local_error("authorize did not redirect")));
        }
        let url = url::Url::parse(&location).map_err(|_| local_error("bad redirect location"))?;
        let params: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        if let Some(err) = params.get("error") {
            return Err(ErrorBody {
                error: err.clone(),
                error_description: params.get("error_description").cloned().unwrap_or_default(),
                error_codes: params
                    .get("error_codes")
                    .and_then(|c| c.parse().ok())
                    .map(|c| vec![c])
                    .unwrap_or_default(),
                timestamp: params.get("timestamp").cloned().unwrap_or_default(),
                trace_id: params.get("trace_id").cloned().unwrap_or_default(),
                correlation_id: params.get("correlation_id").cloned().unwrap_or_default(),
                error_uri: params.get("error_uri").cloned().unwrap_or_default(),
                suberror: params.get("suberror").cloned(),
                claims: params.get("claims").cloned(),
            });
        }
        if params.get("state") != Some(&state) {
            return Err(local_error("state mismatch"));
        }
        let code = params.get("code").cloned().ok_or_else(|| local_error("no code in redirect"))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("client_id", &client_id.to_string())
            .append_pair("code", &code)
            .append_pair("redirect_uri", &redirect)
            .append_pair("code_verifier", &verifier)
            .append_pair("scope", &scope);
        if !public && let Some(sec) = &secret {
            form.append_pair("client_secret", sec);
        }
        let req = Request::post(format!("/{tenant}/oauth2/v2.0/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.finish()));
        let (status, _, body) = self.call(req).await;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|_| local_error("token response did not parse"))
        } else {
            Err(serde_json::from_slice(&body)
                .unwrap_or_else(|_| local_error("token error did not parse")))
        }
    }

    async fn call(
        &self,
        req: Result<Request<Body>, axum::http::Error>,
    ) -> (axum::http::StatusCode, Option<String>, Vec<u8>) {
        use tower::ServiceExt;
        let Ok(mut req) = req else { return (axum::http::StatusCode::BAD_REQUEST, None, vec![]) };
        let conn = Conn::in_process();
        req.extensions_mut().insert(ConnectInfo(conn.clone()));
        let Ok(resp) = self.router.clone().oneshot(req).await;
        if conn.drop.pulled() {
            // A `DropConnection` fault: a socket client would read no answer at all.
            let body = serde_json::to_vec(&local_error("connection dropped")).unwrap_or_default();
            return (axum::http::StatusCode::BAD_GATEWAY, None, body);
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get(axum::http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (status, location, body)
    }

    // ─── Control API (mirrors /_fake/…) ────────────────────────────────────────────────

    pub fn disable_user(&self, tenant: &str, user: &str) -> Result<(), ControlError> {
        control::set_user_enabled(&self.shared, tenant, user, false)
    }

    pub fn enable_user(&self, tenant: &str, user: &str) -> Result<(), ControlError> {
        control::set_user_enabled(&self.shared, tenant, user, true)
    }

    /// Revokes every refresh token and session of the user (`sessionsRevoked` event).
    pub fn revoke_sessions(&self, tenant: &str, user: &str) -> Result<(), ControlError> {
        control::revoke(&self.shared, tenant, user, Ev::SessionsRevoked)
    }

    /// A password reset: revokes sessions too (`passwordReset` event).
    pub fn reset_password(&self, tenant: &str, user: &str) -> Result<(), ControlError> {
        control::revoke(&self.shared, tenant, user, Ev::PasswordReset)
    }

    /// Grants `scopes` of `resource` to `client` tenant-wide (admin consent).
    pub fn grant_consent(
        &self,
        tenant: &str,
        client: Uuid,
        resource: GrantResource,
        scopes: &[&str],
    ) -> Result<(), ControlError> {
        control::grant_consent(
            &self.shared,
            tenant,
            ConsentChange {
                client_id: Some(client),
                resource: Some(resource),
                scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            },
        )
    }

    /// Revokes `scopes` of `resource` from `client`.
    pub fn revoke_consent(
        &self,
        tenant: &str,
        client: Uuid,
        resource: GrantResource,
        scopes: &[&str],
    ) -> Result<(), ControlError> {
        control::revoke_consent(
            &self.shared,
            tenant,
            ConsentChange {
                client_id: Some(client),
                resource: Some(resource),
                scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            },
        )
    }

    /// Revokes every consent grant of the tenant.
    pub fn revoke_all_consent(&self, tenant: &str) -> Result<(), ControlError> {
        control::revoke_consent(&self.shared, tenant, ConsentChange::default())
    }

    pub fn set_assignment_required(
        &self,
        tenant: &str,
        required: bool,
    ) -> Result<(), ControlError> {
        control::set_assignment_required(&self.shared, tenant, required)
    }

    /// Assigns a user (UPN or object id) or a group (display name) to the connector.
    pub fn assign(&self, tenant: &str, principal: &str) -> Result<(), ControlError> {
        control::assign(&self.shared, tenant, principal, true)
    }

    pub fn unassign(&self, tenant: &str, principal: &str) -> Result<(), ControlError> {
        control::assign(&self.shared, tenant, principal, false)
    }

    pub fn add_ca_policy(&self, tenant: &str, policy: CaPolicy) -> Result<(), ControlError> {
        control::add_ca_policy(&self.shared, tenant, policy)
    }

    /// Removes a CA policy by id or display name.
    pub fn remove_ca_policy(&self, tenant: &str, id: &str) -> Result<(), ControlError> {
        control::remove_ca_policy(&self.shared, tenant, id)
    }

    pub fn set_token_lifetime(
        &self,
        tenant: &str,
        policy: TokenLifetimePolicy,
    ) -> Result<(), ControlError> {
        control::set_token_lifetime(&self.shared, tenant, policy)
    }

    /// What the published keys say their `issuer` is (defence-in-depth scenarios).
    pub fn set_jwks_issuer(&self, issuer: JwksIssuer) {
        self.shared.lock().jwks_issuer = issuer;
    }

    /// On (default), a client declaring `cp1` gets 20–28 h CAE Graph tokens from OBO; off,
    /// it gets the tenant's ordinary access-token lifetime, as where CAE is disabled.
    pub fn set_cae_tokens(&self, on: bool) {
        self.shared.lock().cae_tokens = on;
    }

    /// How many times the JWKS was served (every `…/discovery/v2.0/keys` request that got
    /// keys), from the journal.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.lock().journal.iter().filter(|e| e.endpoint == "keys").count()
    }

    /// Publishes a new key, makes it active and retires the old active key; the new kid.
    pub fn rotate_keys(&self) -> Result<String, ControlError> {
        control::rotate(&self.shared)
    }

    /// Publishes a new key (not yet signing); its kid.
    pub fn add_key(&self) -> Result<String, ControlError> {
        control::add_key(&self.shared)
    }

    pub fn activate_key(&self, kid: &str) -> Result<(), ControlError> {
        control::set_key_state(&self.shared, kid, Ks::Active)
    }

    pub fn retire_key(&self, kid: &str) -> Result<(), ControlError> {
        control::set_key_state(&self.shared, kid, Ks::Retired)
    }

    pub fn keys(&self) -> Vec<KeyInfo> {
        control::key_list(&self.shared)
    }

    /// The kid of the active signing key.
    pub fn active_kid(&self) -> String {
        self.shared.lock().keys.active().kid.clone()
    }

    /// The kid of the pending (unpublished) key, if any.
    pub fn pending_kid(&self) -> Option<String> {
        self.shared.lock().keys.pending().map(|k| k.kid.clone())
    }

    pub fn advance_clock(&self, by: std::time::Duration) {
        self.shared.clock.advance(by);
    }

    /// Sets or lifts (`None`) the per-user token-request limit (AADSTS50196 beyond it).
    pub fn set_user_rate_limit(&self, limit: Option<UserRateLimit>) {
        let mut inner = self.shared.lock();
        inner.user_rate_limit = limit;
        inner.user_requests.clear();
    }

    /// Requests that would have changed a real tenant (see [`FakeEntraBuilder::read_only_on_drop`]).
    pub fn mutating_requests(&self) -> Vec<MutatingRequest> {
        self.shared.lock().mutating.clone()
    }

    /// Panics, listing every mutating request seen so far (method, path, status), if there
    /// was any. Called on drop when the builder asked for
    /// [`FakeEntraBuilder::read_only_on_drop`].
    #[track_caller]
    pub fn verify_read_only(&self) {
        if let Some(report) = self.read_only_report() {
            panic!("{report}");
        }
    }

    /// The failure message of [`FakeEntra::verify_read_only`], if it fails.
    fn read_only_report(&self) -> Option<String> {
        read_only::report(&self.shared.lock().mutating)
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.lock().journal.clone()
    }

    pub fn clear_journal(&self) {
        self.shared.lock().journal.clear();
    }

    /// The CAE identity-event feed after `seq`.
    pub fn events(&self, after: u64) -> EventFeed {
        control::events(&self.shared, after)
    }

    /// The id of a tenant given by GUID, domain or short name, or an error.
    pub fn require_tenant(&self, tenant: &str) -> Result<Uuid, ControlError> {
        control::tenant_uuid(&self.shared, tenant)
    }
}

/// A registered loopback redirect URI with a concrete port (Entra accepts any port).
fn loopback_with_port(r: &str) -> String {
    match url::Url::parse(r) {
        Ok(mut u)
            if matches!(u.host_str(), Some("localhost" | "127.0.0.1")) && u.port().is_none() =>
        {
            let _ = u.set_port(Some(8400));
            u.to_string()
        }
        _ => r.to_string(),
    }
}

fn local_error(msg: &str) -> ErrorBody {
    ErrorBody {
        error: "fake_entra_client_error".into(),
        error_description: msg.into(),
        error_codes: vec![],
        timestamp: String::new(),
        trace_id: String::new(),
        correlation_id: String::new(),
        error_uri: String::new(),
        suberror: None,
        claims: None,
    }
}

/// The user, or a placeholder for an unknown `(tid, oid)` (minting never fails).
fn lookup_user(dir: &Directory, tid: Uuid, oid: Uuid) -> User {
    dir.tenant_by_id(tid).and_then(|t| t.user(oid)).cloned().unwrap_or_else(|| User {
        oid,
        upn: format!("{oid}@unknown.invalid"),
        mail: format!("{oid}@unknown.invalid"),
        display_name: "Unknown User".into(),
        given_name: None,
        surname: None,
        job_title: None,
        persona: None,
        time_zone: "UTC".into(),
        working_hours: WorkingHours::default(),
        enabled: true,
        mfa_registered: true,
        groups: vec![],
        directory_roles: vec![],
        device: Device { compliant: true, ip: None },
    })
}
