//! Matching a query against documents: the [`KqlDoc`] a collection exposes, and the [`Query`]
//! compiled once per request from an [`Expr`]. This is the only evaluator the server uses; a
//! plain recursive scan over `Expr` survives in tests only, as the oracle this one is checked
//! against (`kql::oracle`).

use chrono::{DateTime, Utc};

use super::{
    lex::{Op, SearchText, tokenize},
    parse::{Expr, parse_date_range},
};

/// The value a document gives for a property restriction.
pub enum PropValue {
    /// Free text matched by token/phrase containment.
    Text(SearchText),
    /// Matched by case-insensitive prefix (`path:`).
    Url(String),
    /// Matched by case-insensitive equality (`filetype:`).
    Keyword(String),
    Bool(bool),
    Date(DateTime<Utc>),
    /// The document does not have this property: the restriction is false.
    Unknown,
}

/// A searchable document.
pub trait KqlDoc {
    /// Text matched by unqualified terms.
    fn text(&self) -> &SearchText;
    /// Value of a property restriction (`name` is lower case).
    fn prop(&self, name: &str) -> PropValue;
    /// The same value, borrowed where the document holds it ready (hot search scans).
    fn prop_ref(&self, name: &str) -> PropRef<'_> {
        PropRef::Owned(self.prop(name))
    }
}

