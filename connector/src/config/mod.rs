//! Typed configuration: a TOML file, then `M365_`-prefixed environment variables (`__` separates
//! nesting levels: `M365_ENTRA__CLIENT_ID` sets `entra.client_id`), then command-line flags.
//!
//! [`RawSettings`] is the serde shape of the file; [`Settings::from_raw`] validates it into
//! [`Settings`], refusing unsafe values with a precise [`ConfigError`] (non-HTTPS authority or
//! Graph base outside loopback, no audience, a cache key that is not 32 bytes, ...). Secrets are
//! `secrecy` types: redacted in `Debug`, zeroized on drop.
//!
//! Layout: `raw` (the file's serde shape), `env` (the `M365_` overlay), `settings` (the
//! validated shape), this module (loading and the validation).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use url::Url;
use uuid::Uuid;

mod env;
mod raw;
mod settings;

pub use env::overlay_env;
pub use raw::*;
pub use settings::*;

/// The production Entra authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The production Graph base.
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.microsoft.com/v1.0";
/// The delegated scope the connector exposes and requires in every inbound token.
pub const DEFAULT_REQUIRED_SCOPE: &str = "access_as_user";
/// Prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "M365_";
/// Separator of nesting levels in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
/// Smallest allowed pause between two JWKS refreshes triggered by unknown `kid`s; lower values
/// would let a flood of forged tokens hammer Entra.
pub const MIN_JWKS_REFRESH_FLOOR: Duration = Duration::from_secs(1);

/// Why a configuration was refused. Each message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Toml { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid configuration: {0}")]
    Shape(String),
    #[error("{setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, reason: reason.into() }
}

/// Command-line overrides applied after the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub policy_path: Option<PathBuf>,
    pub audit_path: Option<PathBuf>,
}

