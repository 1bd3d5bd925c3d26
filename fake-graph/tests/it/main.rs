//! fake-graph's integration tests: one binary, one module per area.

mod auth;
mod calendar;
mod control;
mod files;
mod helpers;
mod mail;
mod search;
mod shapes;
mod teams;
