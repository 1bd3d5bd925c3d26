//! Query builders and typed answers for Graph's query surfaces: [`kql`] (Microsoft Search and
//! `$search` text), [`odata`] (`$filter` literals and expressions), [`search`] (decoded
//! `/search/query` answers). User text reaches a Graph query only through these.

pub mod kql;
pub mod odata;
pub mod search;
