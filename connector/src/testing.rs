//! Test helpers, compiled only with the `test-helpers` feature (never in the shipped binary).
//!
//! [`SettingsBuilder`] is the one typed way the workspace's test harnesses (the conformance
//! World, `m365-bench`, the connector's integration tests and benches) configure a connector.
//! It produces the same thing a deployer writes: a TOML document in the shape of
//! [`RawSettings`], either as text (for a connector spawned from the binary, which reads a
//! file) or parsed (for a connector built in process). Going through the file shape keeps the
//! harnesses honest: every setting they use is one a deployer can set, validated by the same
//! [`Settings::from_raw`].
//!
//! Secrets given to the builder are test values; the builder keeps them in plain TOML because
//! that is what it writes. Never build production configuration with it.

use std::{fmt::Display, net::SocketAddr, path::Path};

use base64::Engine as _;
use toml::{Table, Value};

use crate::config::{ConfigError, RawSettings, Settings};

/// Builds a connector configuration one typed setting at a time.
///
/// ```
/// use connector::testing::SettingsBuilder;
///
/// let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// let toml = SettingsBuilder::new(addr)
///     .entra("http://127.0.0.1:9000", "8c3b4d0f-6a8e-4c64-9a8f-6f1f1e2d3c4b", "TEST-ONLY")
///     .graph("http://127.0.0.1:9001/v1.0")
///     .cache_key([7; 32])
///     .toml();
/// assert!(toml.contains("listen = \"127.0.0.1:8080\""));
/// ```
#[derive(Debug, Clone)]
pub struct SettingsBuilder {
    doc: Table,
}

impl SettingsBuilder {
    /// A connector listening on `listen`, whose public MCP URL is `http://{listen}/mcp`.
    pub fn new(listen: SocketAddr) -> Self {
        Self { doc: Table::new() }.set("server", "listen", listen.to_string()).set(
            "server",
            "public_url",
            format!("http://{listen}/mcp"),
        )
    }

    /// Sets `section.key` to `value`. The typed methods below cover what the harnesses use;
    /// this is for the rest, with the same names as the file.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        let table = self
            .doc
            .entry(section)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("builder sections are always tables");
        table.insert(key.to_owned(), value.into());
        self
    }

    /// `server.listen`, and `server.public_url` as `http://{listen}/mcp` (another instance
    /// configured like this one).
    pub fn listen(self, listen: SocketAddr) -> Self {
        self.set("server", "listen", listen.to_string()).set(
            "server",
            "public_url",
            format!("http://{listen}/mcp"),
        )
    }

    /// `server.public_url`.
    pub fn public_url(self, url: &str) -> Self {
        self.set("server", "public_url", url)
    }

    /// `server.allowed_origins`.
    pub fn allowed_origins<S: AsRef<str>>(self, origins: &[S]) -> Self {
        self.set("server", "allowed_origins", strings(origins))
    }

    /// `entra.authority`, `entra.client_id` and `entra.client_secret`.
    pub fn entra(self, authority: &str, client_id: impl Display, client_secret: &str) -> Self {
        self.set("entra", "authority", authority)
            .set("entra", "client_id", client_id.to_string())
            .set("entra", "client_secret", client_secret)
    }

    /// `entra.jwks_refresh_floor_secs`.
    pub fn jwks_refresh_floor_secs(self, secs: u64) -> Self {
        self.set("entra", "jwks_refresh_floor_secs", int(secs))
    }

    /// `graph.base_url` (with its `/v1.0`).
    pub fn graph(self, base_url: &str) -> Self {
        self.set("graph", "base_url", base_url)
    }

    /// `graph.download_hosts`.
    pub fn download_hosts<S: AsRef<str>>(self, hosts: &[S]) -> Self {
        self.set("graph", "download_hosts", strings(hosts))
    }

    /// `graph.timeout_secs`, `graph.max_retries` and `graph.retry_budget_secs`.
    pub fn graph_retries(self, timeout_secs: u64, max_retries: u32, budget_secs: u64) -> Self {
        self.set("graph", "timeout_secs", int(timeout_secs))
            .set("graph", "max_retries", int(u64::from(max_retries)))
            .set("graph", "retry_budget_secs", int(budget_secs))
    }

    /// `obo.cache_keys = [key]` (base64 of the 32 bytes).
    pub fn cache_key(self, key: [u8; 32]) -> Self {
        self.set("obo", "cache_keys", Value::Array(vec![Value::String(b64(&key))]))
    }

    /// `obo.cache_keys` from base64 strings, newest first.
    pub fn cache_keys_b64<S: AsRef<str>>(self, keys: &[S]) -> Self {
        self.set("obo", "cache_keys", strings(keys))
    }

    /// `obo.max_reuse_secs`.
    pub fn obo_max_reuse_secs(self, secs: u64) -> Self {
        self.set("obo", "max_reuse_secs", int(secs))
    }

    /// `policy.path` and `policy.poll_secs`.
    pub fn policy(self, path: &Path, poll_secs: u64) -> Self {
        self.set("policy", "path", path_value(path)).set("policy", "poll_secs", int(poll_secs))
    }

    /// `audit.path` and `audit.fsync`.
    pub fn audit(self, path: &Path, fsync: bool) -> Self {
        self.set("audit", "path", path_value(path)).set("audit", "fsync", fsync)
    }

    /// `limits.per_caller_per_minute` and `limits.per_caller_burst`.
    pub fn per_caller_rate(self, per_minute: u32, burst: u32) -> Self {
        self.set("limits", "per_caller_per_minute", int(u64::from(per_minute))).set(
            "limits",
            "per_caller_burst",
            int(u64::from(burst)),
        )
    }

    /// `limits.max_in_flight`.
    pub fn max_in_flight(self, n: usize) -> Self {
        self.set("limits", "max_in_flight", int(n as u64))
    }

    /// `limits.shutdown_grace_secs`.
    pub fn shutdown_grace_secs(self, secs: u64) -> Self {
        self.set("limits", "shutdown_grace_secs", int(secs))
    }

    /// `limits.request_timeout_secs`.
    pub fn request_timeout_secs(self, secs: u64) -> Self {
        self.set("limits", "request_timeout_secs", int(secs))
    }

    /// `tools.cursor_key` (base64 of the 32 bytes).
    pub fn cursor_key(self, key: [u8; 32]) -> Self {
        self.set("tools", "cursor_key", b64(&key))
    }

    /// `tools.cursor_key` from base64.
    pub fn cursor_key_b64(self, key: &str) -> Self {
        self.set("tools", "cursor_key", key)
    }

    /// `redis.url`.
    pub fn redis(self, url: &str) -> Self {
        self.set("redis", "url", url)
    }

    /// The configuration file's text.
    pub fn toml(&self) -> String {
        toml::to_string(&self.doc).expect("a table of strings, integers and booleans serialises")
    }

    /// The file shape, parsed exactly as a file would be.
    pub fn raw(&self) -> Result<RawSettings, toml::de::Error> {
        toml::from_str(&self.toml())
    }

    /// The validated settings (what `Application::build` takes).
    ///
    /// # Panics
    /// If the file shape does not parse: the builder only writes keys the shape knows, so that
    /// is a bug in this module (a misspelt key), not an input error.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let raw =
            self.raw().unwrap_or_else(|err| panic!("SettingsBuilder wrote an unknown key: {err}"));
        Settings::from_raw(raw)
    }
}

