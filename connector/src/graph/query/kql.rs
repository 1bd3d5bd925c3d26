//! KQL query strings built from user input (`graph.md` §7.1, `security.md` §4.6 F1/F4).
//!
//! Free text never reaches KQL raw: it becomes **one quoted phrase** ([`Kql::phrase`]) or a
//! list of plain **terms** ([`Kql::terms`], for `$search`, where nested quotes are not
//! portable). Property restrictions (`from:`, `received>=`, `hasAttachments:`) are built only
//! from typed, validated tool parameters ([`Address`], dates, booleans), never from free text.
//!
//! Neutralising rather than escaping: KQL has no documented escape inside a phrase, and `"`
//! and `\` are punctuation to the word breaker, so replacing them with a space keeps the
//! phrase's words while making it impossible to close the phrase early. An unquoted `OR`,
//! `NOT`, `path:` or `(` in user text would change the query; inside a phrase, or reduced to
//! its alphanumeric words with operator keywords lower-cased, it is just a word.

use std::fmt;

use chrono::NaiveDate;

/// Most characters of free text a tool accepts (`security.md` F4: 1 KiB).
pub const MAX_TEXT_CHARS: usize = 1024;

/// Why a text parameter was refused; the tool turns it into `invalid_params` naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is longer than {MAX_TEXT_CHARS} characters")]
    TooLong,
    #[error("contains control characters")]
    Control,
    #[error("is empty")]
    Empty,
    #[error("is not a valid email address")]
    NotAnAddress,
}

/// Checks free text from a tool argument: trimmed, not empty, at most [`MAX_TEXT_CHARS`], no
/// control characters (a tab or newline is accepted as a space).
pub fn validate_text(text: &str) -> Result<String, TextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(TextError::TooLong);
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(TextError::Control);
    }
    // Bidi overrides and zero-width characters can hide text from a reviewer of the query.
    if text.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')) {
        return Err(TextError::Control);
    }
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// An email address accepted in a property restriction (`from:`, `to:`) and OData literals:
/// `local@domain`, ASCII, no quotes, spaces, parentheses or KQL operators, so it is one token
/// wherever it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address(String);

impl Address {
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let s = raw.trim();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "._%+-'".contains(c);
        let Some((local, domain)) = s.split_once('@') else {
            return Err(TextError::NotAnAddress);
        };
        let valid = !local.is_empty()
            && local.len() <= 64
            && domain.len() <= 253
            && local.chars().all(ok_char)
            && !local.starts_with(['-', '+', '\''])
            && domain.contains('.')
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if valid { Ok(Self(s.to_ascii_lowercase())) } else { Err(TextError::NotAnAddress) }
    }

    /// Whether `raw` looks like an address at all (a caller may then fall back to a name).
    pub fn looks_like(raw: &str) -> bool {
        raw.contains('@')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Date comparisons allowed in a restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOp {
    Ge,
    Le,
    Gt,
    Lt,
}

/// A KQL query assembled from safe parts, joined by spaces (implicit AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kql {
    parts: Vec<String>,
}

/// Keywords KQL treats as operators when upper case and unquoted.
const OPERATORS: &[&str] = &["AND", "OR", "NOT", "NEAR", "ONEAR", "XRANK", "WORDS"];

impl Kql {
    pub fn new() -> Self {
        Self::default()
    }

    /// Free text as one phrase: `"…"`, with `"` and `\` (and anything not printable) replaced
    /// by a space. Text with no words left adds nothing.
    pub fn phrase(mut self, text: &str) -> Self {
        let cleaned: String = text
            .chars()
            .map(|c| if c == '"' || c == '\\' || c.is_control() { ' ' } else { c })
            .collect();
        let words: Vec<&str> = cleaned.split_whitespace().collect();
        if words.iter().any(|w| w.chars().any(char::is_alphanumeric)) {
            self.parts.push(format!("\"{}\"", words.join(" ")));
        }
        self
    }

