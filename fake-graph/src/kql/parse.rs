//! The KQL grammar: `OR` binds loosest, then `AND` (explicit or implicit between adjacent
//! operands), then `NOT` / `-` / `+`, then parentheses, phrases, restrictions and terms. Produces
//! an [`Expr`] tree, which [`super::Query`] compiles for matching; restriction values stay as
//! written here and are read per property kind at compile time.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::lex::{KqlError, Op, Tok, lex, tokenize};

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
}
