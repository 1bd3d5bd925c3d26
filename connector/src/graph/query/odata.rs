//! OData query text built from user input, so that the input can never change a query's
//! meaning (`graph.md` §7.2, `security.md` §4.6 F2/F3).
//!
//! * Property paths are `&'static str`: they come from the code, never from input.
//! * String values become one literal: single quotes, `'` doubled (`'let''s meet'`).
//! * Date-times are formatted by the connector (`2024-01-01T00:00:00Z`), never copied.
//! * The whole expression is one query *value*; [`crate::graph::GraphRequest::query`]
//!   percent-encodes it, so `&`, `#` or `$expand=` in a value cannot add a query option.
//! * `$search` values (KQL inside OData) are wrapped by [`search_value`].

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

/// A comparison operator of `$filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Cmp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ge => "ge",
            Self::Gt => "gt",
            Self::Le => "le",
            Self::Lt => "lt",
        }
    }
}

/// A typed `$filter` value: rendering is the only way text reaches the expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    DateTime(DateTime<Utc>),
    Bool(bool),
}

impl Value<'_> {
    fn render(&self) -> String {
        match self {
            Self::Str(s) => string_literal(s),
            Self::DateTime(dt) => datetime_literal(*dt),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// `'…'` with every `'` doubled: the one way a string enters a `$filter`.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// An OData `DateTimeOffset` literal in UTC, second precision (`2024-01-01T00:00:00Z`).
pub fn datetime_literal(dt: DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A conjunction of restrictions, rendered in the order added. Graph wants the `$orderby`
/// property first in `$filter` (`InefficientFilter` otherwise), so callers add it first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<String>,
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `path op value`, e.g. `receivedDateTime ge 2024-01-01T00:00:00Z`.
    pub fn cmp(mut self, path: &'static str, op: Cmp, value: Value<'_>) -> Self {
        self.clauses.push(format!("{path} {} {}", op.as_str(), value.render()));
        self
    }

    /// `startswith(path,'prefix')`.
    pub fn starts_with(mut self, path: &'static str, prefix: &str) -> Self {
        self.clauses.push(format!("startswith({path},{})", string_literal(prefix)));
        self
    }

    /// `(a or b or …)` of `startswith` clauses over several paths with one prefix, e.g. a name
    /// matched against `displayName`, `mail` and `userPrincipalName`.
    pub fn any_starts_with(mut self, paths: &[&'static str], prefix: &str) -> Self {
        let literal = string_literal(prefix);
        let mut clause = String::from("(");
        for (i, path) in paths.iter().enumerate() {
            if i > 0 {
                clause.push_str(" or ");
            }
            let _ = write!(clause, "startswith({path},{literal})");
        }
        clause.push(')');
        self.clauses.push(clause);
        self
    }

    /// `(a eq 'v' or b eq 'v')`: one value compared with several paths.
    pub fn any_eq(mut self, paths: &[&'static str], value: &str) -> Self {
        let literal = string_literal(value);
        let parts: Vec<String> = paths.iter().map(|p| format!("{p} eq {literal}")).collect();
        self.clauses.push(format!("({})", parts.join(" or ")));
        self
    }

    /// The `$filter` value (clauses joined by ` and `).
    pub fn build(&self) -> String {
        self.clauses.join(" and ")
    }
}

/// The value of a messages `$search`: the KQL in double quotes (`$search="…"`). The KQL must
/// come from [`super::kql`]'s builders, which never emit `"` or `\` inside it for this form.
pub fn search_value(kql: &str) -> String {
    format!("\"{kql}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use fake_graph::odata::{CmpOp, FVal, Filter as Parsed, parse_filter};
    use proptest::prelude::*;

    #[test]
    fn quotes_are_doubled_inside_one_literal() {
        // security.md F2, verbatim.
        let f = Filter::new().cmp(
            "from/emailAddress/address",
            Cmp::Eq,
            Value::Str("x' or 1 eq 1 or subject eq 'y"),
        );
        assert_eq!(f.build(), "from/emailAddress/address eq 'x'' or 1 eq 1 or subject eq ''y'");
    }

    #[test]
    fn clauses_keep_their_order_and_dates_are_utc_seconds() {
        let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("date");
        let f = Filter::new()
            .cmp("receivedDateTime", Cmp::Ge, Value::DateTime(from))
            .cmp("hasAttachments", Cmp::Eq, Value::Bool(true))
            .any_starts_with(&["displayName", "mail"], "Ad'a");
        assert_eq!(
            f.build(),
            "receivedDateTime ge 2024-01-01T00:00:00Z and hasAttachments eq true and \
             (startswith(displayName,'Ad''a') or startswith(mail,'Ad''a'))"
        );
        assert_eq!(search_value("budget from:ada@contoso.com"), "\"budget from:ada@contoso.com\"");
    }

    proptest! {
        /// Whatever the text, the filter parses back to exactly the one comparison it was
        /// built as, with the text as its literal.
        #[test]
        fn text_is_always_exactly_one_literal(text in "\\PC{0,60}", tricky in "[' ()a-z,=]{0,20}") {
            for text in [text.as_str(), tricky.as_str()] {
                let built = Filter::new().cmp("subject", Cmp::Eq, Value::Str(text)).build();
                let parsed = parse_filter(&built).expect("parses");
                prop_assert_eq!(parsed, Parsed::Cmp {
                    path: "subject".into(),
                    op: CmpOp::Eq,
                    value: FVal::Str(text.to_owned()),
                });
                let built = Filter::new().starts_with("displayName", text).build();
                let parsed = parse_filter(&built).expect("parses");
                prop_assert_eq!(parsed, Parsed::StartsWith {
                    path: "displayname".into(),
                    prefix: text.to_owned(),
                });
            }
        }

        /// The built value, put in a URL by the Graph client, adds no query key.
        #[test]
        fn values_add_no_query_keys(text in "[&=#$%?+ a-z']{0,30}") {
            let filter = Filter::new().cmp("subject", Cmp::Eq, Value::Str(&text)).build();
            let req = crate::graph::GraphRequest::get(crate::graph::GraphPath::fixed("/me/messages"))
                .query("$filter", filter.clone())
                .top(5);
            let url = req.url(&url::Url::parse("https://graph.microsoft.com/v1.0").expect("base")).expect("url");
            let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            prop_assert_eq!(pairs, vec![("$filter".to_owned(), filter), ("$top".to_owned(), "5".to_owned())]);
        }
    }
}
