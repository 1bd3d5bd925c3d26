//! The reference evaluator, for tests only: a direct recursive scan over the parsed [`Expr`],
//! reading every restriction value afresh for every document. It is slow and obviously right,
//! which is what an oracle should be; the compiled [`Query`] and the posting index are checked
//! against it here (random documents and queries) and in `routes/search/tests.rs` (the fixture
//! world).

use chrono::{DateTime, Utc};

use super::{
    eval::{KqlDoc, PropValue},
    lex::{Op, tokenize},
    parse::{Expr, parse_date_range},
};

/// Whether `expr` matches `doc`, by the plain scan.
pub(crate) fn matches(expr: &Expr, doc: &dyn KqlDoc) -> bool {
    match expr {
        Expr::All => true,
        Expr::Term { tokens, prefix } => {
            if tokens.len() == 1 {
                doc.text().has_token(&tokens[0], *prefix)
            } else {
                doc.text().has_phrase(tokens)
            }
        }
        Expr::Phrase(tokens) => doc.text().has_phrase(tokens),
        Expr::And(parts) => parts.iter().all(|p| matches(p, doc)),
        Expr::Or(parts) => parts.iter().any(|p| matches(p, doc)),
        Expr::Not(inner) => !matches(inner, doc),
        Expr::Prop { name, op, value } => prop_matches(&doc.prop(name), *op, value),
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

/// The compiled [`super::Query`] and the [`super::PostingIndex`] against the plain scan, on random
/// documents (every property kind, borrowed and owned) and random queries over a small vocabulary
/// (so that terms, prefixes and phrases hit).
#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::kql::{PostingIndex, PropRef, Query, SearchText, parse};

    const WORDS: &[&str] =
        &["budget", "budgets", "review", "q3", "ada", "adele", "contoso", "com", "the", "a"];

    #[derive(Debug)]
    struct Doc {
        /// Body and subject tokens: `subject` is inside the indexed text.
        text: SearchText,
        subject: SearchText,
        path: String,
        filetype: String,
        is_read: bool,
        received: DateTime<Utc>,
        /// Whether `prop_ref` lends values (the hot path) or builds them (the default).
        borrowed: bool,
    }

    impl KqlDoc for Doc {
        fn text(&self) -> &SearchText {
            &self.text
        }

        fn prop(&self, name: &str) -> PropValue {
            match name {
                "subject" => PropValue::Text(self.subject.clone()),
                "path" => PropValue::Url(self.path.clone()),
                "filetype" => PropValue::Keyword(self.filetype.clone()),
                "isread" => PropValue::Bool(self.is_read),
                "received" => PropValue::Date(self.received),
                _ => PropValue::Unknown,
            }
        }

        fn prop_ref(&self, name: &str) -> PropRef<'_> {
            match name {
                "subject" if self.borrowed => PropRef::Text(&self.subject),
                "path" if self.borrowed => PropRef::Url(&self.path),
                "filetype" if self.borrowed => PropRef::Keyword(&self.filetype),
                _ => PropRef::Owned(self.prop(name)),
            }
        }
    }

    fn word() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(WORDS)
    }

    fn doc() -> impl Strategy<Value = Doc> {
        let paths = proptest::sample::select(vec![
            "https://contoso.sharepoint.com/sites/a",
            "https://Contoso.SharePoint.com/sites/B/doc.txt",
            "https://fabrikam.example/x",
        ]);
        let kinds = proptest::sample::select(vec!["docx", "txt", "PDF"]);
        (
            proptest::collection::vec(word(), 0..8),
            proptest::collection::vec(word(), 0..4),
            paths,
            kinds,
            any::<bool>(),
            0i64..60 * 24,
            any::<bool>(),
        )
            .prop_map(|(body, subject, path, kind, is_read, hours, borrowed)| {
                let subject = subject.join(" ");
                let start = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).single().expect("date");
                Doc {
                    text: SearchText::new(&format!("{} {subject}", body.join("-"))),
                    subject: SearchText::new(&subject),
                    path: path.to_owned(),
                    filetype: kind.to_owned(),
                    is_read,
                    received: start + chrono::Duration::hours(hours),
                    borrowed,
                }
            })
    }

    fn atom() -> impl Strategy<Value = String> {
        let fixed = proptest::sample::select(vec![
            "path:https://contoso.sharepoint.com/sites",
            "path=https://contoso.sharepoint.com/sites/a",
            "path<>https://fabrikam.example/x",
            "path:\"https://contoso.sharepoint.com/sites/b*\"",
            "filetype:docx",
            "filetype:.txt",
            "filetype=TXT",
            "filetype<>pdf",
            "filetype>docx",
            "isread:true",
            "isread=no",
            "isread<>1",
            "isread:maybe",
            "received>=2024-05-10",
            "received<2024-05-20",
            "received>2024-05-03T10:00:00Z",
            "received<=05/07/2024",
            "received=2024-05-02",
            "received<>2024-05-02",
            "received:2024-05-01..2024-05-15",
            "received:someday",
            "nosuchprop:budget",
            "*",
        ]);
        prop_oneof![
            4 => word().prop_map(str::to_owned),
            2 => (word(), 1usize..4).prop_map(|(w, n)| format!("{}*", &w[..n.min(w.len())])),
            1 => (word(), word()).prop_map(|(a, b)| format!("\"{a} {b}\"")),
            1 => (word(), word()).prop_map(|(a, b)| format!("{a}-{b}")),
            2 => (word(), proptest::sample::select(vec![":", "=", "<>", ">="]))
                .prop_map(|(w, op)| format!("subject{op}{w}")),
            1 => (word(), word()).prop_map(|(a, b)| format!("subject:\"{a} {b}\"")),
            1 => (word(), 1usize..3).prop_map(|(w, n)| format!("subject:{}*", &w[..n.min(w.len())])),
            2 => fixed.prop_map(str::to_owned),
        ]
    }

    fn query_text() -> impl Strategy<Value = String> {
        atom().prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
                inner.clone().prop_map(|a| format!("NOT {a}")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("{a} -{b}")),
            ]
        })
    }

    fn subject_in_text(name: &str) -> bool {
        name == "subject"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn the_compiled_query_and_the_index_agree_with_the_scan(
            q in query_text(),
            docs in proptest::collection::vec(doc(), 0..12),
        ) {
            // Queries the parser refuses never reach matching.
            let Ok(expr) = parse(&q) else { return Ok(()) };
            let query = Query::new(&expr);
            let mut want = Vec::new();
            for (i, d) in docs.iter().enumerate() {
                let scan = matches(&expr, d);
                prop_assert_eq!(query.matches(d), scan, "{:?} on {:?}", q, d);
                if scan {
                    want.push(i as u32);
                }
            }
            let index = PostingIndex::build(docs.iter().map(|d| &d.text));
            if let Some(candidates) = index.candidates(&query, &subject_in_text) {
                prop_assert!(
                    want.iter().all(|i| candidates.contains(i)),
                    "{:?}: candidates {:?} miss some of {:?}", q, candidates, want
                );
            }
            let got = index.matching(docs.len(), &query, &subject_in_text, |i| {
                query.matches(&docs[i as usize])
            });
            prop_assert_eq!(got, want, "{:?}", q);
        }
    }
}
