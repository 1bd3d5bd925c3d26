//! Read-only requests by construction.
//!
//! A [`GraphRequest`] can only be made by [`GraphRequest::get`] or [`GraphRequest::query_post`],
//! and `query_post` accepts only the read-only query endpoints in [`QUERY_POST_ALLOWLIST`].
//! Paths are [`GraphPath`]s: fixed `'static` template parts plus per-segment percent-encoded
//! ids, so no id can add a segment, a query or a fragment. [`check_outbound`] repeats the
//! rule on the final URL just before sending (`graph.md` §12.2).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::error::GraphError;

/// The only POST targets: read-only queries (search, free/busy, meeting suggestions).
/// `*` stands for exactly one id segment.
pub const QUERY_POST_ALLOWLIST: &[&str] = &[
    "/search/query",
    "/me/calendar/getSchedule",
    "/users/*/calendar/getSchedule",
    "/me/findMeetingTimes",
];

/// Characters left as they are in a segment: RFC 3986 unreserved plus the sub-delims Graph ids
/// use (`!` in drive ids, `,` in site ids, `:` and `@` in chat ids, `=` and `+`… are encoded).
const SEGMENT_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'!')
    .remove(b',')
    .remove(b':')
    .remove(b'@');

/// A path below the Graph base (e.g. `/me/messages/{id}`), built from fixed parts and
/// encoded id segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphPath {
    /// Encoded segments.
    segments: Vec<String>,
    /// Set when an id was empty or a dot-segment: URL parsing would collapse or resolve it
    /// (WHATWG treats `%2e%2e` as `..`), so such a path is refused when the URL is built.
    invalid: bool,
}

impl GraphPath {
    /// Starts a path from a fixed template such as `"/me/messages"`. Only `'static` strings are
    /// accepted so that templates come from the code, not from input.
    pub fn fixed(template: &'static str) -> Self {
        Self { segments: Vec::new(), invalid: false }.then(template)
    }

    /// Appends fixed segments, e.g. `"content"` or `"calendar/getSchedule"`.
    pub fn then(mut self, template: &'static str) -> Self {
        for part in template.split('/').filter(|p| !p.is_empty()) {
            // Templates are our own constants; encode anyway so a careless template cannot
            // smuggle a query or a dot-segment.
            self.invalid |= matches!(part, "." | "..");
            self.segments.push(encode_segment(part));
        }
        self
    }

    /// Appends one id segment, percent-encoded: `/ ? # %`, spaces and controls cannot change
    /// the path's structure. An empty, `.` or `..` id makes the request fail to build.
    pub fn segment(mut self, id: &str) -> Self {
        self.invalid |= matches!(id, "" | "." | "..");
        self.segments.push(encode_segment(id));
        self
    }

    /// The encoded path, starting with `/`.
    pub fn as_string(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// The segments in encoded form (used for the allow-list check).
    pub fn encoded_segments(&self) -> &[String] {
        &self.segments
    }
}

/// Percent-encodes one path segment.
pub fn encode_segment(raw: &str) -> String {
    utf8_percent_encode(raw, SEGMENT_KEEP).to_string()
}

/// The method of a request: GET, or POST to an allow-listed query endpoint.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Method {
    Get,
    QueryPost(serde_json::Value),
}

/// Where the request goes: a path below the base, or a `@odata.nextLink` already checked to be
/// below the base.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    Path(GraphPath),
    NextLink(Url),
}

/// A read-only Graph request. See the module docs for why there is no other constructor.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphRequest {
    pub(crate) method: Method,
    pub(crate) target: Target,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) prefer: Vec<String>,
    pub(crate) eventual_consistency: bool,
}

impl GraphRequest {
    /// `GET {base}{path}`.
    pub fn get(path: GraphPath) -> Self {
        Self::new(Method::Get, Target::Path(path))
    }

    /// `POST {base}{path}` with a JSON body; only for [`QUERY_POST_ALLOWLIST`].
    pub fn query_post(path: GraphPath, body: serde_json::Value) -> Result<Self, GraphError> {
        if !post_allowed(&path.as_string()) {
            return Err(GraphError::NotAllowed);
        }
        Ok(Self::new(Method::QueryPost(body), Target::Path(path)))
    }

    pub(crate) fn next_link(url: Url, previous: &GraphRequest) -> Self {
        // Headers are not carried by the link: resend them (`graph.md` §5.1).
        Self {
            method: Method::Get,
            target: Target::NextLink(url),
            query: Vec::new(),
            prefer: previous.prefer.clone(),
            eventual_consistency: previous.eventual_consistency,
        }
    }

    fn new(method: Method, target: Target) -> Self {
        Self { method, target, query: Vec::new(), prefer: Vec::new(), eventual_consistency: false }
    }

    /// Adds a query parameter (encoded when the URL is built).
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// `$select=a,b,c`: the projection of returned fields.
    pub fn select(self, fields: &[&str]) -> Self {
        self.query("$select", fields.join(","))
    }

    /// `$top=n`.
    pub fn top(self, n: u32) -> Self {
        self.query("$top", n.to_string())
    }

