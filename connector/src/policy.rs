//! Per-tenant policy: which tenants are enabled, which tools each may use, result limits and
//! allowed sites/drives. Loaded from a TOML file and reloaded when its content changes (a
//! SHA-256 of the bytes, polled) or on SIGHUP; a change acts on the next call. A polled change
//! is applied only once the same content has been read on two consecutive polls, so a file
//! caught half-written (which may well parse: a tenant list cut short) is never applied; the
//! whole file is parsed before anything is swapped. A reload that fails to parse keeps the
//! previous policy (a typo must not open or close the door for everyone).
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
    time::Duration,
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

impl TenantPolicy {
    /// Whether content of SharePoint site `site_id` may be read. Graph site ids are
    /// `host,siteCollectionId,webId`; a policy entry may name the whole id, the site collection
    /// id or the host name, so `contoso.sharepoint.com` allows every site on that host.
    pub fn site_allowed(&self, site_id: &str) -> bool {
        match &self.sites {
            Allow::Any => true,
            Allow::Only(set) => {
                let mut parts = site_id.split(',');
                let host = parts.next().unwrap_or_default();
                let collection = parts.next();
                set.iter().any(|entry| {
                    entry.eq_ignore_ascii_case(site_id)
                        || entry.eq_ignore_ascii_case(host)
                        || collection.is_some_and(|c| entry.eq_ignore_ascii_case(c))
                })
            }
        }
    }

    /// Whether content in `drive`, on site `site` (`None`: not known), may be read. An unknown
    /// site is refused whenever `sites` is restricted: the policy cannot be checked, so the
    /// answer is no.
    pub fn content_allowed(&self, drive: Option<&str>, site: Option<&str>) -> Result<(), Withheld> {
        if let Some(drive) = drive
            && !self.drives.allows(drive)
        {
            return Err(Withheld::Drive);
        }
        match (&self.sites, site) {
            (Allow::Any, _) => Ok(()),
            (Allow::Only(_), None) => Err(Withheld::SiteUnknown),
            (Allow::Only(_), Some(site)) if self.site_allowed(site) => Ok(()),
            (Allow::Only(_), Some(_)) => Err(Withheld::Site),
        }
    }
}

/// Why the tenant policy withholds a piece of content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    #[error("Your organization's connector policy does not allow reading from this drive.")]
    Drive,
    #[error("Your organization's connector policy does not allow reading from this site.")]
    Site,
    #[error(
        "Your organization's connector policy restricts which sites may be read, and the site \
         this item belongs to could not be determined, so it is withheld."
    )]
    SiteUnknown,
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
    /// SHA-256 of the file content in force.
    applied: RwLock<Option<ContentHash>>,
    /// Content read by the last poll that differed from `applied`: applied when the next poll
    /// reads it again unchanged.
    settling: RwLock<Option<ContentHash>>,
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
            applied: RwLock::new(content_hash(path).ok()),
            settling: RwLock::new(None),
            on_disable: RwLock::new(Vec::new()),
        })
    }

    /// A store over a fixed policy (tests; nothing to reload from).
    pub fn fixed(policy: Policy) -> Self {
        Self {
            path: PathBuf::new(),
            current: RwLock::new(Arc::new(policy)),
            applied: RwLock::new(None),
            settling: RwLock::new(None),
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

    /// Re-reads the file unconditionally (SIGHUP: the operator says the file is complete).
    pub fn reload(&self) -> Result<Reload, PolicyError> {
        let text = self.read()?;
        self.apply(&text)
    }

    /// Re-reads the file when its content changed and has stayed the same for one poll.
    pub fn reload_if_changed(&self) -> Result<Reload, PolicyError> {
        let text = self.read()?;
        let hash = hash_of(&text);
        if *self.applied.read().unwrap_or_else(|p| p.into_inner()) == Some(hash) {
            *self.settling.write().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(Reload::Unchanged);
        }
        let settled = {
            let mut settling = self.settling.write().unwrap_or_else(|p| p.into_inner());
            let settled = *settling == Some(hash);
            *settling = Some(hash);
            settled
        };
        if !settled {
            return Ok(Reload::Unchanged);
        }
        self.apply(&text)
    }

    fn read(&self) -> Result<Vec<u8>, PolicyError> {
        std::fs::read(&self.path)
            .map_err(|source| PolicyError::Read { path: self.path.clone(), source })
    }

    /// Parses all of `text`, then swaps it in; a refused text changes nothing.
    fn apply(&self, text: &[u8]) -> Result<Reload, PolicyError> {
        let bad = |reason: String| PolicyError::Invalid { path: self.path.clone(), reason };
        let text = std::str::from_utf8(text).map_err(|_| bad("the file is not UTF-8".into()))?;
        let next = Policy::parse(text, &self.path)?;
        *self.applied.write().unwrap_or_else(|p| p.into_inner()) = Some(hash_of(text.as_bytes()));
        *self.settling.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(self.replace(next))
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

type ContentHash = [u8; 32];

fn hash_of(bytes: &[u8]) -> ContentHash {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn content_hash(path: &Path) -> std::io::Result<ContentHash> {
    std::fs::read(path).map(|b| hash_of(&b))
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
    fn content_is_allowed_by_drive_and_by_site_id_collection_or_host() {
        let p = parse(&format!(
            r#"
            [[tenants]]
            id = "{CONTOSO}"
            sites = ["contoso.sharepoint.com", "11111111-1111-1111-1111-111111111111"]
            drives = ["b!finance"]
            "#
        ))
        .unwrap();
        let t = p.enabled_tenant(&TenantId::parse(CONTOSO).unwrap()).unwrap();
        let site = "contoso.sharepoint.com,aaaaaaaa-0000-0000-0000-000000000000,b";
        assert!(t.site_allowed(site));
        assert!(t.site_allowed("contoso-my.sharepoint.com,11111111-1111-1111-1111-111111111111,c"));
        assert!(
            !t.site_allowed("contoso-my.sharepoint.com,22222222-0000-0000-0000-000000000000,c")
        );
        assert_eq!(t.content_allowed(Some("b!finance"), Some(site)), Ok(()));
        assert_eq!(t.content_allowed(Some("b!other"), Some(site)), Err(Withheld::Drive));
        assert_eq!(t.content_allowed(Some("b!finance"), None), Err(Withheld::SiteUnknown));
        assert_eq!(
            t.content_allowed(None, Some("fabrikam.sharepoint.com,x,y")),
            Err(Withheld::Site)
        );
        let open = parse(&format!("[[tenants]]\nid = \"{CONTOSO}\"")).unwrap();
        let t = open.enabled_tenant(&TenantId::parse(CONTOSO).unwrap()).unwrap();
        assert_eq!(t.content_allowed(Some("b!any"), None), Ok(()));
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
