//! OData query options: `$filter` (a subset), `$orderby`, `$select`, `$top`, `$skip`,
//! `$skiptoken`, and absolute `@odata.nextLink`s carrying every original option.
//!
//! `$filter` grammar: `or`/`and`/`not`, parentheses, `path op literal` with `eq ne gt ge lt le`,
//! and `startswith(path,'x')`. Literals: `'string'` (with `''` for a quote), date-times
//! (`2024-01-01T00:00:00Z`), `true`, `false`, `null`, numbers. Paths use `/`
//! (`from/emailAddress/address`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::GraphError;

/// A field value an entity exposes to `$filter` and `$orderby`.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum FVal {
    Str(String),
    Bool(bool),
    Num(f64),
    Date(DateTime<Utc>),
    Null,
}

/// Entities that `$filter`/`$orderby` can read (paths are lower case).
pub trait Fields {
    /// `None`: the entity has no such property (Graph: 400 for an unknown property).
    fn field(&self, path: &str) -> Option<FVal>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp { path: String, op: CmpOp, value: FVal },
    StartsWith { path: String, prefix: String },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

fn invalid(msg: impl Into<String>) -> GraphError {
    GraphError::bad_request("BadRequest", msg)
}

#[derive(Debug, Clone, PartialEq)]
enum T {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
}

fn lex(s: &str) -> Result<Vec<T>, GraphError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        match c[i] {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(T::Open);
                i += 1;
            }
            ')' => {
                out.push(T::Close);
                i += 1;
            }
            ',' => {
                out.push(T::Comma);
                i += 1;
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => {
                            return Err(invalid(
                                "Invalid filter clause: unterminated string literal.",
                            ));
                        }
                        Some('\'') if c.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(T::Str(v));
            }
            _ => {
                let st = i;
                while i < c.len() && !matches!(c[i], ' ' | '\t' | '(' | ')' | ',' | '\'') {
                    i += 1;
                }
                out.push(T::Ident(c[st..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

/// Parses a `$filter` expression.
pub fn parse_filter(s: &str) -> Result<Filter, GraphError> {
    let toks = lex(s)?;
    let mut p = P { t: toks, i: 0 };
    let f = p.or()?;
    if p.i != p.t.len() {
        return Err(invalid(format!(
            "Invalid filter clause: syntax error at position {} in '{s}'.",
            p.i
        )));
    }
    Ok(f)
}

struct P {
    t: Vec<T>,
    i: usize,
}

impl P {
    fn kw(&self, k: &str) -> bool {
        matches!(self.t.get(self.i), Some(T::Ident(x)) if x.eq_ignore_ascii_case(k))
    }
    fn or(&mut self) -> Result<Filter, GraphError> {
        let mut l = self.and()?;
        while self.kw("or") {
            self.i += 1;
            l = Filter::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Filter, GraphError> {
        let mut l = self.unary()?;
        while self.kw("and") {
            self.i += 1;
            l = Filter::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Filter, GraphError> {
        if self.kw("not") {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        match self.t.get(self.i).cloned() {
            Some(T::Open) => {
                self.i += 1;
                let f = self.or()?;
                if self.t.get(self.i) != Some(&T::Close) {
                    return Err(invalid("Invalid filter clause: missing ')'."));
                }
                self.i += 1;
                Ok(f)
            }
            Some(T::Ident(name)) if self.t.get(self.i + 1) == Some(&T::Open) => {
                self.i += 2;
                let path = match self.t.get(self.i).cloned() {
                    Some(T::Ident(p)) => p,
                    _ => return Err(invalid("Invalid filter clause: expected a property.")),
                };
                self.i += 1;
                if self.t.get(self.i) != Some(&T::Comma) {
                    return Err(invalid("Invalid filter clause: expected ','."));
                }
                self.i += 1;
                let arg = match self.t.get(self.i).cloned() {
                    Some(T::Str(s)) => s,
                    _ => return Err(invalid("Invalid filter clause: expected a string literal.")),
                };
                self.i += 1;
                if self.t.get(self.i) != Some(&T::Close) {
                    return Err(invalid("Invalid filter clause: missing ')'."));
                }
                self.i += 1;
                if name.eq_ignore_ascii_case("startswith") {
                    Ok(Filter::StartsWith { path: path.to_ascii_lowercase(), prefix: arg })
                } else {
                    Err(invalid(format!("An unknown function with name '{name}' was found.")))
                }
            }
            Some(T::Ident(path)) => {
                self.i += 1;
                let op = match self.t.get(self.i) {
                    Some(T::Ident(o)) => match o.to_ascii_lowercase().as_str() {
                        "eq" => CmpOp::Eq,
                        "ne" => CmpOp::Ne,
                        "gt" => CmpOp::Gt,
                        "ge" => CmpOp::Ge,
                        "lt" => CmpOp::Lt,
                        "le" => CmpOp::Le,
                        other => {
                            return Err(invalid(format!(
                                "Invalid filter clause: unknown operator '{other}'."
                            )));
                        }
                    },
                    _ => return Err(invalid("Invalid filter clause: expected an operator.")),
                };
                self.i += 1;
                let value = match self.t.get(self.i).cloned() {
                    Some(T::Str(s)) => FVal::Str(s),
                    Some(T::Ident(v)) => literal(&v)?,
                    _ => return Err(invalid("Invalid filter clause: expected a literal.")),
                };
                self.i += 1;
                Ok(Filter::Cmp { path: path.to_ascii_lowercase(), op, value })
            }
            _ => Err(invalid("Invalid filter clause: unexpected token.")),
        }
    }
}

fn literal(v: &str) -> Result<FVal, GraphError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => return Ok(FVal::Bool(true)),
        "false" => return Ok(FVal::Bool(false)),
        "null" => return Ok(FVal::Null),
        _ => {}
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(v) {
        return Ok(FVal::Date(d.with_timezone(&Utc)));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(FVal::Date(dt.and_utc()));
    }
    v.parse::<f64>()
        .map(FVal::Num)
        .map_err(|_| invalid(format!("Invalid filter clause: '{v}' is not a valid literal.")))
}

impl Filter {
    /// Property paths in order of first appearance.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        match self {
            Filter::Cmp { path, .. } | Filter::StartsWith { path, .. } => {
                if !out.contains(path) {
                    out.push(path.clone());
                }
            }
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Filter::Not(a) => a.collect(out),
        }
    }

    /// Checks that `entity` knows every path (400 otherwise).
    pub fn validate(&self, entity: &dyn Fields) -> Result<(), GraphError> {
        for p in self.paths() {
            if entity.field(&p).is_none() {
                return Err(GraphError::bad_request(
                    "ErrorInvalidProperty",
                    format!(
                        "Could not find a property named '{p}' on type 'microsoft.graph.entity'."
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn eval(&self, e: &dyn Fields) -> bool {
        match self {
            Filter::And(a, b) => a.eval(e) && b.eval(e),
            Filter::Or(a, b) => a.eval(e) || b.eval(e),
            Filter::Not(a) => !a.eval(e),
            Filter::StartsWith { path, prefix } => match e.field(path) {
                Some(FVal::Str(s)) => s.to_lowercase().starts_with(&prefix.to_lowercase()),
                _ => false,
            },
            Filter::Cmp { path, op, value } => {
                let Some(actual) = e.field(path) else { return false };
                let ord = match (&actual, value) {
                    (FVal::Str(a), FVal::Str(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
                    (FVal::Date(a), FVal::Date(b)) => Some(a.cmp(b)),
                    (FVal::Date(a), FVal::Str(b)) => {
                        DateTime::parse_from_rfc3339(b).ok().map(|b| a.cmp(&b.with_timezone(&Utc)))
                    }
                    (FVal::Bool(a), FVal::Bool(b)) => Some(a.cmp(b)),
                    (FVal::Num(a), FVal::Num(b)) => a.partial_cmp(b),
                    (FVal::Null, FVal::Null) => Some(std::cmp::Ordering::Equal),
                    _ => None,
                };
                use std::cmp::Ordering::*;
                match (op, ord) {
                    (CmpOp::Eq, Some(o)) => o == Equal,
                    (CmpOp::Ne, Some(o)) => o != Equal,
                    (CmpOp::Ne, None) => true,
                    (CmpOp::Gt, Some(o)) => o == Greater,
                    (CmpOp::Ge, Some(o)) => o != Less,
                    (CmpOp::Lt, Some(o)) => o == Less,
                    (CmpOp::Le, Some(o)) => o != Greater,
                    _ => false,
                }
            }
        }
    }
}

/// `$orderby`: `(path, descending)` pairs.
pub fn parse_orderby(s: &str) -> Result<Vec<(String, bool)>, GraphError> {
    s.split(',')
        .map(|part| {
            let mut it = part.split_whitespace();
            let path = it
                .next()
                .ok_or_else(|| invalid("Invalid $orderby: empty clause."))?
                .to_ascii_lowercase();
            let desc = match it.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(invalid(format!("Invalid $orderby direction '{other}'.")));
                }
            };
            Ok((path, desc))
        })
        .collect()
}

/// Compares two entities by an `$orderby` list.
pub fn compare(a: &dyn Fields, b: &dyn Fields, order: &[(String, bool)]) -> std::cmp::Ordering {
    for (path, desc) in order {
        let o = a.field(path).partial_cmp(&b.field(path)).unwrap_or(std::cmp::Ordering::Equal);
        let o = if *desc { o.reverse() } else { o };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// Parsed query string of one request.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Self { pairs }
    }

    /// A query option by name (case-insensitive, with or without `$`).
    pub fn get(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.pairs
            .iter()
            .find(|(k, _)| {
                k.eq_ignore_ascii_case(name) || k.trim_start_matches('$').eq_ignore_ascii_case(bare)
            })
            .map(|(_, v)| v.as_str())
    }

    /// `$top` within `1..=max`, `default` when absent.
    pub fn top(&self, default: usize, max: usize) -> Result<usize, GraphError> {
        match self.get("$top") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                Ok(n) if n > max => Err(GraphError::bad_request(
                    "ErrorInvalidUrlQuery",
                    format!(
                        "The value of the $top query parameter is invalid: it must be between 1 and {max}."
                    ),
                )),
                _ => Err(GraphError::bad_request(
                    "ErrorInvalidUrlQuery",
                    format!("Invalid $top value '{v}'."),
                )),
            },
        }
    }

    /// The paging offset from `$skiptoken` (ours) or `$skip`.
    pub fn offset(&self) -> Result<usize, GraphError> {
        if let Some(tok) = self.get("$skiptoken") {
            return decode_skiptoken(tok)
                .ok_or_else(|| GraphError::bad_request("BadRequest", "Invalid $skiptoken."));
        }
        match self.get("$skip") {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                GraphError::bad_request(
                    "ErrorInvalidUrlQuery",
                    format!("Invalid $skip value '{v}'."),
                )
            }),
        }
    }

    /// `$select` as lower-case property names (empty = all).
    pub fn select(&self) -> Vec<String> {
        self.get("$select")
            .map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The next-page link: every original option except paging, plus `$skiptoken`.
    pub fn next_link(&self, base: &str, path: &str, offset: usize) -> String {
        // Written into one string sized for the usual case (every byte of the options encoded
        // as itself or as `%XX`), instead of encoding into a second string and copying it.
        let options: usize = self.pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut link = String::with_capacity(base.len() + path.len() + options * 2 + 40);
        link.push_str(base);
        link.push_str(path);
        link.push('?');
        let start = link.len();
        let mut ser = url::form_urlencoded::Serializer::for_suffix(link, start);
        for (k, v) in &self.pairs {
            if k.eq_ignore_ascii_case("$skiptoken") || k.eq_ignore_ascii_case("$skip") {
                continue;
            }
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &encode_skiptoken(offset));
        ser.finish()
    }
}

fn encode_skiptoken(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("fgskip:{offset}"))
}

fn decode_skiptoken(tok: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("fgskip:")?.parse().ok()
}

/// Keeps only `$select`ed properties (case-insensitive); `id` and annotations always stay.
pub fn apply_select(value: Value, select: &[String]) -> Value {
    if select.is_empty() {
        return value;
    }
    match value {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .into_iter()
                .filter(|(k, _)| {
                    k == "id"
                        || k.starts_with('@')
                        || select.iter().any(|s| s.eq_ignore_ascii_case(k))
                })
                .collect();
            Value::Object(kept)
        }
        other => other,
    }
}

/// Renders a Graph date-time (`2024-05-01T09:00:00Z`).
pub fn dt(d: DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(20);
    crate::wire::push_dt(&mut out, d);
    // `push_dt` writes ASCII only.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_inside_literals() {
        let f = parse_filter("subject eq 'x'' or 1 eq 1 or subject eq ''y'").expect("parses");
        assert_eq!(
            f,
            Filter::Cmp {
                path: "subject".into(),
                op: CmpOp::Eq,
                value: FVal::Str("x' or 1 eq 1 or subject eq 'y".into())
            }
        );
    }

    #[test]
    fn filter_paths_keep_their_order() {
        let f = parse_filter(
            "receivedDateTime ge 2024-01-01T00:00:00Z and from/emailAddress/address eq 'a@b.c'",
        )
        .expect("parses");
        assert_eq!(
            f.paths(),
            vec!["receiveddatetime".to_owned(), "from/emailaddress/address".to_owned()]
        );
    }

    #[test]
    fn dates_render_like_chrono() {
        for s in ["2024-05-01T09:00:00Z", "0999-12-31T23:59:59Z", "2024-02-29T00:00:07Z"] {
            let d = DateTime::parse_from_rfc3339(s).expect("date").with_timezone(&Utc);
            assert_eq!(dt(d), d.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            assert_eq!(dt(d), s);
        }
    }

    #[test]
    fn skiptokens_round_trip() {
        assert_eq!(decode_skiptoken(&encode_skiptoken(75)), Some(75));
    }
}
