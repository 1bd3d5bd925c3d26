//! A KQL subset for `/search/query` and `$search` (graph.md §7.1).
//!
//! Supported: free terms (whole-token match, `*` suffix wildcard), quoted phrases, `AND`, `OR`,
//! `NOT` / `-`, parentheses, implicit AND, and property restrictions `name:value`,
//! `name=value`, `name>=value`, `name<=value`, `name>value`, `name<value`, `name:a..b`.
//! Property names are case-insensitive; a property a document does not know matches nothing
//! (Graph: a restriction on a non-queryable property matches nothing).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Lower-cased, tokenised text: `" tok1 tok2 … "`, so term and phrase matching are substring
/// searches for `" term "` and `" t1 t2 "`.
#[derive(Debug, Clone)]
pub struct SearchText(String);

impl SearchText {
    pub fn new(text: &str) -> Self {
        let mut out = String::with_capacity(text.len() + 2);
        out.push(' ');
        for token in tokenize(text) {
            out.push_str(&token);
            out.push(' ');
        }
        Self(out)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity()
    }

    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|t| !t.is_empty())
    }

    /// Whole-token (or `prefix*`) match of a single lower-case token.
    ///
    /// Equivalent to searching for `" token "` (or `" token"`), but without building that needle:
    /// this runs once per document per term in every search scan, so it must not allocate.
    pub fn has_token(&self, token: &str, prefix: bool) -> bool {
        if token.is_empty() {
            // `" "` always occurs (the text starts with a space); `"  "` never does.
            return prefix;
        }
        let hay = self.0.as_bytes();
        self.0.match_indices(token).any(|(i, _)| {
            i > 0 && hay[i - 1] == b' ' && (prefix || hay.get(i + token.len()) == Some(&b' '))
        })
    }

    /// Consecutive tokens.
    pub fn has_phrase(&self, tokens: &[String]) -> bool {
        if tokens.is_empty() {
            return false;
        }
        if tokens.iter().any(String::is_empty) {
            // Never produced by `tokenize`; keep the exact needle semantics for it anyway.
            let needle = format!(" {} ", tokens.join(" "));
            return self.0.contains(&needle);
        }
        // Equivalent to searching for `" t1 t2 … tn "` without building it (hot path).
        let hay = self.0.as_bytes();
        self.0.match_indices(tokens[0].as_str()).any(|(start, _)| {
            if start == 0 || hay[start - 1] != b' ' {
                return false;
            }
            let mut pos = start;
            for (n, t) in tokens.iter().enumerate() {
                if n > 0 {
                    if hay.get(pos) != Some(&b' ') {
                        return false;
                    }
                    pos += 1;
                }
                if !hay[pos..].starts_with(t.as_bytes()) {
                    return false;
                }
                pos += t.len();
            }
            hay.get(pos) == Some(&b' ')
        })
    }
}

/// Splits text into lower-case alphanumeric tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A free term: its tokens (more than one for `ada@contoso.com`), and a `*` suffix flag.
    Term {
        tokens: Vec<String>,
        prefix: bool,
    },
    Phrase(Vec<String>),
    Prop {
        name: String,
        op: Op,
        value: String,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// Matches everything (`*`).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Colon,
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
    Ne,
}

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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct KqlError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Phrase(String),
    /// `name` `op` `value` written without spaces.
    Restriction(String, Op, String),
    Open,
    Close,
}

fn lex(input: &str) -> Result<Vec<Tok>, KqlError> {
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '"' {
            let (text, next) = read_quoted(&chars, i)?;
            out.push(Tok::Phrase(text));
            i = next;
        } else {
            let (tok, next) = read_word(&chars, i)?;
            out.push(tok);
            i = next;
        }
    }
    Ok(out)
}

/// Reads a bare word starting at `start`; a `name` followed by an operator becomes a
/// restriction whose value may be quoted (`from:"Ada Lovelace"`).
fn read_word(chars: &[char], start: usize) -> Result<(Tok, usize), KqlError> {
    let is_name = |s: &[char]| {
        !s.is_empty() && s.iter().all(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
    };
    let mut i = start;
    while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
        if let Some((op, len)) = op_at(chars, i)
            && is_name(&chars[start..i])
        {
            let name: String = chars[start..i].iter().collect();
            let mut j = i + len;
            let value = if j < chars.len() && chars[j] == '"' {
                let (text, next) = read_quoted(chars, j)?;
                j = next;
                text
            } else {
                let vs = j;
                while j < chars.len() && !chars[j].is_whitespace() && !matches!(chars[j], '(' | ')')
                {
                    j += 1;
                }
                chars[vs..j].iter().collect()
            };
            return Ok((Tok::Restriction(name.to_lowercase(), op, value), j));
        }
        i += 1;
    }
    Ok((Tok::Word(chars[start..i].iter().collect()), i))
}