impl Settings {
    /// Loads `file` (optional), overlays `env` (pairs of name and value; pass
    /// `std::env::vars()` in production) and `overrides`, then validates.
    /// Relative policy and audit paths resolve against the config file's directory.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                text.parse::<toml::Table>().map_err(|source| ConfigError::Toml {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => toml::Table::new(),
        };
        overlay_env(&mut table, env);
        let mut raw: RawSettings = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Shape(e.message().to_owned()))?;
        if let Some(listen) = &overrides.listen {
            raw.server.listen = listen.clone();
        }
        if let Some(url) = &overrides.public_url {
            raw.server.public_url = Some(url.clone());
        }
        if let Some(p) = &overrides.policy_path {
            raw.policy.path = p.clone();
        }
        if let Some(p) = &overrides.audit_path {
            raw.audit.path = p.clone();
        }
        let base = file.and_then(Path::parent).map(Path::to_owned);
        if let Some(base) = base {
            if raw.policy.path.is_relative() && overrides.policy_path.is_none() {
                raw.policy.path = base.join(&raw.policy.path);
            }
            if raw.audit.path.is_relative() && overrides.audit_path.is_none() {
                raw.audit.path = base.join(&raw.audit.path);
            }
            if let Some(cert) = raw.entra.certificate.as_mut()
                && let Some(p) = cert.private_key_file.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        Self::from_raw(raw)
    }

    /// Validates a raw configuration.
    pub fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        // server
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            invalid("server.listen", format!("`{}` is not an IP:port address", raw.server.listen))
        })?;
        let public =
            raw.server.public_url.clone().unwrap_or_else(|| format!("http://{listen}/mcp"));
        let resource = parse_service_url("server.public_url", &public)?;
        if resource.fragment().is_some() || resource.query().is_some() {
            return Err(invalid("server.public_url", "must have no query or fragment"));
        }
        if resource.path().ends_with('/') && resource.path() != "/" {
            return Err(invalid("server.public_url", "must not end with a slash (canonical form)"));
        }
        if resource.path() != "/mcp" {
            return Err(invalid("server.public_url", "the MCP endpoint path must be /mcp"));
        }
        let allowed_hosts = match raw.server.allowed_hosts {
            Some(h) if h.is_empty() => {
                return Err(invalid(
                    "server.allowed_hosts",
                    "must not be empty (it would allow any Host)",
                ));
            }
            Some(h) => h,
            None => {
                let mut hosts = vec![authority_of(&resource)];
                if let Some(host) = resource.host_str() {
                    hosts.push(host.to_owned());
                }
                hosts.dedup();
                hosts
            }
        };
        for origin in &raw.server.allowed_origins {
            let u = Url::parse(origin).map_err(|_| {
                invalid("server.allowed_origins", format!("`{origin}` is not an origin URL"))
            })?;
            if u.host_str().is_none() {
                return Err(invalid("server.allowed_origins", format!("`{origin}` has no host")));
            }
        }

        // entra
        let authority = parse_service_url("entra.authority", &raw.entra.authority)?;
        if authority.query().is_some() || authority.fragment().is_some() {
            return Err(invalid("entra.authority", "must have no query or fragment"));
        }
        let client_id_text = raw
            .entra
            .client_id
            .ok_or_else(|| invalid("entra.client_id", "is required (the connector's app id)"))?;
        let client_id = Uuid::try_parse(client_id_text.trim())
            .map_err(|_| invalid("entra.client_id", "is not a GUID"))?;
        let audiences = raw
            .entra
            .audiences
            .unwrap_or_else(|| vec![client_id.to_string(), format!("api://{client_id}")]);
        if audiences.is_empty() || audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid("entra.audiences", "at least one non-empty audience is required"));
        }
        if audiences.iter().any(|a| {
            a.eq_ignore_ascii_case("https://graph.microsoft.com")
                || a == "00000003-0000-0000-c000-000000000000"
        }) {
            return Err(invalid(
                "entra.audiences",
                "must not include Microsoft Graph (no token passthrough)",
            ));
        }
        let scope = raw.entra.required_scope.trim().to_owned();
        if scope.is_empty() || scope.contains(' ') {
            return Err(invalid("entra.required_scope", "must be one non-empty scope name"));
        }
        let credential = match (raw.entra.client_secret, raw.entra.certificate) {
            (Some(_), Some(_)) => {
                return Err(invalid("entra", "set either client_secret or certificate, not both"));
            }
            (Some(secret), None) => {
                if secret.expose_secret().trim().is_empty() {
                    return Err(invalid("entra.client_secret", "is empty"));
                }
                Credential::Secret(secret)
            }
            (None, Some(cert)) => {
                let pem = match (cert.private_key_pem, cert.private_key_file) {
                    (Some(p), None) => p,
                    (None, Some(path)) => {
                        SecretString::from(std::fs::read_to_string(&path).map_err(|e| {
                            invalid(
                                "entra.certificate.private_key_file",
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })?)
                    }
                    _ => {
                        return Err(invalid(
                            "entra.certificate",
                            "set exactly one of private_key_pem or private_key_file",
                        ));
                    }
                };
                if !pem.expose_secret().contains("PRIVATE KEY") {
                    return Err(invalid("entra.certificate", "the private key is not PEM"));
                }
                if cert.thumbprint_x5t.trim().is_empty() {
                    return Err(invalid("entra.certificate.thumbprint_x5t", "is required"));
                }
                Credential::Certificate {
                    private_key_pem: pem,
                    thumbprint_x5t: cert.thumbprint_x5t,
                }
            }
            (None, None) => {
                return Err(invalid(
                    "entra",
                    "a credential is required: client_secret or certificate",
                ));
            }
        };
        let floor = Duration::from_secs(raw.entra.jwks_refresh_floor_secs);
        if floor < MIN_JWKS_REFRESH_FLOOR {
            return Err(invalid("entra.jwks_refresh_floor_secs", "must be at least 1"));
        }
        let max_stale = Duration::from_secs(raw.entra.jwks_max_stale_secs);
        if max_stale < floor {
            // A stale set is refreshed on the next token, at most once per floor interval.
            return Err(invalid(
                "entra.jwks_max_stale_secs",
                "must be at least entra.jwks_refresh_floor_secs",
            ));
        }
        if raw.entra.http_timeout_secs == 0 {
            return Err(invalid("entra.http_timeout_secs", "must be positive"));
        }

        // graph
        let base_url = parse_service_url("graph.base_url", &raw.graph.base_url)?;
        if let Some(hosts) = &raw.graph.download_hosts
            && !raw.graph.allow_any_download_host
        {
            for host in hosts {
                check_download_host(host, is_loopback(&base_url))?;
            }
        }
        if raw.graph.timeout_secs == 0 || raw.graph.connect_timeout_secs == 0 {
            return Err(invalid("graph.timeout_secs", "timeouts must be positive"));
        }

        // obo
        let mut cache_keys = Vec::new();
        for (i, k) in raw.obo.cache_keys.iter().enumerate() {
            let key = Key32::from_base64(k.expose_secret())
                .map_err(|reason| invalid("obo.cache_keys", format!("key #{}: {reason}", i + 1)))?;
            cache_keys.push(key);
        }
        if cache_keys.is_empty() {
            return Err(invalid("obo.cache_keys", "at least one base64 32-byte key is required"));
        }

        let cursor_key = raw
            .tools
            .cursor_key
            .map(|k| {
                Key32::from_base64(k.expose_secret()).map_err(|r| invalid("tools.cursor_key", r))
            })
            .transpose()?;

        // The TEST-ONLY keys published in this repository (the example configuration) are
        // refused unless the connector is reachable on loopback only: anyone can read them, so
        // a deployment sealing tokens or cursors with one has no secret at all. (A published
        // client secret needs no rule: Entra generates real ones and refuses any other.)
        let loopback_only = listen.ip().is_loopback() && is_loopback(&resource);
        if !loopback_only {
            let published = |bytes: &[u8]| bytes.starts_with(PUBLISHED_SECRET_PREFIX.as_bytes());
            if cache_keys.iter().any(|k| published(k.expose())) {
                return Err(published_secret("obo.cache_keys"));
            }
            if cursor_key.as_ref().is_some_and(|k| published(k.expose())) {
                return Err(published_secret("tools.cursor_key"));
            }
        }

        // limits
        let l = raw.limits;
        if l.max_body_bytes == 0 || l.max_body_bytes > 16 * 1024 * 1024 {
            return Err(invalid("limits.max_body_bytes", "must be between 1 and 16 MiB"));
        }
        if l.max_in_flight == 0 {
            return Err(invalid("limits.max_in_flight", "must be positive"));
        }
        if l.request_timeout_secs == 0 || l.header_timeout_secs == 0 {
            return Err(invalid("limits.request_timeout_secs", "timeouts must be positive"));
        }
        if l.idle_timeout_secs == 0 {
            return Err(invalid("limits.idle_timeout_secs", "must be positive"));
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be positive"));
        }
        if l.per_caller_per_minute == 0 || l.per_caller_burst == 0 {
            return Err(invalid("limits.per_caller_per_minute", "rate limits must be positive"));
        }
        if raw.policy.poll_secs == 0 {
            return Err(invalid("policy.poll_secs", "must be positive"));
        }
        let a = raw.audit;
        if a.rotate_bytes < 64 * 1024 {
            return Err(invalid("audit.rotate_bytes", "must be at least 65536 (64 KiB)"));
        }
        if a.refusal_interval_secs == 0 || a.refusal_interval_secs > 3600 {
            return Err(invalid("audit.refusal_interval_secs", "must be between 1 and 3600"));
        }
        if a.refusals_per_peer == 0 {
            return Err(invalid("audit.refusals_per_peer", "must be positive"));
        }
        let hmac_key = a
            .hmac_key
            .map(|k| {
                Key32::from_base64(k.expose_secret()).map_err(|r| invalid("audit.hmac_key", r))
            })
            .transpose()?;
        let trusted_proxies = a
            .trusted_proxies
            .iter()
            .map(|t| crate::audit::peer::IpBlock::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| invalid("audit.trusted_proxies", r))?;

        let redis = raw.redis.map(|r| redis_settings(r, cursor_key.is_some())).transpose()?;
        Ok(Settings {
            server: ServerSettings {
                listen,
                resource,
                allowed_hosts,
                allowed_origins: raw.server.allowed_origins,
                resource_name: raw.server.resource_name,
            },
            entra: EntraSettings {
                authority,
                client_id,
                audiences,
                required_scope: scope,
                credential,
                jwks_refresh_floor: floor,
                jwks_max_stale: max_stale,
                jwks_refresh_interval: Duration::from_secs(
                    raw.entra.jwks_refresh_interval_secs.max(60),
                ),
                http_timeout: Duration::from_secs(raw.entra.http_timeout_secs),
            },
            graph: GraphConfig {
                base_url,
                download_hosts: raw.graph.download_hosts,
                timeout: Duration::from_secs(raw.graph.timeout_secs),
                connect_timeout: Duration::from_secs(raw.graph.connect_timeout_secs),
                max_retries: raw.graph.max_retries,
                retry_budget: Duration::from_secs(raw.graph.retry_budget_secs),
            },
            obo: OboConfig {
                max_reuse: Duration::from_secs(raw.obo.max_reuse_secs),
                renew_before: Duration::from_secs(raw.obo.renew_before_secs),
                cache_keys,
            },
            policy: PolicyConfig {
                path: raw.policy.path,
                poll: Duration::from_secs(raw.policy.poll_secs),
            },
            audit: AuditConfig {
                path: a.path,
                fsync: a.fsync,
                include_query_text: a.include_query_text,
                rotate_bytes: a.rotate_bytes,
                hmac_key,
                trusted_proxies: crate::audit::peer::TrustedProxies::new(trusted_proxies),
                refusal_interval: Duration::from_secs(a.refusal_interval_secs),
                refusals_per_peer: a.refusals_per_peer,
            },
            limits: Limits {
                max_body_bytes: l.max_body_bytes,
                request_timeout: Duration::from_secs(l.request_timeout_secs),
                header_timeout: Duration::from_secs(l.header_timeout_secs),
                idle_timeout: Duration::from_secs(l.idle_timeout_secs),
                max_connections: l.max_connections,
                max_in_flight: l.max_in_flight,
                per_caller_per_minute: l.per_caller_per_minute,
                per_caller_burst: l.per_caller_burst,
                shutdown_grace: Duration::from_secs(l.shutdown_grace_secs),
            },
            cursor_key,
            redis,
        })
    }
}