/// A property value borrowed from the document, so that evaluating a restriction over many
/// documents allocates nothing; `Owned` wraps [`KqlDoc::prop`] for documents that build values.
pub enum PropRef<'a> {
    Text(&'a SearchText),
    Url(&'a str),
    Keyword(&'a str),
    Owned(PropValue),
}

/// A query compiled once per request: restriction values are tokenised, lower-cased and parsed
/// (dates) up front, so [`Query::matches`] does no per-document allocation. The unit tests check
/// it gives exactly the answers of the plain scan over [`Expr`] (`kql::oracle`).
#[derive(Debug, Clone)]
pub struct Query {
    pub(super) root: Node,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    All,
    /// One whole token, or a `token*` prefix.
    Token(String, bool),
    /// Consecutive tokens (an empty list matches nothing).
    Phrase(Vec<String>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Prop {
        name: String,
        op: Op,
        test: Box<PropTest>,
    },
}

/// Every reading of a restriction value, prepared once; which one applies depends on the kind of
/// value the document gives for the property.
#[derive(Debug, Clone)]
pub(super) struct PropTest {
    pub(super) text: TextTest,
    /// `value` without a trailing `*` (URL prefix/equality, ASCII case-insensitive).
    url: String,
    /// `value` without leading dots (keyword equality).
    keyword: String,
    boolean: Option<bool>,
    date: DateTest,
}

#[derive(Debug, Clone)]
pub(super) enum TextTest {
    Never,
    Token(String, bool),
    Phrase(Vec<String>),
}

#[derive(Debug, Clone, Copy)]
enum DateTest {
    Never,
    /// `a..b`: the operator is ignored.
    Between(DateTime<Utc>, DateTime<Utc>),
    /// One day or instant `[start, end)`, compared with the operator.
    At(DateTime<Utc>, DateTime<Utc>),
}

impl Query {
    pub fn new(expr: &Expr) -> Self {
        Self { root: compile(expr) }
    }

    pub fn matches(&self, doc: &dyn KqlDoc) -> bool {
        eval(&self.root, doc)
    }
}

fn term_node(tokens: &[String], prefix: bool) -> Node {
    if tokens.len() == 1 {
        Node::Token(tokens[0].clone(), prefix)
    } else {
        Node::Phrase(tokens.to_vec())
    }
}

fn compile(expr: &Expr) -> Node {
    match expr {
        Expr::All => Node::All,
        Expr::Term { tokens, prefix } => term_node(tokens, *prefix),
        Expr::Phrase(tokens) => Node::Phrase(tokens.clone()),
        Expr::And(parts) => Node::And(parts.iter().map(compile).collect()),
        Expr::Or(parts) => Node::Or(parts.iter().map(compile).collect()),
        Expr::Not(inner) => Node::Not(Box::new(compile(inner))),
        Expr::Prop { name, op, value } => {
            let prefix = value.ends_with('*');
            let tokens = tokenize(value.trim_end_matches('*'));
            let text = match tokens.len() {
                0 => TextTest::Never,
                1 => TextTest::Token(tokens[0].clone(), prefix),
                _ => TextTest::Phrase(tokens),
            };
            let boolean = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            };
            let date = match value.split_once("..") {
                Some((a, b)) => match (parse_date_range(a), parse_date_range(b)) {
                    (Some((start, _)), Some((_, end))) => DateTest::Between(start, end),
                    _ => DateTest::Never,
                },
                None => match parse_date_range(value) {
                    Some((start, end)) => DateTest::At(start, end),
                    None => DateTest::Never,
                },
            };
            Node::Prop {
                name: name.clone(),
                op: *op,
                test: Box::new(PropTest {
                    text,
                    url: value.trim_end_matches('*').to_owned(),
                    keyword: value.trim_start_matches('.').to_owned(),
                    boolean,
                    date,
                }),
            }
        }
    }
}

fn eval(node: &Node, doc: &dyn KqlDoc) -> bool {
    match node {
        Node::All => true,
        Node::Token(t, prefix) => doc.text().has_token(t, *prefix),
        Node::Phrase(tokens) => doc.text().has_phrase(tokens),
        Node::And(parts) => parts.iter().all(|p| eval(p, doc)),
        Node::Or(parts) => parts.iter().any(|p| eval(p, doc)),
        Node::Not(inner) => !eval(inner, doc),
        Node::Prop { name, op, test } => match doc.prop_ref(name) {
            PropRef::Text(text) => text_test(text, *op, test),
            PropRef::Url(url) => url_test(url, *op, test),
            PropRef::Keyword(k) => keyword_test(k, *op, test),
            PropRef::Owned(value) => match &value {
                PropValue::Unknown => false,
                PropValue::Text(text) => text_test(text, *op, test),
                PropValue::Url(url) => url_test(url, *op, test),
                PropValue::Keyword(k) => keyword_test(k, *op, test),
                PropValue::Bool(b) => match (test.boolean, op) {
                    (None, _) => false,
                    (Some(want), Op::Colon | Op::Eq) => *b == want,
                    (Some(want), Op::Ne) => *b != want,
                    _ => false,
                },
                PropValue::Date(d) => match test.date {
                    DateTest::Never => false,
                    DateTest::Between(start, end) => *d >= start && *d < end,
                    DateTest::At(start, end) => match op {
                        Op::Colon | Op::Eq => *d >= start && *d < end,
                        Op::Ne => *d < start || *d >= end,
                        Op::Ge => *d >= start,
                        Op::Gt => *d >= end,
                        Op::Le => *d < end,
                        Op::Lt => *d < start,
                    },
                },
            },
        },
    }
}

fn text_test(text: &SearchText, op: Op, test: &PropTest) -> bool {
    let hit = match &test.text {
        TextTest::Never => false,
        TextTest::Token(t, prefix) => text.has_token(t, *prefix),
        TextTest::Phrase(tokens) => text.has_phrase(tokens),
    };
    match op {
        Op::Colon | Op::Eq => hit,
        Op::Ne => !hit,
        _ => false,
    }
}

fn url_test(url: &str, op: Op, test: &PropTest) -> bool {
    // ASCII lower-casing keeps byte lengths, so these equal comparing lower-cased copies.
    let want = test.url.as_bytes();
    let eq = url.eq_ignore_ascii_case(&test.url);
    match op {
        Op::Colon => {
            url.len() >= want.len() && url.as_bytes()[..want.len()].eq_ignore_ascii_case(want)
        }
        Op::Eq => eq,
        Op::Ne => !eq,
        _ => false,
    }
}

fn keyword_test(k: &str, op: Op, test: &PropTest) -> bool {
    let eq = k.eq_ignore_ascii_case(&test.keyword);
    match op {
        Op::Colon | Op::Eq => eq,
        Op::Ne => !eq,
        _ => false,
    }
}
