//! fake-graph's integration tests: one binary, one module per area.

mod auth;
mod calendar;
mod control;
mod files;
mod helpers;
mod mail;
mod meeting_times;
mod search;
mod search_libraries;
mod shapes;
mod teams;