fn op_at(chars: &[char], i: usize) -> Option<(Op, usize)> {
    let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
    match two.as_str() {
        ">=" => return Some((Op::Ge, 2)),
        "<=" => return Some((Op::Le, 2)),
        "<>" => return Some((Op::Ne, 2)),
        _ => {}
    }
    match chars[i] {
        ':' => Some((Op::Colon, 1)),
        '=' => Some((Op::Eq, 1)),
        '>' => Some((Op::Gt, 1)),
        '<' => Some((Op::Lt, 1)),
        _ => None,
    }
}

fn read_quoted(chars: &[char], open: usize) -> Result<(String, usize), KqlError> {
    let mut i = open + 1;
    let mut text = String::new();
    while i < chars.len() {
        if chars[i] == '"' {
            return Ok((text, i + 1));
        }
        if chars[i] == '\\' && i + 1 < chars.len() && chars[i + 1] == '"' {
            text.push('"');
            i += 2;
            continue;
        }
        text.push(chars[i]);
        i += 1;
    }
    Err(KqlError("Unterminated quoted phrase in the query.".into()))
}

/// Parses a KQL query string.
pub fn parse(input: &str) -> Result<Expr, KqlError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(KqlError("The query string is empty.".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let expr = p.or()?;
    if p.pos < p.toks.len() {
        return Err(KqlError("Unbalanced parentheses in the query.".into()));
    }
    Ok(expr)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<Expr, KqlError> {
        let mut parts = vec![self.and()?];
        while self.peek_word("OR") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
    }

    fn and(&mut self) -> Result<Expr, KqlError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.toks.get(self.pos) {
                None | Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                Some(Tok::Word(w)) if w == "AND" => {
                    self.pos += 1;
                    parts.push(self.unary()?);
                }
                _ => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn unary(&mut self) -> Result<Expr, KqlError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Word(w)) if w == "NOT" => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Word(w)) if w.len() > 1 && w.starts_with('-') => {
                self.toks[self.pos] = Tok::Word(w[1..].to_owned());
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Word(w)) if w.len() > 1 && w.starts_with('+') => {
                self.toks[self.pos] = Tok::Word(w[1..].to_owned());
                self.unary()
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, KqlError> {
        let tok = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| KqlError("The query ends unexpectedly.".into()))?;
        self.pos += 1;
        match tok {
            Tok::Open => {
                let inner = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(KqlError("Unbalanced parentheses in the query.".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::Close => Err(KqlError("Unbalanced parentheses in the query.".into())),
            Tok::Phrase(text) => Ok(Expr::Phrase(tokenize(&text))),
            Tok::Restriction(name, op, value) => Ok(Expr::Prop { name, op, value }),
            Tok::Word(w) if w == "*" => Ok(Expr::All),
            Tok::Word(w) if w == "AND" || w == "OR" => {
                Err(KqlError(format!("Operator {w} has no operand.")))
            }
            Tok::Word(w) => {
                let prefix = w.ends_with('*');
                let tokens = tokenize(w.trim_end_matches('*'));
                if tokens.is_empty() {
                    return Ok(Expr::All);
                }
                Ok(Expr::Term { tokens, prefix })
            }
        }
    }
}

impl Expr {
    /// Evaluates the query against one document.
    pub fn matches(&self, doc: &dyn KqlDoc) -> bool {
        match self {
            Expr::All => true,
            Expr::Term { tokens, prefix } => {
                if tokens.len() == 1 {
                    doc.text().has_token(&tokens[0], *prefix)
                } else {
                    doc.text().has_phrase(tokens)
                }
            }
            Expr::Phrase(tokens) => doc.text().has_phrase(tokens),
            Expr::And(parts) => parts.iter().all(|p| p.matches(doc)),
            Expr::Or(parts) => parts.iter().any(|p| p.matches(doc)),
            Expr::Not(inner) => !inner.matches(doc),
            Expr::Prop { name, op, value } => prop_matches(&doc.prop(name), *op, value),
        }
    }

    /// Tokens that every match must contain (top-level AND of plain terms): used to narrow a
    /// scan with an inverted index.
    pub fn required_tokens(&self) -> Vec<String> {
        match self {
            Expr::Term { tokens, prefix: false } => tokens.clone(),
            Expr::Phrase(tokens) => tokens.clone(),
            Expr::And(parts) => parts.iter().flat_map(Expr::required_tokens).collect(),
            _ => Vec::new(),
        }
    }

    /// Positive free-text tokens, for highlighting.
    pub fn highlight_terms(&self) -> Vec<(String, bool)> {
        match self {
            Expr::Term { tokens, prefix } => {
                let n = tokens.len();
                tokens.iter().enumerate().map(|(i, t)| (t.clone(), *prefix && i + 1 == n)).collect()
            }
            Expr::Phrase(tokens) => tokens.iter().map(|t| (t.clone(), false)).collect(),
            Expr::And(parts) | Expr::Or(parts) => {
                parts.iter().flat_map(Expr::highlight_terms).collect()
            }
            Expr::Prop { name, value, .. }
                if matches!(name.as_str(), "subject" | "body" | "filename" | "title") =>
            {
                tokenize(value).into_iter().map(|t| (t, false)).collect()
            }
            _ => Vec::new(),
        }
    }
}

fn prop_matches(prop: &PropValue, op: Op, value: &str) -> bool {
    match prop {
        PropValue::Unknown => false,
        PropValue::Text(text) => {
            let prefix = value.ends_with('*');
            let tokens = tokenize(value.trim_end_matches('*'));
            let hit = match tokens.len() {
                0 => false,
                1 => text.has_token(&tokens[0], prefix),
                _ => text.has_phrase(&tokens),
            };
            match op {
                Op::Colon | Op::Eq => hit,
                Op::Ne => !hit,
                _ => false,
            }
        }
        PropValue::Url(url) => {
            let url = url.to_ascii_lowercase();
            let want = value.trim_end_matches('*').to_ascii_lowercase();
            match op {
                Op::Colon => url.starts_with(&want),
                Op::Eq => url == want,
                Op::Ne => url != want,
                _ => false,
            }
        }
        PropValue::Keyword(k) => {
            let eq = k.eq_ignore_ascii_case(value.trim_start_matches('.'));
            match op {
                Op::Colon | Op::Eq => eq,
                Op::Ne => !eq,
                _ => false,
            }
        }
        PropValue::Bool(b) => {
            let want = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return false,
            };
            match op {
                Op::Colon | Op::Eq => *b == want,
                Op::Ne => *b != want,
                _ => false,
            }
        }
        PropValue::Date(d) => date_matches(*d, op, value),
    }
}

/// Parses `2024-01-01`, `2024-01-01T10:00:00Z` or `07/23/2018` into a `[start, end)` range.
pub fn parse_date_range(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let value = value.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        let dt = dt.with_timezone(&Utc);
        return Some((dt, dt + chrono::Duration::seconds(1)));
    }
    if let Ok(ndt) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        let dt = Utc.from_utc_datetime(&ndt);
        return Some((dt, dt + chrono::Duration::seconds(1)));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(value, "%m/%d/%Y"))
        .ok()?;
    let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?);
    Some((start, start + chrono::Duration::days(1)))
}

