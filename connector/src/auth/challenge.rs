//! The `Authorization: Bearer` request header and the `WWW-Authenticate: Bearer` challenge
//! (RFC 6750 §2.1 and §3, RFC 9728 §5.1).

use std::fmt::Write as _;

/// Why an `Authorization` header could not be read as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the Authorization header does not use the Bearer scheme")]
    NotBearer,
    #[error("the bearer token is empty or contains characters not allowed in a token")]
    Malformed,
}

/// Longest bearer token accepted; Entra access tokens are a few KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Extracts the token from an `Authorization` value: scheme `Bearer` (any case), one or more
/// spaces, then a `token68` (RFC 7235 §2.1: `A-Z a-z 0-9 - . _ ~ + /` then optional `=`).
pub fn parse_bearer(value: &str) -> Result<&str, BearerError> {
    let (scheme, rest) = value.split_once(' ').ok_or(BearerError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(BearerError::Malformed);
    }
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
    {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

/// A `WWW-Authenticate: Bearer` challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: String,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub claims: Option<String>,
}

impl Challenge {
    /// Renders the header value. Parameter values are quoted strings; `"` and `\` are escaped
    /// and control characters dropped, so a description can never break the header.
    pub fn render(&self) -> String {
        let mut out = String::from("Bearer ");
        let mut first = true;
        let mut param = |name: &str, value: &str| {
            if !first {
                out.push_str(", ");
            }
            first = false;
            let _ = write!(out, "{name}=\"{}\"", quote(value));
        };
        param("resource_metadata", &self.resource_metadata);
        if let Some(s) = &self.scope {
            param("scope", s);
        }
        if let Some(e) = &self.error {
            param("error", e);
        }
        if let Some(d) = &self.error_description {
            param("error_description", d);
        }
        if let Some(c) = &self.claims {
            param("claims", c);
        }
        out
    }

    /// Parses a `Bearer` challenge with quoted or token parameter values (what clients do with
    /// our header; used by tests and by anything that relays a Graph challenge).
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, mut rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut c = Challenge::default();
        let mut seen_metadata = false;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if rest.is_empty() {
                break;
            }
            let (name, after) = rest.split_once('=')?;
            let name = name.trim();
            let (val, remaining) = if let Some(q) = after.strip_prefix('"') {
                let mut v = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, ch)) = chars.next() {
                    match ch {
                        '\\' => v.push(chars.next()?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        other => v.push(other),
                    }
                }
                (v, &q[end?..])
            } else {
                let stop = after.find(',').unwrap_or(after.len());
                (after[..stop].trim().to_owned(), &after[stop..])
            };
            match name.to_ascii_lowercase().as_str() {
                "resource_metadata" => {
                    c.resource_metadata = val;
                    seen_metadata = true;
                }
                "scope" => c.scope = Some(val),
                "error" => c.error = Some(val),
                "error_description" => c.error_description = Some(val),
                "claims" => c.claims = Some(val),
                _ => {}
            }
            rest = remaining;
        }
        seen_metadata.then_some(c)
    }
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => {}
            c if !c.is_ascii() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 16 KiB, written out so the test does not move with the constant.
    const SIXTEEN_KIB: usize = 16_384;

    #[test]
    fn a_token_of_exactly_the_length_cap_is_accepted_and_one_byte_more_is_malformed() {
        let at_cap = "a".repeat(SIXTEEN_KIB);
        assert_eq!(parse_bearer(&format!("Bearer {at_cap}")), Ok(at_cap.as_str()));
        let over = "a".repeat(SIXTEEN_KIB + 1);
        assert_eq!(parse_bearer(&format!("Bearer {over}")), Err(BearerError::Malformed));
        assert_eq!(parse_bearer("Bearer "), Err(BearerError::Malformed));
    }

    #[test]
    fn quoted_values_drop_control_characters_and_escape_quotes() {
        assert_eq!(quote("a\u{7}b\nc\"d\\e"), "abc\\\"d\\\\e");
        assert_eq!(quote("café"), "caf?");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_refused() {
        assert_eq!(parse_bearer("Bearer abc.def-ghi"), Ok("abc.def-ghi"));
        assert_eq!(parse_bearer("bearer  abc=="), Ok("abc=="));
        assert_eq!(parse_bearer("Basic dXNlcjpwYXNz"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer("Bearer"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer("Bearer "), Err(BearerError::Malformed));
        assert_eq!(parse_bearer("Bearer a b"), Err(BearerError::Malformed));
        assert_eq!(parse_bearer("Bearer a\"b"), Err(BearerError::Malformed));
    }

    #[test]
    fn a_challenge_renders_in_the_documented_order() {
        let c = Challenge {
            resource_metadata: "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp"
                .into(),
            scope: Some("api://x/access_as_user".into()),
            error: Some("invalid_token".into()),
            error_description: Some("the token \"expired\"".into()),
            claims: None,
        };
        assert_eq!(
            c.render(),
            r#"Bearer resource_metadata="https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp", scope="api://x/access_as_user", error="invalid_token", error_description="the token \"expired\"""#
        );
    }

    fn token68() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+/-]{1,200}={0,2}"
    }

    proptest! {
        #[test]
        fn any_token68_round_trips_through_the_bearer_parser(token in token68(), spaces in 1usize..4, scheme in "(?i:bearer)") {
            let header = format!("{scheme}{}{token}", " ".repeat(spaces));
            prop_assert_eq!(parse_bearer(&header), Ok(token.as_str()));
        }

        #[test]
        fn the_bearer_parser_never_panics_and_never_returns_whitespace(value in "\\PC{0,300}") {
            if let Ok(t) = parse_bearer(&value) {
                prop_assert!(!t.is_empty());
                prop_assert!(!t.contains(' '));
            }
        }

        #[test]
        fn challenges_round_trip_through_render_and_parse(
            metadata in "https://[a-z]{1,12}\\.example/[a-z/]{0,20}",
            scope in proptest::option::of("[ -~]{0,40}"),
            error in proptest::option::of("[a-z_]{1,20}"),
            description in proptest::option::of("[ -~]{0,60}"),
            claims in proptest::option::of("[A-Za-z0-9+/=]{0,60}"),
        ) {
            let c = Challenge { resource_metadata: metadata, scope, error, error_description: description, claims };
            prop_assert_eq!(Challenge::parse(&c.render()), Some(c));
        }
    }
}
