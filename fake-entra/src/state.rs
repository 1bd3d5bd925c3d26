//! The fake's mutable state: the directory (tenants, users, groups, apps and per-tenant admin
//! state copied from the fixture world), issued codes and refresh tokens, revocations, the
//! journal, the CAE event feed and scripted faults.
//!
//! Everything sits behind one `std::sync::Mutex`; no handler holds it across an `.await`.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use fixtures::{
    Apps, CaControl, CaPolicy, CaScope, Clock, GrantResource, Tenant, TenantKind, TenantState,
    User, World,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    faults::{Endpoint, Fault, FaultHost, FaultKind},
    journal::{IdentityEvent, JournalEntry},
    keys::KeyRing,
};

/// One tenant of the directory, without its content (fake-graph owns content).
#[derive(Debug, Clone)]
pub struct TenantDir {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub kind: TenantKind,
    pub domains: Vec<String>,
    pub users: Vec<User>,
    pub state: TenantState,
}

impl TenantDir {
    fn from_tenant(t: &Tenant) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            kind: t.kind,
            domains: t.domains.clone(),
            users: t.users.clone(),
            state: t.state.clone(),
        }
    }

    pub fn user(&self, oid: Uuid) -> Option<&User> {
        self.users.iter().find(|u| u.oid == oid)
    }

    /// A user by object id or (case-insensitive) UPN.
    pub fn find_user(&self, key: &str) -> Option<&User> {
        match Uuid::parse_str(key) {
            Ok(oid) => self.user(oid),
            Err(_) => self.users.iter().find(|u| u.upn.eq_ignore_ascii_case(key)),
        }
    }

    pub fn user_mut(&mut self, oid: Uuid) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.oid == oid)
    }

    /// Whether `user` is in scope of a CA policy or an assignment list entry.
    fn principal_matches(user: &User, principal: &str) -> bool {
        user.upn.eq_ignore_ascii_case(principal)
            || user.oid.to_string().eq_ignore_ascii_case(principal)
            || user.groups.iter().any(|g| g.eq_ignore_ascii_case(principal))
    }

    /// Assignment: `true` when the user may get tokens involving the connector.
    pub fn is_assigned(&self, user: &User) -> bool {
        !self.state.assignment_required
            || self.state.assigned.iter().any(|p| Self::principal_matches(user, p))
    }

    /// Scopes granted tenant-wide to `client` on `resource`.
    pub fn granted(&self, client: Uuid, resource: GrantResource) -> Option<Vec<String>> {
        let mut found = None::<Vec<String>>;
        for g in &self.state.consent_grants {
            if g.client_app_id == client && g.resource == resource {
                found.get_or_insert_with(Vec::new).extend(g.scopes.iter().cloned());
            }
        }
        found
    }

    /// The first enabled CA policy that the sign-in does not satisfy.
    pub fn ca_violation(&self, user: &User, ctx: &SignInContext) -> Option<&CaPolicy> {
        self.state.conditional_access.iter().filter(|p| p.enabled).find(|p| {
            let applies = match &p.applies_to {
                CaScope::AllUsers => true,
                CaScope::Users { users } => users.iter().any(|u| Self::principal_matches(user, u)),
                CaScope::Groups { groups } => {
                    user.groups.iter().any(|g| groups.iter().any(|pg| pg.eq_ignore_ascii_case(g)))
                }
            };
            applies
                && match &p.control {
                    CaControl::RequireMfa => !ctx.mfa,
                    CaControl::RequireCompliantDevice => !ctx.compliant,
                    CaControl::AllowedIpRanges { ranges } => {
                        !ranges.iter().any(|r| ip_in_cidr(&ctx.ip, r))
                    }
                    CaControl::Block => true,
                }
        })
    }
}

/// `true` when `ip` lies in `cidr` (`10.20.0.0/16`, `2001:db8::/32`, or a bare address).
pub fn ip_in_cidr(ip: &str, cidr: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else { return false };
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else { return false };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (u32::from(a) & mask) == (u32::from(b) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            (u128::from(a) & mask) == (u128::from(b) & mask)
        }
        _ => false,
    }
}

