//! fake-entra's integration tests: one binary, one module per area.

mod authorize;
mod client_credentials;
mod control;
mod discovery;
mod errors;
mod helpers;
mod obo;
mod properties;
mod read_only;
mod refresh;
mod throttling;
mod tokens;
