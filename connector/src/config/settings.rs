//! The validated configuration the application is built from ([`Settings`] and its
//! sections): what [`Settings::from_raw`](super::Settings::from_raw) produces from the file's
//! shape. Secrets stay `secrecy` types; `Debug` redacts them.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

/// The validated configuration the application is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub entra: EntraSettings,
    pub graph: GraphConfig,
    pub obo: OboConfig,
    pub policy: PolicyConfig,
    pub audit: AuditConfig,
    pub limits: Limits,
    pub cursor_key: Option<Key32>,
    /// `[redis]`: `None` keeps every cache and limit in process.
    pub redis: Option<crate::shared::RedisConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Canonical MCP endpoint URL (PRM `resource`).
    pub resource: Url,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub resource_name: String,
}

impl ServerSettings {
    /// The path-specific Protected Resource Metadata URL advertised in challenges.
    pub fn resource_metadata_url(&self) -> String {
        let mut base = self.resource.clone();
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        base.set_query(None);
        base.to_string()
    }
}

#[derive(Debug, Clone)]
pub struct EntraSettings {
    /// Authority base without a trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: Url,
    pub client_id: Uuid,
    pub audiences: Vec<String>,
    pub required_scope: String,
    pub credential: Credential,
    pub jwks_refresh_floor: Duration,
    pub jwks_refresh_interval: Duration,
    /// Last-known-good keys are refused once this much older than their last fetch.
    pub jwks_max_stale: Duration,
    pub http_timeout: Duration,
}

impl EntraSettings {
    /// `{authority}` without a trailing slash, the prefix of every Entra URL.
    pub fn authority_base(&self) -> String {
        self.authority.as_str().trim_end_matches('/').to_owned()
    }
    /// The tenant-independent JWKS (keys keep their `issuer`).
    pub fn jwks_url(&self) -> String {
        format!("{}/common/discovery/v2.0/keys", self.authority_base())
    }
    /// The tenant-independent v2 discovery document.
    pub fn discovery_url(&self) -> String {
        format!("{}/common/v2.0/.well-known/openid-configuration", self.authority_base())
    }
    /// The v2 issuer for one tenant, `{authority}/{tid}/v2.0`.
    pub fn issuer_for(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.authority_base())
    }
    /// The fully qualified scope clients request, `api://{client id}/{scope}`.
    pub fn qualified_scope(&self) -> String {
        format!("api://{}/{}", self.client_id, self.required_scope)
    }
}

/// How the connector authenticates to Entra's token endpoint.
#[derive(Clone)]
pub enum Credential {
    Secret(SecretString),
    Certificate { private_key_pem: SecretString, thumbprint_x5t: String },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Credential::Secret([redacted])"),
            Self::Certificate { thumbprint_x5t, .. } => {
                write!(
                    f,
                    "Credential::Certificate {{ thumbprint_x5t: {thumbprint_x5t:?}, private_key_pem: [redacted] }}"
                )
            }
        }
    }
}

pub use crate::key::Key32;

#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub base_url: Url,
    pub download_hosts: Option<Vec<String>>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub retry_budget: Duration,
}

#[derive(Debug, Clone)]
pub struct OboConfig {
    pub max_reuse: Duration,
    pub renew_before: Duration,
    pub cache_keys: Vec<Key32>,
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub path: PathBuf,
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub path: PathBuf,
    pub fsync: bool,
    pub include_query_text: bool,
    pub rotate_bytes: u64,
    pub hmac_key: Option<Key32>,
    pub trusted_proxies: crate::audit::peer::TrustedProxies,
    pub refusal_interval: Duration,
    pub refusals_per_peer: u32,
}

impl AuditConfig {
    /// How the writer keeps the log on disk.
    pub fn writer_options(&self) -> crate::audit::WriterOptions {
        crate::audit::WriterOptions {
            path: self.path.clone(),
            fsync: self.fsync,
            rotate_bytes: self.rotate_bytes,
            key: self.hmac_key.clone(),
            faults: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    /// A connection (HTTP/1 or h2c) with no request in flight and no bytes moving for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// Open client connections at most; further ones wait in the listen backlog.
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub per_caller_per_minute: u32,
    pub per_caller_burst: u32,
    pub shutdown_grace: Duration,
}