/// The directory: apps and tenants.
#[derive(Debug, Clone)]
pub struct Directory {
    pub apps: Apps,
    pub tenants: Vec<TenantDir>,
}

impl Directory {
    pub fn from_world(world: &World) -> Self {
        Self {
            apps: world.apps.clone(),
            tenants: world.tenants.iter().map(TenantDir::from_tenant).collect(),
        }
    }

    /// A concrete tenant by GUID, verified domain, or short name (the last for the control
    /// API only; Entra itself knows no short names).
    pub fn tenant(&self, key: &str) -> Option<&TenantDir> {
        let key = key.trim();
        match Uuid::parse_str(key) {
            Ok(id) => self.tenants.iter().find(|t| t.id == id),
            Err(_) => self
                .tenants
                .iter()
                .find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(key)) || t.name == key),
        }
    }

    pub fn tenant_by_id(&self, id: Uuid) -> Option<&TenantDir> {
        self.tenants.iter().find(|t| t.id == id)
    }

    pub fn tenant_mut(&mut self, key: &str) -> Option<&mut TenantDir> {
        let id = self.tenant(key)?.id;
        self.tenants.iter_mut().find(|t| t.id == id)
    }

    /// The tenant and user for a UPN, searched across all tenants.
    pub fn user_by_upn(&self, upn: &str) -> Option<(&TenantDir, &User)> {
        self.tenants
            .iter()
            .find_map(|t| t.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn)).map(|u| (t, u)))
    }

    /// An app registration by client id.
    pub fn app(&self, client_id: &str) -> Option<&fixtures::AppRegistration> {
        let id = Uuid::parse_str(client_id.trim()).ok()?;
        [&self.apps.mcp_client, &self.apps.connector].into_iter().find(|a| a.app_id == id)
    }
}

/// What Conditional Access sees of a sign-in. Carried inside the opaque `aio` claim of the
/// tokens the fake issues, so a later OBO exchange evaluates the same session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInContext {
    /// MFA was performed in this session.
    #[serde(rename = "m")]
    pub mfa: bool,
    /// The device is marked compliant.
    #[serde(rename = "c")]
    pub compliant: bool,
    /// The client IP address of the sign-in.
    pub ip: String,
    /// Authentication time (seconds since the epoch).
    #[serde(rename = "at")]
    pub auth_time: i64,
    /// Issue time of the token carrying this context, in milliseconds. Lets revocation be
    /// compared precisely even within one second (`iat` has whole seconds only).
    #[serde(rename = "t", default)]
    pub issued_ms: i64,
}

impl SignInContext {
    /// The persona's default context: their device's compliance and IP, no MFA.
    pub fn for_user(user: &User, now: DateTime<Utc>) -> Self {
        Self {
            mfa: false,
            compliant: user.device.compliant,
            ip: user.device.ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
            auth_time: now.timestamp(),
            issued_ms: now.timestamp_millis(),
        }
    }
}

/// A redeemable authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: Uuid,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub code_challenge_method: String,
    pub scopes: Vec<String>,
    pub tid: Uuid,
    pub oid: Uuid,
    pub ctx: SignInContext,
    pub cp1: bool,
    pub nonce: Option<String>,
    pub issued: DateTime<Utc>,
    pub redeemed: bool,
}

/// An opaque refresh token's server-side record.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: Uuid,
    pub tid: Uuid,
    pub oid: Uuid,
    pub scopes: Vec<String>,
    pub ctx: SignInContext,
    pub cp1: bool,
    pub issued: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
}

pub(crate) struct Inner {
    pub dir: Directory,
    pub keys: KeyRing,
    pub codes: HashMap<String, AuthCode>,
    pub refresh: HashMap<String, RefreshGrant>,
    /// Per (tid, oid): tokens issued before this instant are revoked.
    pub revoked_at: HashMap<(Uuid, Uuid), DateTime<Utc>>,
    pub journal: Vec<JournalEntry>,
    pub events: Vec<IdentityEvent>,
    pub faults: Vec<Fault>,
    /// splitmix64 state for lifetimes (deterministic under a seed).
    pub rng: u64,
    /// Add `code_challenge_methods_supported` to discovery (Entra omits it).
    pub advertise_pkce: bool,
    /// The `issuer` the JWKS gives each key.
    pub jwks_issuer: JwksIssuer,
    /// A cp1 client gets long-lived (20–28 h) CAE Graph tokens; off, ordinary ones.
    pub cae_tokens: bool,
    /// Per-user token-request limit (AADSTS50196 beyond it); `None`: unlimited.
    pub user_rate_limit: Option<crate::throttle::UserRateLimit>,
    /// Admitted token requests per user (tid, oid), for the rate limit.
    pub user_requests: crate::throttle::RequestLog,
    /// Requests that would change something in a real tenant (see `read_only`).
    pub mutating: Vec<crate::read_only::MutatingRequest>,
}

