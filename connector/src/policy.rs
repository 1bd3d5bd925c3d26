//! Per-tenant policy: which tenants are enabled, which tools each may use, result limits and
//! allowed sites/drives. Loaded from a TOML file and reloaded when it changes (mtime poll) or
//! on SIGHUP; a change acts on the next call. A reload that fails to parse keeps the previous
//! policy (a typo must not open or close the door for everyone).
//!
//! ```toml
//! [defaults]
//! max_results = 25
//!
//! [[tenants]]
//! id = "2dafe747-82eb-4139-95a6-9c4ded21e24c"
//! name = "contoso"
//! enabled = true
//! tools = ["*"]            # or an explicit list
//! max_results = 50
//! sites = ["*"]            # SharePoint site ids or host names the tools may read
//! drives = ["*"]
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use serde::Deserialize;

use crate::domain::TenantId;

/// Wildcard entry in `tools`, `sites` and `drives`.
pub const ANY: &str = "*";
/// Default cap on items a tool returns per call.
pub const DEFAULT_MAX_RESULTS: u32 = 25;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDefaults {
    max_results: u32,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self { max_results: DEFAULT_MAX_RESULTS }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "any")]
    tools: Vec<String>,
    #[serde(default)]
    max_results: Option<u32>,
    #[serde(default = "any")]
    sites: Vec<String>,
    #[serde(default = "any")]
    drives: Vec<String>,
}

fn yes() -> bool {
    true
}
fn any() -> Vec<String> {
    vec![ANY.to_owned()]
}

/// One tenant's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub name: Option<String>,
    pub enabled: bool,
    pub tools: Allow,
    pub max_results: u32,
    pub sites: Allow,
    pub drives: Allow,
}

/// An allow-list that may be the wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Any,
    Only(BTreeSet<String>),
}

impl Allow {
    fn from_list(list: Vec<String>) -> Self {
        if list.iter().any(|s| s == ANY) {
            Self::Any
        } else {
            Self::Only(list.into_iter().collect())
        }
    }
    pub fn allows(&self, item: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(set) => set.iter().any(|s| s.eq_ignore_ascii_case(item)),
        }
    }
}

/// The whole policy, immutable once loaded; a reload swaps in a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    tenants: BTreeMap<TenantId, TenantPolicy>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Policy {
    /// Parses policy TOML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, PolicyError> {
        let bad = |reason: String| PolicyError::Invalid { path: origin.to_owned(), reason };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        let mut tenants = BTreeMap::new();
        for t in raw.tenants {
            let id = TenantId::parse(t.id.trim())
                .map_err(|_| bad(format!("tenant id `{}` is not a GUID", t.id)))?;
            if id.is_consumer() && t.enabled {
                return Err(bad("the consumer (personal account) tenant cannot be enabled".into()));
            }
            let max_results = t.max_results.unwrap_or(raw.defaults.max_results);
            if max_results == 0 {
                return Err(bad(format!("tenant {id}: max_results must be positive")));
            }
            let entry = TenantPolicy {
                name: t.name,
                enabled: t.enabled,
                tools: Allow::from_list(t.tools),
                max_results,
                sites: Allow::from_list(t.sites),
                drives: Allow::from_list(t.drives),
            };
            if tenants.insert(id, entry).is_some() {
                return Err(bad(format!("tenant {id} is listed twice")));
            }
        }
        Ok(Self { tenants })
    }

    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// The rules of an enabled tenant; `None` when unknown or disabled.
    pub fn enabled_tenant(&self, tid: &TenantId) -> Option<&TenantPolicy> {
        self.tenants.get(tid).filter(|t| t.enabled)
    }

    pub fn is_enabled(&self, tid: &TenantId) -> bool {
        self.enabled_tenant(tid).is_some()
    }

    /// Whether `tool` may run for `tid` (false for a disabled tenant).
    pub fn tool_allowed(&self, tid: &TenantId, tool: &str) -> bool {
        self.enabled_tenant(tid).is_some_and(|t| t.tools.allows(tool))
    }

    /// Enabled tenant ids, sorted.
    pub fn enabled_tenants(&self) -> Vec<TenantId> {
        self.tenants.iter().filter(|(_, t)| t.enabled).map(|(id, _)| *id).collect()
    }

    /// Tenants enabled in `self` but not in `next`: their cached tokens must be purged.
    pub fn newly_disabled(&self, next: &Policy) -> Vec<TenantId> {
        self.enabled_tenants().into_iter().filter(|id| !next.is_enabled(id)).collect()
    }
}

type Listener = Box<dyn Fn(&[TenantId]) + Send + Sync>;

/// The live policy, shared by the auth middleware and the tools.
pub struct PolicyStore {
    path: PathBuf,
    current: RwLock<Arc<Policy>>,
    stamp: RwLock<Option<SystemTime>>,
    on_disable: RwLock<Vec<Listener>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Applied { disabled: Vec<TenantId> },
}

