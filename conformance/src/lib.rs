//! The end-to-end conformance harness: starts fake Entra ID, fake Graph and the connector on
//! loopback, signs fixture personas in the way a real MCP client does (401 → Protected Resource
//! Metadata → authorization-server discovery → authorize with PKCE → token), and runs the
//! scenarios of `shared/spec/conformance.md` against what an outsider can observe: MCP results,
//! HTTP statuses and headers, both fakes' journals, the connector's audit log and `/metrics`.
//!
//! The same scenario bodies run in the `cargo test` suite (connector in-process, one shared
//! controllable clock) and in the `m365-conformance` binary (connector spawned from a binary; a
//! scenario that moves the clock runs that child under libfaketime).
//!
//! # Layout
//! * [`world`]: [`World`] and [`WorldBuilder`]: the three services wired together, torn down
//!   on drop; policy edits, clock control, audit and log access.
//! * [`signin`]: the discovery-driven OAuth client (PKCE S256, refresh, step-up with `claims`).
//! * [`session`]: [`Session`], a signed-in persona with an rmcp Streamable HTTP client and raw
//!   HTTP access for protocol-level checks.
//! * [`signing_proxy`]: TEST ONLY, loopback only: a second MCP URL that signs every request
//!   as one persona, for clients that cannot send a bearer token.
//! * [`persona`]: the fixture personas by name.
//! * [`scaleout`]: redis-server, two connector instances and a round-robin (X, sandbox, bench).
//! * [`canary`]: a loopback listener that must receive nothing (SSRF evidence).
//! * [`logs`]: captures the process's tracing output so scenarios can grep it for secrets.
//! * [`scenarios`]: the catalogue, one `async fn(&World) -> Result<()>` per scenario id, and
//!   the promise each scenario family proves.
//! * [`snapshots`]: the S scenarios' committed snapshots, compared by the gate binary.

pub mod bench;
pub mod canary;
pub mod logs;
pub mod persona;
pub mod scaleout;
pub mod scenarios;
pub mod session;
pub mod signin;
pub mod signing_proxy;
pub mod snapshots;
pub mod world;

pub use persona::Persona;
pub use session::{RawResponse, Session};
pub use world::{ConnectorMode, KeyIssuer, World, WorldBuilder};

/// Installs the ring crypto provider reqwest needs (idempotent).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