/// The `issuer` member of every published key (Entra adds one; its validators check it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JwksIssuer {
    /// As Entra: the issuer of the metadata document asked for (the `{tenantid}` template on
    /// `common`/`organizations`, the tenant's own issuer on a tenant path).
    #[default]
    AsMetadata,
    /// No `issuer` member: only the validator's own issuer-per-`tid` rule protects it.
    Omitted,
    /// The concrete v2 issuer of this tenant on every key, on every path: the keys sign
    /// for that tenant alone, so a token of another tenant signed with them must be refused
    /// by the key's issuer rule.
    Tenant(uuid::Uuid),
}

impl Inner {
    /// Next pseudo-random number (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly random number of seconds in `[lo, hi]`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1).max(1);
        lo + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }

    /// Access-token lifetime in seconds for a tenant (its policy, else 60–90 minutes).
    pub fn access_lifetime(&mut self, tid: Uuid) -> i64 {
        let fixed =
            self.dir.tenant_by_id(tid).and_then(|t| t.state.token_lifetime.access_token_minutes);
        match fixed {
            Some(m) => i64::from(m) * 60,
            None => self.between(3600, 5400),
        }
    }

    /// CAE lifetime for cp1 clients on Graph: 20–28 hours.
    pub fn cae_lifetime(&mut self) -> i64 {
        self.between(20 * 3600, 28 * 3600)
    }

    /// The revocation time when the user's sessions were revoked after `issued`.
    pub fn revoked_since(
        &self,
        tid: Uuid,
        oid: Uuid,
        issued: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        // Millisecond precision: tokens carry their issue time in ms (see `SignInContext`).
        self.revoked_at
            .get(&(tid, oid))
            .copied()
            .filter(|at| at.timestamp_millis() > issued.timestamp_millis())
    }
}

/// The state every handler receives.
pub(crate) type AppState = Arc<Shared>;

/// State shared by the router and the handle.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub clock: Clock,
    /// Base URL of the fake, without a trailing slash (`http://127.0.0.1:PORT`).
    pub base: String,
    /// Set once the handle is dropped: ends graceful shutdown and hanging requests.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn new(inner: Inner, clock: Clock, base: String) -> Arc<Self> {
        let (stopping, _) = tokio::sync::watch::channel(false);
        Arc::new(Self { inner: Mutex::new(inner), clock, base, stopping })
    }

    /// Tells the server and every hanging request to stop.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Shared::stop`] was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in one handler must not wedge the fake for the rest of the test run.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn issuer_v2(&self, tid: Uuid) -> String {
        format!("{}/{tid}/v2.0", self.base)
    }
}

impl FaultHost for Shared {
    fn take_fault(
        &self,
        ep: Endpoint,
        tenant: Option<Uuid>,
        client: Option<&str>,
    ) -> Option<FaultKind> {
        let mut inner = self.lock();
        let i = inner.faults.iter().position(|f| f.times > 0 && f.matches(ep, tenant, client))?;
        let kind = inner.faults[i].fault.clone();
        inner.faults[i].times -= 1;
        if inner.faults[i].times == 0 {
            inner.faults.remove(i);
        }
        Some(kind)
    }

    fn journal(&self, mut entry: JournalEntry) {
        let mut inner = self.lock();
        entry.seq = inner.journal.len() as u64 + 1;
        inner.journal.push(entry);
    }

    fn now(&self) -> DateTime<Utc> {
        Shared::now(self)
    }

    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send {
        Shared::stopped(self)
    }
}
