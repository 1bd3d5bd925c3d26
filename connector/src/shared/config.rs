//! The `[redis]` section as validated ([`RedisConfig`]), the client it describes (TLS for
//! `rediss://`, ACL credentials) and the `check-config` probe.

use std::{fmt, time::Duration};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

/// The validated `[redis]` section.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://host:port[/db]` or `rediss://` (TLS with rustls); no credentials in it.
    pub url: String,
    /// ACL user and password (`AUTH`), kept out of logs.
    pub username: Option<SecretString>,
    pub password: Option<SecretString>,
    /// Prepended to every key, e.g. `m365:` (several deployments can share one Redis).
    pub key_prefix: String,
    pub connect_timeout: Duration,
    /// Bound on one Redis round trip; beyond it the call falls back.
    pub op_timeout: Duration,
    /// How long the breaker stays open after repeated failures.
    pub breaker_cooldown: Duration,
    /// Lifetime of a cross-instance exchange lock (covers one OBO exchange).
    pub lock_ttl: Duration,
    /// How long an instance that lost the lock waits for the winner's entry.
    pub lock_wait: Duration,
    /// Shared per-tenant budget (per minute, burst); `None`: only the per-user budget.
    pub tenant_rate: Option<(u32, u32)>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url)
            .field("username", &self.username.as_ref().map(|_| "[redacted]"))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.lock_wait)
            .field("tenant_rate", &self.tenant_rate)
            .finish()
    }
}

impl RedisConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            key_prefix: "m365:".into(),
            connect_timeout: Duration::from_millis(500),
            op_timeout: Duration::from_millis(250),
            breaker_cooldown: Duration::from_secs(5),
            lock_ttl: Duration::from_secs(15),
            lock_wait: Duration::from_secs(3),
            tenant_rate: None,
        }
    }
}

/// The store could not be set up (bad URL); runtime failures never surface as errors.
#[derive(Debug, thiserror::Error)]
#[error("redis.url: {0}")]
pub struct SharedStoreError(pub(super) String);

/// The client for `config`: its URL (TLS for `rediss://`) with the ACL credentials.
pub(super) fn client(config: &RedisConfig) -> Result<redis::Client, SharedStoreError> {
    use redis::IntoConnectionInfo as _;
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|_| SharedStoreError("not a redis:// or rediss:// URL".into()))?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(user) = &config.username {
        redis_info = redis_info.set_username(user.expose_secret());
    }
    if let Some(password) = &config.password {
        redis_info = redis_info.set_password(password.expose_secret());
    }
    let info = info.set_redis_settings(redis_info);
    redis::Client::open(info).map_err(|e| SharedStoreError(format!("{:?}", e.kind())))
}

/// The `check-config` probe: connects as the connector would (TLS, ACL user and password),
/// sends `PING` and reads the server version. Unlike the running connector, which goes on
/// without Redis, an unreachable or refusing Redis is an error here: a deployment check
/// should say so before the instances run degraded. Messages never carry the credentials.
pub async fn check(config: &RedisConfig) -> Result<String, String> {
    let url = &config.url;
    let tls = if url.starts_with("rediss://") { "TLS" } else { "no TLS" };
    let client = client(config).map_err(|e| e.to_string())?;
    let failed = |what: &str, e: redis::RedisError| {
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        format!("redis.url {url} ({tls}): {what} failed ({:?}{detail})", e.kind())
    };
    let started = Instant::now();
    let mut connection = tokio::time::timeout(
        config.connect_timeout + config.op_timeout,
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| {
        format!(
            "redis.url {url} ({tls}): no connection within {} ms (connect_timeout_ms + op_timeout_ms)",
            (config.connect_timeout + config.op_timeout).as_millis()
        )
    })?
    .map_err(|e| failed("connecting (and AUTH, when redis.username/password are set)", e))?;
    let pong: String =
        redis::cmd("PING").query_async(&mut connection).await.map_err(|e| failed("PING", e))?;
    let rtt = started.elapsed();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .map_err(|e| failed("INFO server", e))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map_or("unknown", str::trim)
        .to_owned();
    let auth = match (&config.username, &config.password) {
        (Some(_), _) => "ACL user",
        (None, Some(_)) => "password",
        (None, None) => "no AUTH",
    };
    Ok(format!(
        "Redis OK: {url} ({tls}, {auth}) answered {pong} in {} ms, server version {version}",
        rtt.as_millis()
    ))
}
