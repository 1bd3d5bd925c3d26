//! The catalogue of `shared/spec/conformance.md`: one `async fn(&World) -> Result<()>` per
//! scenario, registered with its id, the world it needs and whether it moves the clock. The
//! test suite runs each by id ([`run_in_process`]); `m365-conformance` iterates [`all`].

mod a_inbound;
mod c_ca;
mod d_readonly;
mod f_faults;
mod i_isolation;
mod o_org;
mod r_revocation;
mod s_tools;
mod t_tokens;
pub mod x_scaleout;

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{World, WorldBuilder};

pub use d_readonly::read_only_violations;

/// The scenario body type.
pub type ScenarioFn = fn(&World) -> BoxFuture<'_, Result<()>>;

/// One catalogue entry.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Id plus variant, e.g. `A05` or `R01/reuse-0`.
    pub id: &'static str,
    pub name: &'static str,
    /// Moves the shared clock: a spawned connector runs under libfaketime.
    pub needs_clock: bool,
    /// The world this scenario runs in.
    pub setup: fn() -> WorldBuilder,
    pub run: ScenarioFn,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

/// Builds a [`Scenario`] from an `async fn(&World) -> Result<()>`.
macro_rules! scenario {
    ($id:literal, $name:literal, clock = $clock:expr, setup = $setup:expr, $f:path) => {
        $crate::scenarios::Scenario {
            id: $id,
            name: $name,
            needs_clock: $clock,
            setup: $setup,
            run: {
                fn run(
                    world: &$crate::World,
                ) -> futures::future::BoxFuture<'_, anyhow::Result<()>> {
                    Box::pin($f(world))
                }
                run
            },
        }
    };
    ($id:literal, $name:literal, $f:path) => {
        scenario!($id, $name, clock = false, setup = $crate::World::builder, $f)
    };
}
pub(crate) use scenario;

/// Declares a family's scenarios once: each entry names its test and its [`scenario!`]. It
/// generates the family's `scenarios()` (the gate's entries, in id order) and an exported
/// macro, `<family>_tests!(callback)`, that expands `callback!(test_name, "ID");` per entry,
/// from which `tests/conformance/<family>.rs` makes the `#[tokio::test]`s. The leading `$`
/// argument lets the generated macro have metavariables of its own.
macro_rules! catalogue {
    ($d:tt $tests:ident { $( $test:ident => scenario!($id:literal, $($rest:tt)*) ),* $(,)? }) => {
        /// This family's scenarios, in id order.
        pub fn scenarios() -> Vec<$crate::scenarios::Scenario> {
            let mut v = vec![ $( scenario!($id, $($rest)*) ),* ];
            v.sort_by_key(|s| s.id);
            v
        }

        /// `callback!(test_name, "ID");` for each scenario of this family.
        #[macro_export]
        macro_rules! $tests {
            ($d callback:ident) => { $( $d callback!($test, $id); )* };
        }
    };
}
pub(crate) use catalogue;

/// Every scenario, in catalogue order.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(a_inbound::scenarios());
    v.extend(o_org::scenarios());
    v.extend(r_revocation::scenarios());
    v.extend(t_tokens::scenarios());
    v.extend(c_ca::scenarios());
    v.extend(i_isolation::scenarios());
    v.extend(d_readonly::scenarios());
    v.extend(f_faults::scenarios());
    v.extend(s_tools::scenarios());
    v.extend(x_scaleout::scenarios());
    v
}

/// The promises of the mission the gate reports on; every scenario proves exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Promise {
    TenantIsolation,
    Revocation,
    TokenExpiry,
    ReadOnly,
    Audit,
    Protocol,
}

impl Promise {
    /// In the order the gate's table lists them.
    pub const ALL: [Promise; 6] = [
        Promise::TenantIsolation,
        Promise::Revocation,
        Promise::TokenExpiry,
        Promise::ReadOnly,
        Promise::Audit,
        Promise::Protocol,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Promise::TenantIsolation => "tenant isolation",
            Promise::Revocation => "revocation",
            Promise::TokenExpiry => "token expiry",
            Promise::ReadOnly => "read-only",
            Promise::Audit => "audit",
            Promise::Protocol => "protocol",
        }
    }
}

impl Scenario {
    /// An S scenario: its recorded outputs are compared with committed snapshots.
    pub fn is_snapshot(&self) -> bool {
        self.id.starts_with('S')
    }