fn strings<S: AsRef<str>>(items: &[S]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.as_ref().to_owned())).collect())
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn path_value(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:4100".parse().unwrap()
    }

    fn complete() -> SettingsBuilder {
        SettingsBuilder::new(addr())
            .entra("http://127.0.0.1:4200", "8c3b4d0f-6a8e-4c64-9a8f-6f1f1e2d3c4b", "TEST-ONLY")
            .graph("http://127.0.0.1:4300/v1.0")
            .cache_key([7; 32])
    }

    #[test]
    fn the_text_is_what_a_deployer_would_write_and_validates() {
        let builder = complete()
            .download_hosts(&["127.0.0.1"])
            .obo_max_reuse_secs(2)
            .policy(Path::new("/tmp/policy.toml"), 1)
            .audit(Path::new("/tmp/audit.jsonl"), false)
            .per_caller_rate(6000, 1000)
            .cursor_key([9; 32]);
        let settings = builder.settings().expect("valid");
        assert_eq!(settings.server.listen, addr());
        assert_eq!(settings.server.resource.as_str(), "http://127.0.0.1:4100/mcp");
        assert_eq!(settings.obo.max_reuse.as_secs(), 2);
        assert_eq!(settings.graph.download_hosts.as_deref(), Some(&["127.0.0.1".to_owned()][..]));
        assert!(settings.cursor_key.is_some());
        let text = builder.toml();
        assert!(text.contains("[obo]"), "{text}");
        assert!(text.contains("max_reuse_secs = 2"), "{text}");
    }

    #[test]
    fn validation_still_refuses_what_a_file_would_be_refused_for() {
        let err = SettingsBuilder::new(addr())
            .entra("http://login.example.com", "8c3b4d0f-6a8e-4c64-9a8f-6f1f1e2d3c4b", "x")
            .graph("http://127.0.0.1:4300/v1.0")
            .cache_key([7; 32])
            .settings()
            .expect_err("a non-HTTPS authority outside loopback is refused");
        assert!(err.to_string().contains("authority"), "{err}");
    }

    #[test]
    fn a_later_setting_replaces_an_earlier_one() {
        let settings = complete().obo_max_reuse_secs(5).obo_max_reuse_secs(9).settings().unwrap();
        assert_eq!(settings.obo.max_reuse.as_secs(), 9);
    }
}
