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
//! * `control`: the `/_fake/…` control API; this file holds the builder and the handle with
//!   the control methods mirroring it, `mint` the handle's minting helpers and `sign_in` its
//!   in-process sign-in.
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
mod mint;
mod read_only;
mod routes;
mod sign_in;
mod state;
mod tenant;
mod throttle;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use fixtures::{CaPolicy, Clock, TokenLifetimePolicy, World};
use listener::{Conn, DroppableListener};
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
    state::{Directory, Inner, Shared},
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

/// The README's example ("Use it in your own tests"), compiled and run as a doc test so the
/// README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
