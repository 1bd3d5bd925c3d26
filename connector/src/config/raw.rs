//! The file's serde shape, [`RawSettings`]: every field has a default so a file can be
//! partial, unknown keys are refused by name, and nothing is checked here beyond types;
//! [`super::Settings::from_raw`] validates.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::{DEFAULT_AUTHORITY, DEFAULT_GRAPH_BASE, DEFAULT_REQUIRED_SCOPE};

/// The file shape. Every field has a default so a file can be partial; validation happens in
/// [`Settings::from_raw`](super::Settings::from_raw).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub server: RawServer,
    pub entra: RawEntra,
    pub graph: RawGraph,
    pub obo: RawObo,
    pub policy: RawPolicy,
    pub audit: RawAudit,
    pub limits: RawLimits,
    pub tools: RawTools,
    /// Optional: state shared by N instances (see `crate::shared`).
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    /// The canonical MCP URL, e.g. `https://mcp.contoso.com/mcp`; PRM `resource`.
    pub public_url: Option<String>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allowed_origins: Vec<String>,
    pub resource_name: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3111".into(),
            public_url: None,
            allowed_hosts: None,
            allowed_origins: Vec::new(),
            resource_name: "Microsoft 365 connector".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEntra {
    pub authority: String,
    pub client_id: Option<String>,
    /// Accepted `aud` values; defaults to the client id and `api://{client id}`.
    pub audiences: Option<Vec<String>>,
    pub required_scope: String,
    #[serde(deserialize_with = "lenient_secret")]
    pub client_secret: Option<SecretString>,
    pub certificate: Option<RawCertificate>,
    pub jwks_refresh_floor_secs: u64,
    pub jwks_refresh_interval_secs: u64,
    /// How long last-known-good signing keys stand in while every refresh fails.
    pub jwks_max_stale_secs: u64,
    pub http_timeout_secs: u64,
}

impl Default for RawEntra {
    fn default() -> Self {
        Self {
            authority: DEFAULT_AUTHORITY.into(),
            client_id: None,
            audiences: None,
            required_scope: DEFAULT_REQUIRED_SCOPE.into(),
            client_secret: None,
            certificate: None,
            jwks_refresh_floor_secs: 60,
            jwks_max_stale_secs: 3600,
            jwks_refresh_interval_secs: 12 * 3600,
            http_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM text of the private key (prefer `private_key_file`).
    pub private_key_pem: Option<SecretString>,
    pub private_key_file: Option<PathBuf>,
    /// base64url SHA-1 thumbprint of the certificate, the assertion's `x5t` header.
    pub thumbprint_x5t: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGraph {
    pub base_url: String,
    /// Hosts pre-authenticated download URLs may point at; the Graph client's defaults
    /// (`*.sharepoint.com`, ...) when absent. Each must be a SharePoint or OneDrive host (or
    /// loopback while the Graph base is loopback: tests list their download host) unless
    /// `allow_any_download_host` is set.
    pub download_hosts: Option<Vec<String>>,
    /// Explicit override: accept `download_hosts` outside the SharePoint/OneDrive shapes.
    pub allow_any_download_host: bool,
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    pub max_retries: u32,
    pub retry_budget_secs: u64,
}

impl Default for RawGraph {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_GRAPH_BASE.into(),
            download_hosts: None,
            allow_any_download_host: false,
            timeout_secs: 20,
            connect_timeout_secs: 5,
            max_retries: 3,
            retry_budget_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawObo {
    /// Maximum age of a reused OBO token; 0 = exchange on every call.
    pub max_reuse_secs: u64,
    pub renew_before_secs: u64,
    /// base64 AES-256 keys; the first seals, the others only open.
    pub cache_keys: Vec<SecretString>,
}

impl Default for RawObo {
    fn default() -> Self {
        Self { max_reuse_secs: 300, renew_before_secs: 300, cache_keys: Vec::new() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    pub path: PathBuf,
    pub poll_secs: u64,
}

impl Default for RawPolicy {
    fn default() -> Self {
        Self { path: PathBuf::from("policy.toml"), poll_secs: 2 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// The first segment; later ones are numbered next to it (`audit.000002.jsonl`, ...).
    pub path: PathBuf,
    pub fsync: bool,
    /// Record search query text in tool-call records (off by default: it is user content).
    pub include_query_text: bool,
    /// A segment is closed once it reaches this size; the chain continues in the next one.
    pub rotate_bytes: u64,
    /// base64 32-byte key: chain records with HMAC-SHA256 so that nobody without the key can
    /// rewrite or truncate-and-extend the log unnoticed.
    #[serde(deserialize_with = "lenient_secret")]
    pub hmac_key: Option<SecretString>,
    /// Proxies (addresses or CIDR blocks) whose `Forwarded` / `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Refusals before authentication are aggregated per (peer, reason) over this interval.
    pub refusal_interval_secs: u64,
    /// Refused tokens a peer may send per interval before it gets 429 without token checks.
    pub refusals_per_peer: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            path: PathBuf::from("audit.jsonl"),
            fsync: true,
            include_query_text: false,
            rotate_bytes: 64 * 1024 * 1024,
            hmac_key: None,
            trusted_proxies: Vec::new(),
            refusal_interval_secs: 60,
            refusals_per_peer: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub header_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub per_caller_per_minute: u32,
    pub per_caller_burst: u32,
    pub shutdown_grace_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 60,
            header_timeout_secs: 30,
            idle_timeout_secs: 120,
            max_connections: 1024,
            max_in_flight: 256,
            per_caller_per_minute: 120,
            per_caller_burst: 30,
            shutdown_grace_secs: 25,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTools {
    /// base64 32-byte key that seals paging cursors handed to clients.
    pub cursor_key: Option<SecretString>,
}

/// Accepts a string or a number (an env value like `12345` parses as a TOML integer).
fn lenient_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(Option::<Lenient>::deserialize(d)?.map(|v| match v {
        Lenient::S(s) => SecretString::from(s),
        Lenient::I(i) => SecretString::from(i.to_string()),
        Lenient::F(f) => SecretString::from(f.to_string()),
    }))
}

// ---------------------------------------------------------------------------------------------
// [redis]: state shared by scaled-out instances (crate::shared)

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://host:port[/db]` or `rediss://host:port[/db]` (TLS), without credentials.
    pub url: String,
    #[serde(default)]
    pub username: Option<SecretString>,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
    #[serde(default = "default_redis_connect_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_redis_op_ms")]
    pub op_timeout_ms: u64,
    #[serde(default = "default_redis_breaker_ms")]
    pub breaker_cooldown_ms: u64,
    #[serde(default = "default_redis_lock_ms")]
    pub lock_ttl_ms: u64,
    #[serde(default = "default_redis_lock_wait_ms")]
    pub lock_wait_ms: u64,
    /// Shared budget of a whole tenant; 0 (default) = only the per-user budget.
    #[serde(default)]
    pub tenant_per_minute: u32,
    #[serde(default)]
    pub tenant_burst: u32,
}

fn default_redis_prefix() -> String {
    "m365:".into()
}
fn default_redis_connect_ms() -> u64 {
    500
}
fn default_redis_op_ms() -> u64 {
    250
}
fn default_redis_breaker_ms() -> u64 {
    5_000
}
fn default_redis_lock_ms() -> u64 {
    15_000
}
fn default_redis_lock_wait_ms() -> u64 {
    3_000
}
