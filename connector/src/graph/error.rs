//! Graph failures: the OData error envelope, CAE challenges in `WWW-Authenticate`, and what
//! the user is told (`graph.md` §2–§3).

use std::{fmt, time::Duration};

use serde_json::Value;
use uuid::Uuid;

/// What went wrong with a Graph call. Messages from Graph are kept for logs, never shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// 401 without claims, twice: the Graph token was refused.
    #[error("Graph refused the token")]
    Unauthorized,
    /// 401/403 with `error="insufficient_claims"`: the user must sign in again with `claims`
    /// (base64, validated as base64 of a JSON object so it is safe in a header).
    #[error("Graph claims challenge")]
    ClaimsChallenge { claims: String },
    /// 403: access denied to the resource or missing permission.
    #[error("Graph denied access ({code})")]
    Forbidden { code: String, message: String },
    /// 404: not found or not accessible (never says which).
    #[error("not found")]
    NotFound,
    /// 429: still throttled within the retry budget, or the demanded wait exceeds it.
    #[error("throttled by Graph")]
    Throttled { retry_after: Option<Duration> },
    /// 5xx (503/504 after retries, or others).
    #[error("Graph unavailable")]
    Unavailable { retry_after: Option<Duration> },
    /// 400 and other 4xx: a bad query or a connector bug.
    #[error("Graph rejected the request ({code})")]
    BadRequest { code: String, message: String },
    /// The per-call timeout elapsed.
    #[error("Graph timed out")]
    Timeout,
    /// Connection failure after retries.
    #[error("Graph unreachable")]
    Transport,
    /// A response body that is not what the API documents.
    #[error("unreadable Graph response")]
    Decode,
    /// A redirect to a host that is not an allowed download host, or a second redirect.
    #[error("download redirect refused")]
    DisallowedRedirect,
    /// A response larger than the configured cap.
    #[error("response too large")]
    TooLarge,
    /// A method, path or URL (e.g. a `@odata.nextLink` to another host) the read-only client
    /// does not send.
    #[error("request not allowed by the read-only client")]
    NotAllowed,
}

impl GraphError {
    /// The claims challenge to return to the MCP client as
    /// `WWW-Authenticate: Bearer error="insufficient_claims", claims="…"`.
    pub fn claims_challenge(&self) -> Option<String> {
        match self {
            Self::ClaimsChallenge { claims } => Some(claims.clone()),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } | Self::Unavailable { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A short stable code for audit records.
    pub fn code(&self) -> String {
        match self {
            Self::Unauthorized => "unauthorized".into(),
            Self::ClaimsChallenge { .. } => "insufficient_claims".into(),
            Self::Forbidden { code, .. } => format!("forbidden:{code}"),
            Self::NotFound => "not_found".into(),
            Self::Throttled { .. } => "throttled".into(),
            Self::Unavailable { .. } => "unavailable".into(),
            Self::BadRequest { code, .. } => format!("bad_request:{code}"),
            Self::Timeout => "timeout".into(),
            Self::Transport => "transport".into(),
            Self::Decode => "decode".into(),
            Self::DisallowedRedirect => "disallowed_redirect".into(),
            Self::TooLarge => "too_large".into(),
            Self::NotAllowed => "not_allowed".into(),
        }
    }

    /// A message safe to show the user.
    pub fn user_message(&self) -> String {
        let wait = |d: &Option<Duration>| match d {
            Some(d) => format!("Try again in {} seconds.", d.as_secs_f64().ceil() as u64),
            None => "Try again later.".to_owned(),
        };
        match self {
            Self::Unauthorized => {
                "Microsoft 365 did not accept the connector's access. Sign in again.".into()
            }
            Self::ClaimsChallenge { .. } => {
                "Your session must be renewed (for example after a password change or a policy \
                 change). Sign in again to continue."
                    .into()
            }
            Self::Forbidden { code, .. } => {
                format!(
                    "Access denied by Microsoft 365 ({code}): you may lack permission for this item."
                )
            }
            Self::NotFound => "Not found, or you do not have access to it.".into(),
            Self::Throttled { retry_after } => {
                format!("Microsoft 365 is throttling requests. {}", wait(retry_after))
            }
            Self::Unavailable { retry_after } => {
                format!("Microsoft 365 is temporarily unavailable. {}", wait(retry_after))
            }
            Self::BadRequest { code, .. } => {
                format!("Microsoft 365 rejected the request ({code}).")
            }
            Self::Timeout => "Microsoft 365 did not answer in time. Try again later.".into(),
            Self::Transport => "Microsoft 365 could not be reached. Try again later.".into(),
            Self::Decode => {
                "Microsoft 365 returned a response the connector could not read.".into()
            }
            Self::DisallowedRedirect => "The file download was redirected to a location the \
                                         connector does not trust."
                .into(),
            Self::TooLarge => "The content is larger than the connector's limit.".into(),
            Self::NotAllowed => "The connector does not make this kind of request.".into(),
        }
    }
}

/// A failed Graph call with the ids the audit log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphFailure {
    pub error: GraphError,
    /// The `client-request-id` the connector sent (none when no request was sent).
    pub client_request_id: Option<Uuid>,
    /// Graph's `request-id` (response header, else `innerError.request-id`).
    pub request_id: Option<String>,
}

impl GraphFailure {
    pub fn new(error: GraphError) -> Self {
        Self { error, client_request_id: None, request_id: None }
    }