    /// Free text as plain words (for `$search`, where a nested phrase is not portable): only
    /// letters and digits survive, every other character splits words, and operator keywords
    /// are lower-cased so they are words again.
    pub fn terms(mut self, text: &str) -> Self {
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            if OPERATORS.contains(&word) {
                self.parts.push(word.to_lowercase());
            } else {
                self.parts.push(word.to_owned());
            }
        }
        self
    }

    /// `name:address`, e.g. `from:ada@contoso.com`. `name` is the code's own constant.
    pub fn address(mut self, name: &'static str, address: &Address) -> Self {
        self.parts.push(format!("{name}:{address}"));
        self
    }

    /// `name>=2024-01-01`. Dates are formatted here, never copied from input.
    pub fn date(mut self, name: &'static str, op: DateOp, date: NaiveDate) -> Self {
        let op = match op {
            DateOp::Ge => ">=",
            DateOp::Le => "<=",
            DateOp::Gt => ">",
            DateOp::Lt => "<",
        };
        self.parts.push(format!("{name}{op}{}", date.format("%Y-%m-%d")));
        self
    }

    /// `name>=2024-01-01T09:30:00Z`: an exact UTC instant, formatted here.
    pub fn datetime(
        mut self,
        name: &'static str,
        op: DateOp,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let op = match op {
            DateOp::Ge => ">=",
            DateOp::Le => "<=",
            DateOp::Gt => ">",
            DateOp::Lt => "<",
        };
        self.parts
            .push(format!("{name}{op}{}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        self
    }

    /// `name:true` / `name:false`.
    pub fn flag(mut self, name: &'static str, value: bool) -> Self {
        self.parts.push(format!("{name}:{value}"));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn build(&self) -> String {
        self.parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_graph::kql::{Expr, Op, parse, tokenize};
    use proptest::prelude::*;

    #[test]
    fn an_injected_operator_stays_inside_the_phrase() {
        // security.md F1 / graph.md §7.1, verbatim.
        let q = Kql::new().phrase("pizza\" OR from:ceo@contoso.com").build();
        assert_eq!(q, "\"pizza OR from:ceo@contoso.com\"");
        assert_eq!(
            parse(&q).expect("parses"),
            Expr::Phrase(vec![
                "pizza".into(),
                "or".into(),
                "from".into(),
                "ceo".into(),
                "contoso".into(),
                "com".into()
            ])
        );
    }

    #[test]
    fn restrictions_come_from_typed_values() {
        let ada = Address::parse(" Ada@Contoso.com ").expect("address");
        let d = NaiveDate::from_ymd_opt(2024, 1, 31).expect("date");
        let q = Kql::new()
            .phrase("budget")
            .address("from", &ada)
            .date("received", DateOp::Ge, d)
            .flag("hasAttachments", true)
            .build();
        assert_eq!(q, "\"budget\" from:ada@contoso.com received>=2024-01-31 hasAttachments:true");
        assert_eq!(Kql::new().terms("a OR b (NOT c) from:x -y").build(), "a or b not c from x y");
    }

    #[test]
    fn addresses_and_text_are_validated() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@contoso.com",
            "a\"b@c.com",
            "a b@c.com",
            "a@b",
            "a@b..c",
            "a:b@c.com",
            "a@(b).com",
        ] {
            assert_eq!(Address::parse(bad), Err(TextError::NotAnAddress), "{bad}");
        }
        assert_eq!(validate_text("  "), Err(TextError::Empty));
        assert_eq!(validate_text("a\u{0}b"), Err(TextError::Control));
        assert_eq!(validate_text("a\u{202E}b"), Err(TextError::Control));
        assert_eq!(validate_text(&"x".repeat(MAX_TEXT_CHARS + 1)), Err(TextError::TooLong));
        assert_eq!(validate_text(" a \n b ").as_deref(), Ok("a b"));
    }

    #[test]
    fn text_up_to_the_cap_in_characters_is_accepted() {
        let exactly = "é".repeat(MAX_TEXT_CHARS);
        assert_eq!(validate_text(&exactly).as_deref(), Ok(exactly.as_str()));
        assert_eq!(validate_text("tab\tand\r\nnewline").as_deref(), Ok("tab and newline"));
    }

    #[test]
    fn an_address_is_lower_cased_and_bounded_by_its_part_lengths() {
        let ada = Address::parse(" Ada.Lovelace+q1@Mail.Contoso-Labs.com ").expect("address");
        assert_eq!(ada.as_str(), "ada.lovelace+q1@mail.contoso-labs.com");
        assert_eq!(ada.to_string(), ada.as_str());
        let local = |n: usize| format!("{}@contoso.com", "a".repeat(n));
        assert!(Address::parse(&local(64)).is_ok());
        assert_eq!(Address::parse(&local(65)), Err(TextError::NotAnAddress));
        let domain = |n: usize| format!("ada@{}.com", "d".repeat(n - 4));
        assert!(Address::parse(&domain(253)).is_ok());
        assert_eq!(Address::parse(&domain(254)), Err(TextError::NotAnAddress));
        for bad in ["-ada@contoso.com", "+ada@contoso.com", "'ada@contoso.com"] {
            assert_eq!(Address::parse(bad), Err(TextError::NotAnAddress), "{bad}");
        }
        assert!(Address::looks_like("ada@contoso"));
        assert!(!Address::looks_like("Ada Lovelace"));
    }

    #[test]
    fn backslashes_and_controls_become_spaces_in_a_phrase() {
        assert_eq!(Kql::new().phrase("C:\\budget\\q1").build(), "\"C: budget q1\"");
        assert_eq!(Kql::new().phrase("a\u{7}b").build(), "\"a b\"");
        // No word left: nothing is added.
        assert!(Kql::new().phrase(" \"\\ ").is_empty());
        assert!(!Kql::new().flag("hasAttachments", false).is_empty());
    }

    #[test]
    fn instants_are_formatted_in_utc_with_their_operator() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-01-31T09:30:00+02:00")
            .expect("instant")
            .with_timezone(&chrono::Utc);
        let d = NaiveDate::from_ymd_opt(2024, 1, 31).expect("date");
        let q = Kql::new()
            .datetime("start", DateOp::Gt, at)
            .datetime("end", DateOp::Lt, at)
            .date("received", DateOp::Le, d)
            .datetime("sent", DateOp::Ge, at)
            .build();
        assert_eq!(
            q,
            "start>2024-01-31T07:30:00Z end<2024-01-31T07:30:00Z received<=2024-01-31 \
             sent>=2024-01-31T07:30:00Z"
        );
    }

    proptest! {
        /// Whatever the text, the phrase parses back to exactly one phrase with the text's
        /// words, and a restriction after it stays a separate restriction.
        #[test]
        fn text_is_always_exactly_one_phrase(text in "\\PC{0,80}", tricky in "[\"\\\\():*<>=a-zA-Z -]{0,30}") {
            for text in [text.as_str(), tricky.as_str()] {
                let q = Kql::new().phrase(text);
                if q.is_empty() {
                    prop_assert!(tokenize(text).is_empty());
                    continue;
                }
                let built = q.clone().flag("hasAttachments", true).build();
                let parsed = parse(&built).expect("parses");
                let want_phrase = Expr::Phrase(tokenize(text));
                let want_flag = Expr::Prop { name: "hasattachments".into(), op: Op::Colon, value: "true".into() };
                prop_assert_eq!(parsed, Expr::And(vec![want_phrase, want_flag]));
            }
        }

        /// Terms are plain words: no operator, restriction, phrase or group survives.
        #[test]
        fn terms_are_only_words(text in "\\PC{0,80}", tricky in "[\"():*<>=A-Z -]{0,30}") {
            for text in [text.as_str(), tricky.as_str()] {
                let q = Kql::new().terms(text);
                if q.is_empty() {
                    continue;
                }
                let parsed = parse(&q.build()).expect("parses");
                let parts = match parsed {
                    Expr::And(parts) => parts,
                    one => vec![one],
                };
                for part in parts {
                    prop_assert!(matches!(part, Expr::Term { prefix: false, .. }), "{part:?}");
                }
            }
        }
    }
}