    /// Adds a `Prefer` preference, e.g. `IdType="ImmutableId"`.
    pub fn prefer(mut self, preference: impl Into<String>) -> Self {
        self.prefer.push(preference.into());
        self
    }

    /// `ConsistencyLevel: eventual`, for directory `$search`/`$count`.
    pub fn eventual_consistency(mut self) -> Self {
        self.eventual_consistency = true;
        self
    }

    pub(crate) fn is_post(&self) -> bool {
        matches!(self.method, Method::QueryPost(_))
    }

    /// The full URL below `base`.
    pub(crate) fn url(&self, base: &Url) -> Result<Url, GraphError> {
        match &self.target {
            Target::NextLink(url) => Ok(url.clone()),
            Target::Path(path) => {
                if path.invalid {
                    return Err(GraphError::BadRequest {
                        code: "invalidId".into(),
                        message: "an id is empty or a dot-segment".into(),
                    });
                }
                let text = format!("{}{}", base.as_str().trim_end_matches('/'), path.as_string());
                let mut url = Url::parse(&text).map_err(|_| GraphError::NotAllowed)?;
                if !self.query.is_empty() {
                    let mut pairs = url.query_pairs_mut();
                    for (k, v) in &self.query {
                        pairs.append_pair(k, v);
                    }
                }
                Ok(url)
            }
        }
    }
}

fn post_allowed(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    QUERY_POST_ALLOWLIST.iter().any(|pattern| {
        let want: Vec<&str> = pattern.split('/').skip(1).collect();
        want.len() == segments.len()
            && want
                .iter()
                .zip(&segments)
                .all(|(w, s)| if *w == "*" { !s.is_empty() } else { w == s })
    })
}

/// The last check before a request leaves the process: the URL is below the Graph base and
/// the method is GET, or POST to the allow-list. Fails closed.
pub fn check_outbound(method: &http::Method, url: &Url, base: &Url) -> Result<(), GraphError> {
    let relative = relative_path(url, base).ok_or(GraphError::NotAllowed)?;
    if *method == http::Method::GET {
        return Ok(());
    }
    if *method == http::Method::POST && url.query().is_none() && post_allowed(&relative) {
        return Ok(());
    }
    Err(GraphError::NotAllowed)
}