impl Settings {
    /// The On-Behalf-Of settings (`crate::obo`). Cache keys get ids derived from their
    /// content, so an entry sealed by a key stays openable when newer keys are put in front.
    pub fn obo_settings(&self) -> Result<crate::obo::OboSettings, ConfigError> {
        let credential = match &self.entra.credential {
            Credential::Secret(s) => crate::obo::ClientCredential::Secret(s.clone()),
            Credential::Certificate { private_key_pem, thumbprint_x5t } => {
                crate::obo::ClientCredential::Certificate {
                    private_key_pem: private_key_pem.clone(),
                    x5t: thumbprint_x5t.clone(),
                }
            }
        };
        let mut keys = Vec::with_capacity(self.obo.cache_keys.len());
        for key in &self.obo.cache_keys {
            let id = key_id(key.expose());
            let k = crate::obo::EncryptionKey::new(id, *key.expose())
                .map_err(|e| invalid("obo.cache_keys", e.to_string()))?;
            keys.push(k);
        }
        let mut keys = keys.into_iter();
        let active =
            keys.next().ok_or_else(|| invalid("obo.cache_keys", "at least one key is required"))?;
        let cache_keys = crate::obo::CacheKeys::new(active, keys.collect())
            .map_err(|e| invalid("obo.cache_keys", format!("{e} (is a key listed twice?)")))?;
        let mut obo = crate::obo::OboSettings::new(
            self.entra.authority.clone(),
            self.entra.client_id,
            credential,
        );
        obo.max_reuse = self.obo.max_reuse;
        obo.renew_before = self.obo.renew_before;
        obo.cache_keys = cache_keys;
        Ok(obo)
    }

