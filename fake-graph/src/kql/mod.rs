//! A KQL subset for `/search/query` and `$search` (graph.md §7.1).
//!
//! Supported: free terms (whole-token match, `*` suffix wildcard), quoted phrases, `AND`, `OR`,
//! `NOT` / `-`, parentheses, implicit AND, and property restrictions `name:value`,
//! `name=value`, `name>=value`, `name<=value`, `name>value`, `name<value`, `name:a..b`.
//! Property names are case-insensitive; a property a document does not know matches nothing
//! (Graph: a restriction on a non-queryable property matches nothing).
//!
//! A query goes string → `lex` tokens → [`parse`] into an [`Expr`] → [`Query`] compiled once
//! per request → candidates from a collection's [`PostingIndex`] → verified by
//! [`Query::matches`]. Each step only uses the ones before it:
//! * `lex`: [`SearchText`] and [`tokenize`] (document text), the query lexer, [`Op`].
//! * `parse`: the grammar, [`Expr`], [`parse_date_range`].
//! * `eval`: [`KqlDoc`], [`PropValue`]/[`PropRef`], the compiled [`Query`] (the one evaluator).
//! * `index`: [`PostingIndex`] and the sorted-list [`intersect`] / [`union`].
//! * `highlight`: [`Expr::highlight_terms`] and the hit [`summary`].
//! * `oracle` (tests only): the plain scan over [`Expr`] the others are checked against.

mod eval;
mod highlight;
mod index;
mod lex;
#[cfg(test)]
pub(crate) mod oracle;
mod parse;

pub use eval::{KqlDoc, PropRef, PropValue, Query};
pub use highlight::summary;
pub use index::{PostingIndex, intersect, union};
pub use lex::{KqlError, Op, SearchText, tokenize};
pub use parse::{Expr, parse, parse_date_range};