fn date_matches(d: DateTime<Utc>, op: Op, value: &str) -> bool {
    if let Some((a, b)) = value.split_once("..") {
        return match (parse_date_range(a), parse_date_range(b)) {
            (Some((start, _)), Some((_, end))) => d >= start && d < end,
            _ => false,
        };
    }
    let Some((start, end)) = parse_date_range(value) else { return false };
    match op {
        Op::Colon | Op::Eq => d >= start && d < end,
        Op::Ne => d < start || d >= end,
        Op::Ge => d >= start,
        Op::Gt => d >= end,
        Op::Le => d < end,
        Op::Lt => d < start,
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
/// (dates) up front, so [`Query::matches`] does no per-document allocation. It gives exactly the
/// answers of [`Expr::matches`] (the reference evaluator, kept for `$search` and as the oracle of
/// the differential tests).
#[derive(Debug, Clone)]
pub struct Query {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
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
struct PropTest {
    text: TextTest,
    /// `value` without a trailing `*` (URL prefix/equality, ASCII case-insensitive).
    url: String,
    /// `value` without leading dots (keyword equality).
    keyword: String,
    boolean: Option<bool>,
    date: DateTest,
}

#[derive(Debug, Clone)]
enum TextTest {
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

/// An inverted index over one collection of documents: token → ascending document positions.
///
/// It narrows a query to candidates ([`PostingIndex::candidates`]); the candidates are then
/// verified with [`Query::matches`], so the index only ever has to give a superset of the matches.
#[derive(Debug, Default)]
pub struct PostingIndex {
    postings: HashMap<Box<str>, Vec<u32>>,
    /// The tokens in sorted order, for `prefix*` terms.
    vocab: Vec<Box<str>>,
}

impl PostingIndex {
    /// Indexes documents in position order.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a SearchText>) -> Self {
        let mut postings: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (pos, text) in texts.into_iter().enumerate() {
            let pos = pos as u32;
            for token in text.tokens() {
                match postings.get_mut(token) {
                    Some(list) => {
                        if list.last() != Some(&pos) {
                            list.push(pos);
                        }
                    }
                    None => {
                        postings.insert(token.into(), vec![pos]);
                    }
                }
            }
        }
        for list in postings.values_mut() {
            list.shrink_to_fit();
        }
        let mut vocab: Vec<Box<str>> = postings.keys().cloned().collect();
        vocab.sort_unstable();
        Self { postings, vocab }
    }

    /// The positions of the documents containing `token`.
    pub fn get(&self, token: &str) -> Option<&Vec<u32>> {
        self.postings.get(token)
    }

    /// Approximate heap bytes held (keys, lists, table slots).
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, Vec<u32>)>() + 1;
        self.postings.iter().map(|(k, v)| 2 * k.len() + 4 * v.capacity()).sum::<usize>()
            + self.postings.capacity() * slot
            + self.vocab.capacity() * std::mem::size_of::<Box<str>>()
    }

    fn token(&self, token: &str, prefix: bool) -> Option<Vec<u32>> {
        if !prefix {
            return Some(self.get(token).cloned().unwrap_or_default());
        }
        if token.is_empty() {
            return None;
        }
        let start = self.vocab.partition_point(|t| &**t < token);
        let mut out: Vec<u32> = Vec::new();
        let mut lists = 0;
        for t in self.vocab[start..].iter().take_while(|t| t.starts_with(token)) {
            out.extend_from_slice(&self.postings[t]);
            lists += 1;
        }
        if lists > 1 {
            out.sort_unstable();
            out.dedup();
        }
        Some(out)
    }

    fn phrase(&self, tokens: &[String]) -> Option<Vec<u32>> {
        if tokens.iter().any(String::is_empty) {
            return None;
        }
        let mut lists: Vec<&[u32]> = Vec::with_capacity(tokens.len());
        for t in tokens {
            lists.push(self.get(t).map(Vec::as_slice).unwrap_or(&[]));
        }
        lists.sort_by_key(|l| l.len());
        let Some((first, rest)) = lists.split_first() else { return Some(Vec::new()) };
        Some(rest.iter().fold(first.to_vec(), |acc, l| intersect(&acc, l)))
    }

    /// A superset of the positions `query` matches, ascending; `None` when the index cannot
    /// narrow it (every document is a candidate). `in_text(name)` says whether the text of the
    /// property `name` is part of the indexed text (so `name:term` can use the postings).
    pub fn candidates(&self, query: &Query, in_text: &dyn Fn(&str) -> bool) -> Option<Vec<u32>> {
        self.node(&query.root, in_text)
    }

    /// Whether [`PostingIndex::candidates`] gives exactly the matches of `query` (no need to
    /// verify them): only terms of one token (`term`, `term*`) combined by AND and OR.
    pub fn is_exact(query: &Query) -> bool {
        fn exact(node: &Node) -> bool {
            match node {
                Node::Token(t, _) => !t.is_empty(),
                Node::And(parts) | Node::Or(parts) => !parts.is_empty() && parts.iter().all(exact),
                _ => false,
            }
        }
        exact(&query.root)
    }

    fn node(&self, node: &Node, in_text: &dyn Fn(&str) -> bool) -> Option<Vec<u32>> {
        match node {
            Node::All | Node::Not(_) => None,
            Node::Token(t, prefix) => self.token(t, *prefix),
            Node::Phrase(tokens) => self.phrase(tokens),
            Node::And(parts) => {
                let mut sets: Vec<Vec<u32>> =
                    parts.iter().filter_map(|p| self.node(p, in_text)).collect();
                sets.sort_by_key(Vec::len);
                let mut it = sets.into_iter();
                let first = it.next()?;
                Some(it.fold(first, |acc, s| intersect(&acc, &s)))
            }
            Node::Or(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    out = union(&out, &self.node(p, in_text)?);
                }
                Some(out)
            }
            Node::Prop { name, op: Op::Colon | Op::Eq, test } if in_text(name) => {
                match &test.text {
                    TextTest::Never => Some(Vec::new()),
                    TextTest::Token(t, prefix) => self.token(t, *prefix),
                    TextTest::Phrase(tokens) => self.phrase(tokens),
                }
            }
            Node::Prop { .. } => None,
        }
    }
}