    /// The promise this scenario proves: by family, with the exceptions a family holds
    /// (documented in ARCHITECTURE.md, "Release gate").
    pub fn promise(&self) -> Promise {
        let number = self.id.get(..3).unwrap_or(self.id);
        match number {
            // Inbound tokens: time claims are expiry; discovery, scope and the happy path
            // are protocol; every forged or foreign token is a door into someone's tenant.
            "A03" | "A04" => Promise::TokenExpiry,
            "A01" | "A02" | "A08" => Promise::Protocol,
            // Organisation: a tenant switched off while sessions are live is a revocation.
            "O04" => Promise::Revocation,
            // Tokens over time: the cache key is an isolation rule.
            "T08" => Promise::TenantIsolation,
            // Read-only and data flow: D04 is the audit trail; D05 (content fenced as
            // untrusted data) is about what the client receives.
            "D04" => Promise::Audit,
            "D05" => Promise::Protocol,
            // Scale-out: a disable reaching the other instance is revocation; what Redis
            // holds and whose entry it is are isolation; the rest is how N instances behave.
            "X02" => Promise::Revocation,
            "X05" | "X06" | "X07" => Promise::TenantIsolation,
            _ => match number.as_bytes().first() {
                Some(b'A' | b'O' | b'I') => Promise::TenantIsolation,
                Some(b'R' | b'C') => Promise::Revocation,
                Some(b'T') => Promise::TokenExpiry,
                Some(b'D') => Promise::ReadOnly,
                _ => Promise::Protocol,
            },
        }
    }
}

/// The scenario with this id.
pub fn find(id: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

/// Starts the scenario's world with an in-process connector, runs it, tears the world down.
pub async fn run_in_process(id: &str) -> Result<()> {
    let s = find(id).ok_or_else(|| anyhow!("no scenario {id}"))?;
    let world = (s.setup)().start().await?;
    let result = (s.run)(&world).await;
    world.shutdown().await;
    result.map_err(|e| e.context(format!("scenario {} ({})", s.id, s.name)))
}

// ─── Shared observations ────────────────────────────────────────────────────────────────

/// Runs a scenario in process and returns the snapshots it recorded (the S scenarios).
pub async fn run_in_process_with_snapshots(id: &str) -> Result<Vec<(String, serde_json::Value)>> {
    let s = find(id).ok_or_else(|| anyhow!("no scenario {id}"))?;
    let world = (s.setup)().start().await?;
    let result = (s.run)(&world).await;
    let snapshots = world.snapshots();
    world.shutdown().await;
    result.map_err(|e| e.context(format!("scenario {} ({})", s.id, s.name)))?;
    Ok(snapshots)
}

/// Successful OBO exchanges of a user, counted per requested scope set.
pub fn obo_exchanges_by_scopes(
    world: &World,
    tid: Uuid,
    oid: Uuid,
) -> std::collections::BTreeMap<Vec<String>, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in world.entra.journal() {
        if is_obo(&e) && e.tenant_id == Some(tid) && e.user_id == Some(oid) && e.issued() {
            let mut scopes: Vec<String> = e
                .scopes
                .iter()
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned())
                .filter(|s| !s.eq_ignore_ascii_case("openid") && !s.eq_ignore_ascii_case("profile"))
                .collect();
            scopes.sort();
            *out.entry(scopes).or_insert(0) += 1;
        }
    }
    out
}