/// The path of `url` below `base` (with a leading `/`), when `url` has the same scheme, host
/// and port and its path lies under the base path. Used for nextLinks too (`graph.md` §5.1).
pub fn relative_path(url: &Url, base: &Url) -> Option<String> {
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(prefix)?;
    if !rest.starts_with('/') {
        return None;
    }
    // Encoded dot-segments could be normalised by a server into a path above the base.
    let lowered = rest.to_ascii_lowercase();
    if rest.split('/').any(|s| s == "." || s == "..") || lowered.contains("%2e%2e") {
        return None;
    }
    Some(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/v1.0").expect("url")
    }

    #[test]
    fn ids_are_encoded_per_segment() {
        let p = GraphPath::fixed("/me/messages").segment("AAMk+/a=?b#c%d e");
        assert_eq!(p.as_string(), "/me/messages/AAMk%2B%2Fa%3D%3Fb%23c%25d%20e");
        let chat = GraphPath::fixed("/chats").segment("19:abc@thread.v2").then("messages");
        assert_eq!(chat.as_string(), "/chats/19:abc@thread.v2/messages");
        let site = GraphPath::fixed("/sites").segment("contoso.sharepoint.com,1,2");
        assert_eq!(site.as_string(), "/sites/contoso.sharepoint.com,1,2");
        for bad in ["", ".", ".."] {
            let req = GraphRequest::get(GraphPath::fixed("/drives").segment(bad).then("items"));
            assert!(matches!(req.url(&base()), Err(GraphError::BadRequest { .. })));
        }
    }

    #[test]
    fn only_the_read_only_queries_can_be_posted() {
        let body = serde_json::json!({});
        for ok in [
            GraphPath::fixed("/search/query"),
            GraphPath::fixed("/me/calendar/getSchedule"),
            GraphPath::fixed("/users").segment("adele@contoso.com").then("calendar/getSchedule"),
            GraphPath::fixed("/me/findMeetingTimes"),
        ] {
            assert!(GraphRequest::query_post(ok, body.clone()).is_ok());
        }
        for bad in [
            GraphPath::fixed("/me/sendMail"),
            GraphPath::fixed("/me/messages"),
            GraphPath::fixed("/$batch"),
            GraphPath::fixed("/users").segment("a/calendar").then("getSchedule"),
            GraphPath::fixed("/search/query").segment("x"),
            GraphPath::fixed("/me/events").segment("1").then("accept"),
        ] {
            assert_eq!(
                GraphRequest::query_post(bad, body.clone()).err(),
                Some(GraphError::NotAllowed)
            );
        }
    }

    #[test]
    fn every_other_method_is_refused_before_sending() {
        let url =
            |p: &str| Url::parse(&format!("https://graph.microsoft.com/v1.0{p}")).expect("url");
        for m in ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"] {
            let method = http::Method::from_bytes(m.as_bytes()).expect("method");
            assert_eq!(
                check_outbound(&method, &url("/me/messages"), &base()),
                Err(GraphError::NotAllowed)
            );
            assert_eq!(
                check_outbound(&method, &url("/search/query"), &base()),
                Err(GraphError::NotAllowed)
            );
        }
        assert!(check_outbound(&http::Method::POST, &url("/search/query"), &base()).is_ok());
        assert!(check_outbound(&http::Method::POST, &url("/me/sendMail"), &base()).is_err());
        assert!(check_outbound(&http::Method::POST, &url("/$batch"), &base()).is_err());
        assert!(check_outbound(&http::Method::GET, &url("/me/messages"), &base()).is_ok());
        let foreign = Url::parse("https://evil.example/v1.0/me").expect("url");
        assert!(check_outbound(&http::Method::GET, &foreign, &base()).is_err());
        let beta = Url::parse("https://graph.microsoft.com/beta/me").expect("url");
        assert!(check_outbound(&http::Method::GET, &beta, &base()).is_err());
    }

    #[test]
    fn relative_paths_require_the_same_origin_and_prefix() {
        let rel = |s: &str| relative_path(&Url::parse(s).expect("url"), &base());
        assert_eq!(
            rel("https://graph.microsoft.com/v1.0/me/messages?$skip=10").as_deref(),
            Some("/me/messages")
        );
        assert_eq!(rel("http://graph.microsoft.com/v1.0/me"), None);
        assert_eq!(rel("https://graph.microsoft.com:8443/v1.0/me"), None);
        assert_eq!(rel("https://graph.microsoft.com.evil.example/v1.0/me"), None);
        assert_eq!(rel("https://graph.microsoft.com/v1.00/me"), None);
        assert_eq!(rel("https://user@graph.microsoft.com/v1.0/me"), None);
        assert_eq!(rel("https://graph.microsoft.com/v1.0/%2e%2e/beta/me"), None);
        // Each origin part on its own: the scheme alone (same host and port), a password
        // alone, a fragment alone.
        assert_eq!(rel("http://graph.microsoft.com:443/v1.0/me"), None);
        assert_eq!(rel("https://:secret@graph.microsoft.com/v1.0/me"), None);
        assert_eq!(rel("https://graph.microsoft.com/v1.0/me#top"), None);
        // An encoded `../` that URL parsing keeps as one segment, in either case.
        assert_eq!(rel("https://graph.microsoft.com/v1.0/me/%2e%2e%2fbeta"), None);
        assert_eq!(rel("https://graph.microsoft.com/v1.0/me/%2E%2e%2Fbeta"), None);
    }

    #[test]
    fn a_dot_segment_in_a_template_fails_the_request_too() {
        for template in ["/drives/..", "/drives/./items"] {
            let req = GraphRequest::get(GraphPath::fixed(template));
            assert!(matches!(req.url(&base()), Err(GraphError::BadRequest { .. })), "{template}");
        }
        let req = GraphRequest::get(GraphPath::fixed("/drives").then("../items"));
        assert!(matches!(req.url(&base()), Err(GraphError::BadRequest { .. })));
        let ok = GraphRequest::get(GraphPath::fixed("/me").then("drive/root"));
        assert_eq!(
            ok.url(&base()).expect("url").as_str(),
            "https://graph.microsoft.com/v1.0/me/drive/root"
        );
    }

    #[test]
    fn select_and_query_parameters_are_encoded() {
        let req = GraphRequest::get(GraphPath::fixed("/me/messages"))
            .select(&["id", "subject"])
            .query("$search", "\"a&b=c\"")
            .top(10);
        let url = req.url(&base()).expect("url");
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/me/messages?%24select=id%2Csubject&%24search=%22a%26b%3Dc%22&%24top=10"
        );
    }

    proptest! {
        /// Whatever the id, the URL keeps exactly the template's segments plus one, the
        /// segment decodes back to the id, and there is no query or fragment.
        #[test]
        fn no_id_can_change_the_path_structure(id in "\\PC{0,40}", id2 in "[./?#%\\\\ a-z]{0,8}") {
            for id in [id.as_str(), id2.as_str()] {
                let path = GraphPath::fixed("/drives").segment(id).then("items");
                let Ok(url) = GraphRequest::get(path).url(&base()) else {
                    prop_assert!(matches!(id, "" | "." | ".."));
                    continue;
                };
                prop_assert!(url.query().is_none());
                prop_assert!(url.fragment().is_none());
                let segments: Vec<&str> = url.path_segments().expect("segments").collect();
                prop_assert_eq!(segments.len(), 4);
                prop_assert_eq!(segments[0], "v1.0");
                prop_assert_eq!(segments[1], "drives");
                prop_assert_eq!(segments[3], "items");
                let decoded = percent_encoding::percent_decode_str(segments[2]).decode_utf8().expect("utf8");
                prop_assert_eq!(decoded.as_ref(), id);
                prop_assert!(relative_path(&url, &base()).is_some());
            }
        }
    }
}