    pub fn user_message(&self) -> String {
        self.error.user_message()
    }

    pub fn claims_challenge(&self) -> Option<String> {
        self.error.claims_challenge()
    }
}

impl fmt::Display for GraphFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<GraphError> for GraphFailure {
    fn from(error: GraphError) -> Self {
        Self::new(error)
    }
}

/// The parts of Graph's error envelope the connector branches on.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// Parses `{"error":{"code","message","innerError":{"request-id",…}}}`; every field optional,
/// `innerError` matched without regard to case (`graph.md` §2.1).
pub(crate) fn parse_envelope(body: &[u8]) -> Envelope {
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Envelope::default();
    };
    let Some(Value::Object(error)) = root.get("error") else { return Envelope::default() };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| truncate(s, 200));
    let inner = error
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("innererror"))
        .and_then(|(_, v)| v.as_object());
    Envelope {
        code: text(error.get("code")).unwrap_or_default(),
        message: text(error.get("message")).unwrap_or_default(),
        request_id: inner.and_then(|i| text(i.get("request-id"))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Finds a `Bearer` challenge with `error="insufficient_claims"` among all the challenges of
/// the `WWW-Authenticate` values, and returns its `claims` if it is strictly base64 of a JSON
/// object (so it can be echoed in a header without injection).
pub fn insufficient_claims<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for value in values {
        for challenge in parse_challenges(value) {
            if !challenge.scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            if param("error") != Some("insufficient_claims") {
                continue;
            }
            if let Some(claims) = param("claims").filter(|c| valid_claims(c)) {
                return Some(claims.to_owned());
            }
        }
    }
    None
}

fn valid_claims(claims: &str) -> bool {
    !claims.is_empty()
        && claims.len() <= 8192
        && claims
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
        && crate::http::decode_base64_any(claims)
            .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
            .is_some_and(|v| v.is_object())
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

/// Parses one `WWW-Authenticate` value into challenges (RFC 9110 §11.6.1): a scheme token,
/// then comma-separated `name=value` or `name="quoted"` parameters; a token not followed by
/// `=` starts the next challenge. Token68 forms are skipped.
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t' || bytes[*i] == b',') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        if start == i {
            i += 1; // not a token: skip the byte
            continue;
        }
        let token = &value[start..i];
        let mut j = i;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge; tolerate "=" padding-like token68 tails.
            j += 1;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            let v = if j < bytes.len() && bytes[j] == b'"' {
                j += 1;
                let mut s = String::new();
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' && j + 1 < bytes.len() {
                        j += 1;
                    }
                    let ch = value[j..].chars().next().unwrap_or('\u{fffd}');
                    s.push(ch);
                    j += ch.len_utf8();
                }
                j += 1; // closing quote
                s
            } else {
                let vs = j;
                while j < bytes.len() && bytes[j] != b',' && bytes[j] != b' ' {
                    j += 1;
                }
                value[vs..j].to_owned()
            };
            if let Some(current) = out.last_mut() {
                current.params.push((token.to_owned(), v));
            }
            i = j;
        } else {
            out.push(Challenge { scheme: token.to_owned(), params: Vec::new() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"PoP realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", nonce="ey==", Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error_description="Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcyNjI1ODEyMiJ9fX0=""#;

    #[test]
    fn the_bearer_insufficient_claims_challenge_is_found_among_several() {
        let challenges = parse_challenges(REAL);
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "PoP");
        assert_eq!(
            insufficient_claims([REAL]).as_deref(),
            Some(
                "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcyNjI1ODEyMiJ9fX0="
            )
        );
    }

    /// `reference/graph.md` §3.2, verbatim (its continuation line joined with one space, as a
    /// header value cannot hold a line break).
    const GRAPH_MD: &str = concat!(
        r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize","#,
        " ",
        r#"client_id="00000003-0000-0000-c000-000000000000","#,
        " ",
        r#"error_description="Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp","#,
        " ",
        r#"error="insufficient_claims","#,
        " ",
        r#"claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcwMjY4MjE4MSJ9fX0=""#,
    );

    fn decoded(claims: &str) -> Value {
        let bytes = crate::http::decode_base64_any(claims).expect("base64");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn the_challenge_of_graph_md_yields_its_claims() {
        let claims = insufficient_claims([GRAPH_MD]).expect("a claims challenge");
        assert_eq!(
            claims,
            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcwMjY4MjE4MSJ9fX0="
        );
        assert_eq!(
            decoded(&claims),
            serde_json::json!({"access_token": {"nbf": {"essential": true, "value": "1702682181"}}})
        );
        // The same claims arrive through a 401 as well as a 403 (Conditional Access).
        assert_eq!(insufficient_claims(["Basic realm=\"x\"", GRAPH_MD]), Some(claims));
    }

    #[test]
    fn the_bearer_claims_win_over_the_pop_ones_in_any_base64_form() {
        let json = serde_json::json!({"access_token": {
            "nbf": {"essential": true, "value": "1726258122"},
            "xms_caeerror": {"value": "??"},
        }});
        // One JSON text in four encodings; `??` puts `/` (standard) or `_` (URL-safe) in it.
        let forms = [
            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzI2MjU4MTIyIn0sInhtc19jYWVlcnJvciI6eyJ2YWx1ZSI6Ij8/In19fQ==",
            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzI2MjU4MTIyIn0sInhtc19jYWVlcnJvciI6eyJ2YWx1ZSI6Ij8/In19fQ",
            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzI2MjU4MTIyIn0sInhtc19jYWVlcnJvciI6eyJ2YWx1ZSI6Ij8_In19fQ==",
            "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzI2MjU4MTIyIn0sInhtc19jYWVlcnJvciI6eyJ2YWx1ZSI6Ij8_In19fQ",
        ];
        // The PoP challenge carries claims of its own, which must be ignored.
        let pop_claims = "eyJhY2Nlc3NfdG9rZW4iOnt9fQ";
        for form in forms {
            let header = format!(
                r#"PoP realm="", client_id="00000003-0000-0000-c000-000000000000", nonce="ey==", error="insufficient_claims", claims="{pop_claims}", Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="{form}""#
            );
            let claims = insufficient_claims([header.as_str()]).expect(form);
            assert_eq!(claims, form);
            assert_eq!(decoded(&claims), json, "{form}");
        }
    }

    #[test]
    fn fake_graphs_cae_challenge_yields_the_bearer_claims() {
        let challenge = fake_graph::auth::cae_challenge(1_726_258_122);
        let header = challenge
            .headers
            .iter()
            .find(|(name, _)| name == reqwest::header::WWW_AUTHENTICATE)
            .map(|(_, value)| value.as_str())
            .expect("a WWW-Authenticate header");
        assert_eq!(parse_challenges(header).len(), 2, "{header}");
        let claims = insufficient_claims([header]).expect("a claims challenge");
        assert_eq!(decoded(&claims)["access_token"]["nbf"]["value"], "1726258122");
    }

    #[test]
    fn unpadded_claims_are_accepted_and_injection_is_refused() {
        let unpadded = r#"Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ""#;
        assert_eq!(insufficient_claims([unpadded]).as_deref(), Some("eyJhY2Nlc3NfdG9rZW4iOnt9fQ"));
        let evil = "Bearer error=\"insufficient_claims\", claims=\"abc\\\"\r\nSet-Cookie: x\"";
        assert_eq!(insufficient_claims([evil]), None);
        let not_json = r#"Bearer error="insufficient_claims", claims="aGVsbG8=""#;
        assert_eq!(insufficient_claims([not_json]), None);
        let plain = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize""#;
        assert_eq!(insufficient_claims([plain]), None);
        let pop_only = r#"PoP error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ""#;
        assert_eq!(insufficient_claims([pop_only]), None);
    }

    #[test]
    fn envelopes_are_read_leniently() {
        let body = br#"{"error":{"code":"itemNotFound","message":"Requested site could not be found",
            "innerError":{"date":"2021-03-03T08:58:02","request-id":"4e054f93","client-request-id":"dbd35b28"}}}"#;
        assert_eq!(
            parse_envelope(body),
            Envelope {
                code: "itemNotFound".into(),
                message: "Requested site could not be found".into(),
                request_id: Some("4e054f93".into())
            }
        );
        let lower = br#"{"error":{"code":"x","innererror":{"request-id":"r1"}}}"#;
        assert_eq!(parse_envelope(lower).request_id.as_deref(), Some("r1"));
        assert_eq!(parse_envelope(b"<html>"), Envelope::default());
        assert_eq!(parse_envelope(br#"{"error":"string"}"#), Envelope::default());
    }

    #[test]
    fn user_messages() {
        insta::assert_snapshot!(GraphError::NotFound.user_message(), @"Not found, or you do not have access to it.");
        insta::assert_snapshot!(
            GraphError::Throttled { retry_after: Some(Duration::from_millis(2128)) }.user_message(),
            @"Microsoft 365 is throttling requests. Try again in 3 seconds."
        );
        insta::assert_snapshot!(
            GraphError::Forbidden { code: "ErrorAccessDenied".into(), message: "Access is denied.".into() }.user_message(),
            @"Access denied by Microsoft 365 (ErrorAccessDenied): you may lack permission for this item."
        );
        insta::assert_snapshot!(GraphError::DisallowedRedirect.user_message(), @"The file download was redirected to a location the connector does not trust.");
        insta::assert_snapshot!(GraphError::TooLarge.user_message(), @"The content is larger than the connector's limit.");
    }
}