/// Intersection of two ascending lists.
pub fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Union of two ascending lists.
pub fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// A hit summary: up to ~30 words around the first matching word, hit terms in `<c0>…</c0>`,
/// `<ddd/>` where text was cut.
pub fn summary(text: &str, terms: &[(String, bool)]) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let is_hit = |w: &str| {
        tokenize(w).iter().any(|t| {
            terms.iter().any(
                |(term, prefix)| if *prefix { t.starts_with(term.as_str()) } else { t == term },
            )
        })
    };
    let first = words.iter().position(|w| is_hit(w)).unwrap_or(0);
    let start = first.saturating_sub(8);
    let end = (start + 30).min(words.len());
    let mut out = String::new();
    if start > 0 {
        out.push_str("<ddd/>");
    }
    for (i, w) in words[start..end].iter().enumerate() {
        if i > 0 || start > 0 {
            out.push(' ');
        }
        let escaped = w.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        if is_hit(w) {
            out.push_str("<c0>");
            out.push_str(&escaped);
            out.push_str("</c0>");
        } else {
            out.push_str(&escaped);
        }
    }
    if end < words.len() {
        out.push_str(" <ddd/>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrictions_and_phrases_are_lexed() {
        let e = parse(r#"budget from:"ada@contoso.com" received>=2024-01-01"#).expect("parses");
        assert_eq!(
            e,
            Expr::And(vec![
                Expr::Term { tokens: vec!["budget".into()], prefix: false },
                Expr::Prop { name: "from".into(), op: Op::Colon, value: "ada@contoso.com".into() },
                Expr::Prop { name: "received".into(), op: Op::Ge, value: "2024-01-01".into() },
            ])
        );
    }

    #[test]
    fn or_not_and_parentheses_nest() {
        let e = parse("(a OR b) NOT c").expect("parses");
        assert!(matches!(e, Expr::And(ref p) if p.len() == 2));
    }

    #[test]
    fn a_quoted_injection_stays_one_phrase() {
        let e = parse(r#""pizza\" OR from:ceo@contoso.com""#).expect("parses");
        assert!(matches!(e, Expr::Phrase(_)));
    }

    #[test]
    fn unterminated_quotes_are_an_error() {
        assert!(parse("\"open").is_err());
    }

    #[test]
    fn summary_marks_hits() {
        let s = summary("The quarterly Budget review", &[("budget".into(), false)]);
        assert_eq!(s, "The quarterly <c0>Budget</c0> review");
    }

    #[test]
    fn token_and_phrase_matching_equal_the_needle_search() {
        let texts =
            ["", "budget", "Q3 budget-review budgets", "the budget the review", "a ab abc b"];
        let probes: [&[&str]; 9] = [
            &["budget"],
            &["budg"],
            &["review"],
            &["a"],
            &["ab", "abc"],
            &["abc", "b"],
            &["the", "review"],
            &["budget", "review"],
            &["b", "a"],
        ];
        for text in texts {
            let st = SearchText::new(text);
            for probe in probes {
                let tokens: Vec<String> = probe.iter().map(|t| (*t).to_owned()).collect();
                for prefix in [false, true] {
                    let needle = format!(" {}{}", tokens[0], if prefix { "" } else { " " });
                    assert_eq!(
                        st.has_token(&tokens[0], prefix),
                        st.0.contains(&needle),
                        "{text:?}"
                    );
                }
                let needle = format!(" {} ", tokens.join(" "));
                assert_eq!(st.has_phrase(&tokens), st.0.contains(&needle), "{text:?} {probe:?}");
            }
        }
    }
}
