//! `m365-connector`: a read-only Microsoft 365 connector for AI assistants, served as a remote
//! MCP server (Streamable HTTP). It validates the caller's Entra ID token, exchanges it
//! On-Behalf-Of for a Microsoft Graph token, and serves read-only tools over mail, calendar,
//! files and chats. It never caches content, never writes, and audits every call.
//!
//! # Layout
//! * [`clock`]: the injectable clock every expiry is judged by.
//! * [`domain`]: newtypes for ids, scopes, the validated [`domain::Caller`].
//! * [`config`]: typed configuration from file, environment and flags, validated at start.
//! * [`server`]: the axum application (`/mcp`, Protected Resource Metadata, health, metrics).
//! * [`auth`]: inbound tokens: JWKS key store, validation into a `Caller`, 401/403/503 answers.
//! * [`obo`]: On-Behalf-Of exchange, the encrypted single-flight token cache, AADSTS mapping.
//! * [`graph`]: the read-only Graph client (method allow-list, retries, paging, downloads); it
//!   takes a plain bearer token and does not depend on [`obo`].
//! * [`http`]: outbound HTTP clients, the rustls crypto provider, `Retry-After` parsing; the
//!   server's hand-written refusals ([`http::HttpRefusal`]), logged once.
//! * [`extract`]: file content to text (docx, xlsx, pptx, pdf, html, csv, md, txt).
//! * [`tools`]: the MCP tool surface; its `session` pairs OBO tokens with the Graph client.
//! * [`policy`]: per-tenant policy (enabled tenants, allowed tools, limits), reloadable.
//! * [`audit`]: the hash-chained audit log.
//! * [`shared`]: state shared by scaled-out instances through Redis (optional `[redis]`).
//! * [`telemetry`], [`metrics`]: logs and Prometheus metrics.
//! * `testing` (feature `test-helpers` only): the typed settings builder the test harnesses share.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod extract;
pub mod graph;
pub mod http;
pub mod key;
pub mod metrics;
pub mod obo;
pub mod policy;
pub mod server;
pub mod shared;
pub mod telemetry;
#[cfg(feature = "test-helpers")]
pub mod testing;
pub mod tools;