/// Calls a tool that must succeed and returns its structured content.
pub async fn structured_ok(
    s: &crate::Session,
    tool: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value> {
    let out = s.call_ok(tool, args).await?;
    ensure!(!out.is_error, "{tool} failed for {}: {}", s.upn, out.text);
    out.structured.ok_or_else(|| anyhow!("{tool}: no structuredContent"))
}

/// The `uri` of the first entry of `field` whose `match_key` contains `needle`.
pub fn uri_where(v: &serde_json::Value, field: &str, key: &str, needle: &str) -> Result<String> {
    v[field]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i[key].as_str().is_some_and(|x| x.contains(needle)))
        .and_then(|i| i["uri"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {field} entry with {key} containing {needle:?} in {v}"))
}

/// JWT-shaped substrings (`eyJ….eyJ…`): any of these in a log or at rest is a leaked token.
pub fn contains_jwt(text: &str) -> bool {
    text.match_indices("eyJ").any(|(i, _)| {
        let rest = &text[i..];
        let head: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        head.len() >= 10 && rest[head.len()..].starts_with(".eyJ")
    })
}

/// fake-entra journals the On-Behalf-Of grant as `on_behalf_of`.
fn is_obo(e: &fake_entra::JournalEntry) -> bool {
    e.grant == "on_behalf_of" || e.grant.contains("jwt-bearer")
}

/// fake-entra's journal of a signed-in user's OBO exchanges, issued or refused, in order.
pub fn obo_journal(world: &World, s: &crate::Session) -> Vec<fake_entra::JournalEntry> {
    world
        .entra
        .journal()
        .into_iter()
        .filter(|e| is_obo(e) && e.tenant_id == Some(s.tenant_id) && e.user_id == Some(s.object_id))
        .collect()
}

/// OBO exchanges fake-entra journalled for a user.
pub fn obo_exchanges(world: &World, tid: Uuid, oid: Uuid) -> usize {
    world
        .entra
        .journal()
        .iter()
        .filter(|e| is_obo(e) && e.tenant_id == Some(tid) && e.user_id == Some(oid))
        .count()
}

/// "No OBO, no Graph call" for a user.
pub fn ensure_untouched(world: &World, tid: Uuid, oid: Uuid) -> Result<()> {
    ensure!(obo_exchanges(world, tid, oid) == 0, "fake-entra journalled an OBO exchange for {oid}");
    ensure!(world.graph.never_called_for(tid, oid), "fake-graph journalled a request for {oid}");
    Ok(())
}

/// A user whose token was issued before an Entra-side change calls `get_me`: the connector's
/// OBO exchange is refused with AADSTS`code` (fake-entra's journal), the client gets a tool
/// error whose text contains every one of `says` (case-insensitive), and Graph never sees a
/// request for the user.
pub async fn refused_at_obo(
    world: &World,
    s: &crate::Session,
    code: u32,
    says: &[&str],
) -> Result<()> {
    let out = s.call_ok("get_me", serde_json::json!({})).await?;
    ensure!(out.is_error, "{}: served although Entra refuses AADSTS{code}: {}", s.upn, out.text);
    let text = out.text.to_lowercase();
    for word in says {
        ensure!(
            text.contains(&word.to_lowercase()),
            "{}: the error for AADSTS{code} does not say {word:?}: {}",
            s.upn,
            out.text
        );
    }
    let refused = world.entra.journal().into_iter().any(|e| {
        is_obo(&e)
            && e.tenant_id == Some(s.tenant_id)
            && e.user_id == Some(s.object_id)
            && e.error_code == Some(code)
    });
    ensure!(refused, "{}: fake-entra journalled no OBO refusal AADSTS{code}", s.upn);
    ensure!(
        world.graph.never_called_for(s.tenant_id, s.object_id),
        "{}: Graph was called although the exchange was refused",
        s.upn
    );
    Ok(())
}

/// The Graph requests fake-graph journalled from index `before` on (calls run one at a time
/// in these scenarios, so this is what the calls since then caused).
pub fn graph_since(world: &World, before: usize) -> Vec<fake_graph::JournalEntry> {
    world.graph.journal().into_iter().skip(before).collect()
}

/// Every one of `requests` ran in the caller's tenant as the caller (per-request evidence of
/// isolation: a request made with another tenant's or user's token shows here).
pub fn ensure_ran_as(
    requests: &[fake_graph::JournalEntry],
    s: &crate::Session,
    what: &str,
) -> Result<()> {
    for e in requests {
        ensure!(
            e.tenant_id == Some(s.tenant_id) && e.user_id == Some(s.object_id),
            "{what}: Graph request {} ran as {:?}/{:?}; the caller is {} ({}/{})",
            e.request_uri,
            e.tenant_id,
            e.user_id,
            s.upn,
            s.tenant_id,
            s.object_id
        );
    }
    Ok(())
}

/// Asserts a raw answer is `status` and returns its text for further checks.
pub fn ensure_status(r: &crate::RawResponse, status: u16, what: &str) -> Result<()> {
    ensure!(
        r.status == status,
        "{what}: expected HTTP {status}, got {} (WWW-Authenticate: {:?}) {}",
        r.status,
        r.header("www-authenticate"),
        r.text.chars().take(300).collect::<String>()
    );
    Ok(())
}

/// `get_me`'s identity from a tool outcome.
pub fn me_of(outcome: &crate::session::ToolOutcome) -> Result<(String, String)> {
    ensure!(!outcome.is_error, "get_me failed: {}", outcome.text);
    let s = outcome
        .structured
        .clone()
        .or_else(|| serde_json::from_str(&outcome.text).ok())
        .unwrap_or_default();
    let tid = s["tenant_id"].as_str().unwrap_or_default().to_owned();
    let oid = s["user_id"].as_str().unwrap_or_default().to_owned();
    ensure!(!tid.is_empty() && !oid.is_empty(), "get_me returned no identity: {}", outcome.text);
    Ok((tid, oid))
}

/// Leeway the connector allows on `exp`/`nbf`, plus a margin.
pub const PAST_LEEWAY: Duration = Duration::from_secs(120);
