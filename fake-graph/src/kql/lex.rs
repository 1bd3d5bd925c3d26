//! Text to tokens, on both sides of a match: documents become [`SearchText`] (lower-cased
//! alphanumeric tokens, matched whole or by prefix, and as phrases), and a query string becomes
//! lexical tokens (words, quoted phrases, `name op value` restrictions, parentheses) for the
//! parser.

/// A query Graph would refuse: the message says what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct KqlError(pub String);

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

/// A restriction's comparison operator.
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

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Phrase(String),
    /// `name` `op` `value` written without spaces.
    Restriction(String, Op, String),
    Open,
    Close,
}

/// Splits a query string into tokens; fails only on an unterminated quote.
pub(super) fn lex(input: &str) -> Result<Vec<Tok>, KqlError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
