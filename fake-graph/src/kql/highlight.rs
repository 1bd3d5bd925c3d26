//! Hit highlighting for search results: the positive free-text terms of a query, and Graph's
//! hit summary (`<c0>…</c0>` around hits, `<ddd/>` where text was cut).

use super::{lex::tokenize, parse::Expr};

impl Expr {
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
    fn summary_marks_hits() {
        let s = summary("The quarterly Budget review", &[("budget".into(), false)]);
        assert_eq!(s, "The quarterly <c0>Budget</c0> review");
    }
}
