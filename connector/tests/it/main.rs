//! Integration tests of the connector: one binary, one module per concern.

mod audit;
mod auth;
mod config;
mod graph;
mod helpers;
mod obo;
mod obo_union;
mod policy;
mod redis;
mod server;
mod tools_pipeline;
mod tools_read;
mod tools_search;
mod tools_sharepoint;
mod tools_support;