impl PolicyStore {
    /// Loads the file once; a missing or invalid file is a start-up error.
    pub fn open(path: &Path) -> Result<Self, PolicyError> {
        let policy = Policy::load(path)?;
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(policy)),
            stamp: RwLock::new(mtime(path)),
            on_disable: RwLock::new(Vec::new()),
        })
    }

    /// A store over a fixed policy (tests; nothing to reload from).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: PathBuf::new(),
            current: RwLock::new(Arc::new(policy)),
            stamp: RwLock::new(None),
            on_disable: RwLock::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers a hook called with the tenants a reload disabled (e.g. the OBO cache purge).
    pub fn on_tenants_disabled(&self, hook: impl Fn(&[TenantId]) + Send + Sync + 'static) {
        self.on_disable.write().unwrap_or_else(|p| p.into_inner()).push(Box::new(hook));
    }

    /// Swaps in `next` and notifies listeners of tenants it disabled.
    pub fn replace(&self, next: Policy) -> Reload {
        let previous = self.current();
        if *previous == next {
            return Reload::Unchanged;
        }
        let disabled = previous.newly_disabled(&next);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        if !disabled.is_empty() {
            for hook in self.on_disable.read().unwrap_or_else(|p| p.into_inner()).iter() {
                hook(&disabled);
            }
        }
        Reload::Applied { disabled }
    }

    /// Re-reads the file unconditionally (SIGHUP).
    pub fn reload(&self) -> Result<Reload, PolicyError> {
        let stamp = mtime(&self.path);
        let next = Policy::load(&self.path)?;
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(self.replace(next))
    }

    /// Re-reads the file if its modification time changed since the last load.
    pub fn reload_if_changed(&self) -> Result<Reload, PolicyError> {
        let stamp = mtime(&self.path);
        if stamp == *self.stamp.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(Reload::Unchanged);
        }
        self.reload()
    }

    /// Polls the file every `every` and reloads on SIGHUP (Unix) until `stop` fires.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hup_fired = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fired = std::future::pending::<()>();
            let result = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.reload_if_changed(),
                () = hup_fired => self.reload(),
            };
            match result {
                Ok(Reload::Applied { disabled }) => tracing::info!(
                    policy.path = %self.path.display(),
                    disabled_tenants = disabled.len(),
                    "Reloaded the tenant policy"
                ),
                Ok(Reload::Unchanged) => {}
                Err(e) => {
                    tracing::error!(error = %e, "Kept the previous tenant policy: the new file is invalid")
                }
            }
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTOSO: &str = "2dafe747-82eb-4139-95a6-9c4ded21e24c";
    const TAILSPIN: &str = "f7d61373-35a1-4c8c-b5a5-0b9ba1e9945d";

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("policy.toml"))
    }

    #[test]
    fn tools_and_tenants_are_allowed_only_when_listed_and_enabled() {
        let p = parse(&format!(
            r#"
            [[tenants]]
            id = "{CONTOSO}"
            tools = ["get_me"]
            [[tenants]]
            id = "{TAILSPIN}"
            enabled = false
            "#
        ))
        .unwrap();
        let contoso = TenantId::parse(CONTOSO).unwrap();
        let tailspin = TenantId::parse(TAILSPIN).unwrap();
        assert!(p.tool_allowed(&contoso, "get_me"));
        assert!(!p.tool_allowed(&contoso, "outlook_email_search"));
        assert!(!p.is_enabled(&tailspin));
        assert_eq!(p.enabled_tenant(&contoso).unwrap().max_results, DEFAULT_MAX_RESULTS);
    }

    #[test]
    fn invalid_policies_are_refused_with_the_reason() {
        let err = parse("[[tenants]]\nid = \"contoso\"").unwrap_err().to_string();
        assert!(err.contains("not a GUID"), "{err}");
        let err = parse("[[tenants]]\nid = \"9188040d-6c67-4c5b-b112-36a304b66dad\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("consumer"), "{err}");
        let err =
            parse(&format!("[[tenants]]\nid = \"{CONTOSO}\"\n[[tenants]]\nid = \"{CONTOSO}\""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn replacing_the_policy_reports_and_announces_disabled_tenants() {
        let store = PolicyStore::fixed(parse(&format!("[[tenants]]\nid = \"{CONTOSO}\"")).unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        store.on_tenants_disabled(move |ids| sink.lock().unwrap().extend_from_slice(ids));
        let outcome = store
            .replace(parse(&format!("[[tenants]]\nid = \"{CONTOSO}\"\nenabled = false")).unwrap());
        let contoso = TenantId::parse(CONTOSO).unwrap();
        assert_eq!(outcome, Reload::Applied { disabled: vec![contoso] });
        assert_eq!(*seen.lock().unwrap(), vec![contoso]);
        assert!(!store.current().is_enabled(&contoso));
    }
}