    /// The Graph client settings (`crate::graph`).
    pub fn graph_settings(&self) -> crate::graph::GraphSettings {
        let mut g = crate::graph::GraphSettings::new(self.graph.base_url.clone());
        if let Some(hosts) = &self.graph.download_hosts {
            g.download_hosts = hosts.clone();
        }
        g.connect_timeout = self.graph.connect_timeout;
        g.request_timeout = self.graph.timeout;
        g.max_attempts = self.graph.max_retries.saturating_add(1);
        g.retry_budget = self.graph.retry_budget;
        g
    }
}

/// A non-secret identifier of a key: the first 8 bytes of its SHA-256, hex.
fn key_id(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `host[:port]` as it appears in a `Host` header for this URL.
fn authority_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// Parses a service URL and applies the transport rule: `https`, or `http` on a loopback host.
pub fn parse_service_url(setting: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim())
        .map_err(|e| invalid(setting, format!("`{text}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(invalid(
                setting,
                format!("`{text}` must use https (plain http is allowed only on loopback)"),
            ));
        }
        other => return Err(invalid(setting, format!("unsupported scheme `{other}`"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(setting, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(setting, "must not carry credentials"));
    }
    Ok(url)
}

/// How every TEST-ONLY secret committed to this repository begins (also inside base64 keys).
const PUBLISHED_SECRET_PREFIX: &str = "TEST-ONLY";

fn published_secret(setting: &'static str) -> ConfigError {
    invalid(
        setting,
        "is a TEST-ONLY value published in the connector's repository; it is accepted only \
         while server.listen and server.public_url are loopback. Generate your own \
         (e.g. `openssl rand -base64 32`)",
    )
}

/// Domains whose hosts serve SharePoint and OneDrive pre-authenticated downloads (commercial,
/// dogfood, GCC High / DoD, 21Vianet), the only shapes `graph.download_hosts` accepts.
const DOWNLOAD_DOMAINS: &[&str] = &[
    "sharepoint.com",
    "sharepoint-df.com",
    "sharepoint.us",
    "dps.mil",
    "sharepoint.cn",
    "files.1drv.com",
    "svc.ms",
];

/// One `graph.download_hosts` entry: `host` or `*.domain`, inside [`DOWNLOAD_DOMAINS`] (a
/// wildcard must sit below one of them: `*.sharepoint.com` yes, `*.com` no), or a loopback
/// host while the Graph base is loopback (the fakes).
fn check_download_host(pattern: &str, loopback_base: bool) -> Result<(), ConfigError> {
    let p = pattern.trim().to_ascii_lowercase();
    let bare = p.strip_prefix("*.").unwrap_or(&p);
    let loopback = matches!(bare, "localhost" | "127.0.0.1" | "[::1]")
        || bare.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    let well_formed = !bare.is_empty()
        && !bare.contains('*')
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let inside = DOWNLOAD_DOMAINS.iter().any(|d| {
        let below = bare.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'));
        // A bare domain is a host of its own only without a wildcard (`*.sharepoint.com`
        // covers tenants' hosts; `sharepoint.com` names that one host).
        below || bare == *d
    });
    if well_formed && (inside || (loopback && loopback_base)) {
        return Ok(());
    }
    Err(invalid(
        "graph.download_hosts",
        format!(
            "`{pattern}` is not a SharePoint or OneDrive download host (expected a host or \
             `*.` pattern under {}); set graph.allow_any_download_host = true to override",
            DOWNLOAD_DOMAINS.join(", ")
        ),
    ))
}

/// True when the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Validates `[redis]`. Instances sharing Redis must share the cursor key (a cursor issued by
/// one is presented to another) and the cache keys (`obo.cache_keys`, already required).
fn redis_settings(
    raw: RawRedis,
    has_cursor_key: bool,
) -> Result<crate::shared::RedisConfig, ConfigError> {
    let url = Url::parse(&raw.url).map_err(|_| {
        invalid("redis.url", "must be a URL such as redis://host:6379 or rediss://host:6380")
    })?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err(invalid("redis.url", "must be redis://host:port or rediss://host:port (TLS)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "redis.url",
            "must not carry credentials; set redis.username and redis.password instead",
        ));
    }
    if !has_cursor_key {
        return Err(invalid(
            "tools.cursor_key",
            "is required when [redis] is set: every instance must share it",
        ));
    }
    if raw.key_prefix.len() > 64 || raw.key_prefix.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(invalid("redis.key_prefix", "at most 64 printable ASCII characters"));
    }
    for (setting, ms) in [
        ("redis.connect_timeout_ms", raw.connect_timeout_ms),
        ("redis.op_timeout_ms", raw.op_timeout_ms),
        ("redis.lock_ttl_ms", raw.lock_ttl_ms),
    ] {
        if ms == 0 || ms > 60_000 {
            return Err(invalid(setting, "must be between 1 and 60000 milliseconds"));
        }
    }
    if raw.lock_wait_ms > 60_000 || raw.breaker_cooldown_ms > 600_000 {
        return Err(invalid(
            "redis.lock_wait_ms",
            "lock_wait_ms <= 60000, breaker_cooldown_ms <= 600000",
        ));
    }
    if (raw.tenant_per_minute == 0) != (raw.tenant_burst == 0) {
        return Err(invalid(
            "redis.tenant_burst",
            "set both tenant_per_minute and tenant_burst, or neither",
        ));
    }
    let mut config = crate::shared::RedisConfig::new(raw.url);
    config.username = raw.username.filter(|u| !u.expose_secret().is_empty());
    config.password = raw.password.filter(|p| !p.expose_secret().is_empty());
    config.key_prefix = raw.key_prefix;
    config.connect_timeout = Duration::from_millis(raw.connect_timeout_ms);
    config.op_timeout = Duration::from_millis(raw.op_timeout_ms);
    config.breaker_cooldown = Duration::from_millis(raw.breaker_cooldown_ms);
    config.lock_ttl = Duration::from_millis(raw.lock_ttl_ms);
    config.lock_wait = Duration::from_millis(raw.lock_wait_ms);
    config.tenant_rate =
        (raw.tenant_per_minute > 0).then_some((raw.tenant_per_minute, raw.tenant_burst));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> toml::Table {
        r#"
        [entra]
        client_id = "0d6dfcf5-cc5f-4d1b-9101-42c950cf2ac8"
        client_secret = "s3cret"
        [obo]
        cache_keys = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
        "#
        .parse()
        .unwrap()
    }

    #[test]
    fn environment_values_keep_numbers_and_arrays_and_nest_on_double_underscore() {
        let mut t = minimal();
        overlay_env(
            &mut t,
            [
                ("M365_LIMITS__MAX_IN_FLIGHT".to_owned(), "7".to_owned()),
                ("M365_SERVER__ALLOWED_HOSTS".to_owned(), r#"["a.example"]"#.to_owned()),
                ("M365_ENTRA__CLIENT_SECRET".to_owned(), "12345".to_owned()),
                ("OTHER".to_owned(), "x".to_owned()),
            ],
        );
        let raw: RawSettings = toml::Value::Table(t).try_into().unwrap();
        let s = Settings::from_raw(raw).unwrap();
        assert_eq!(s.limits.max_in_flight, 7);
        assert_eq!(s.server.allowed_hosts, vec!["a.example".to_owned()]);
        assert!(
            matches!(&s.entra.credential, Credential::Secret(x) if x.expose_secret() == "12345")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let raw: RawSettings = toml::Value::Table(minimal()).try_into().unwrap();
        let s = Settings::from_raw(raw).unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("s3cret"));
        assert!(text.contains("redacted"));
    }
}
