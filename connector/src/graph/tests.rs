//! Graph client tests against wiremock; retry tests run on tokio's paused clock.

use std::time::Duration;

use secrecy::SecretString;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

use super::*;

fn token() -> BearerToken {
    BearerToken::new(SecretString::from("graph-token".to_owned()))
}

fn mailbox(n: u128) -> MailboxKey {
    MailboxKey {
        tenant: TenantId::from(Uuid::from_u128(1)),
        user: ObjectId::from(Uuid::from_u128(n)),
    }
}

/// Settings for a client of `server`, whose download host (wiremock's too) is listed.
fn settings(server: &MockServer) -> GraphSettings {
    let mut settings =
        GraphSettings::new(Url::parse(&format!("{}/v1.0", server.uri())).expect("url"));
    settings.download_hosts = vec!["127.0.0.1".to_owned()];
    settings
}

/// No client-level timers and no pooled connections (whose idle timers are timers too): with
/// paused time tokio would otherwise jump to them while waiting for the mock server's answer.
fn client(settings: GraphSettings) -> GraphClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http");
    GraphClient::new(settings, http, Arc::new(Metrics::new()))
}

fn me() -> GraphRequest {
    GraphRequest::get(GraphPath::fixed("/me"))
}

async fn get(c: &GraphClient) -> Result<GraphResponse<serde_json::Value>, GraphFailure> {
    c.send_json(&token(), mailbox(1), &me()).await
}

fn throttled(retry_after: Option<&str>) -> ResponseTemplate {
    let t = ResponseTemplate::new(429).set_body_json(serde_json::json!({"error":{"code":"TooManyRequests","message":"Please retry again later."}}));
    match retry_after {
        Some(v) => t.insert_header("Retry-After", v),
        None => t,
    }
}

async fn mount_then_ok(server: &MockServer, first: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(first)
        .up_to_n_times(times)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "rid-ok")
                .set_body_json(serde_json::json!({"id":"me"})),
        )
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

/// `/drives/d/items/i/content`, the download every download test asks for.
fn item_content() -> GraphPath {
    GraphPath::fixed("/drives").segment("d").then("items").segment("i").then("content")
}

/// Graph answers the download of [`item_content`] with a redirect to `location`.
async fn redirect_item_to(graph: &MockServer, location: &str) {
    Mock::given(method("GET"))
        .and(path("/v1.0/drives/d/items/i/content"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", location))
        .mount(graph)
        .await;
}

#[tokio::test(start_paused = true)]
async fn integer_retry_after_is_honoured() {
    let server = MockServer::start().await;
    mount_then_ok(&server, throttled(Some("5")), 1).await;
    let c = client(settings(&server));
    let start = tokio::time::Instant::now();
    let ok = get(&c).await.expect("retried");
    assert_eq!(ok.request_id.as_deref(), Some("rid-ok"));
    assert!(start.elapsed() >= Duration::from_secs(5) && start.elapsed() < Duration::from_secs(6));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn fractional_retry_after_is_honoured() {
    let server = MockServer::start().await;
    mount_then_ok(&server, throttled(Some("2.128")), 1).await;
    let c = client(settings(&server));
    let start = tokio::time::Instant::now();
    get(&c).await.expect("retried");
    assert!(
        start.elapsed() >= Duration::from_millis(2128)
            && start.elapsed() < Duration::from_millis(2500)
    );
}

#[tokio::test(start_paused = true)]
async fn http_date_retry_after_is_honoured() {
    let server = MockServer::start().await;
    let at = (Utc::now() + chrono::Duration::seconds(10))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    mount_then_ok(&server, throttled(Some(&at)), 1).await;
    let c = client(settings(&server));
    let start = tokio::time::Instant::now();
    get(&c).await.expect("retried");
    // Whole-second dates: between 9 and 10 s from the moment the header was parsed.
    assert!(
        start.elapsed() >= Duration::from_secs(8) && start.elapsed() <= Duration::from_secs(11)
    );
}

#[tokio::test(start_paused = true)]
async fn absent_retry_after_backs_off_exponentially_within_the_attempt_limit() {
    let server = MockServer::start().await;
    mount_then_ok(&server, ResponseTemplate::new(503), 3).await;
    let c = client(settings(&server));
    let start = tokio::time::Instant::now();
    get(&c).await.expect("fourth attempt succeeds");
    assert_eq!(requests(&server).await, 4);
    assert!(start.elapsed() <= Duration::from_secs(1 + 2 + 4));
    let reqs = server.received_requests().await.expect("recorded");
    let ids: Vec<_> = reqs.iter().map(|r| r.headers.get("client-request-id").cloned()).collect();
    assert!(ids.iter().all(|id| id.is_some() && *id == ids[0]), "one client-request-id per call");
    assert_eq!(reqs[3].headers.get("retry-attempt").and_then(|v| v.to_str().ok()), Some("3"));
}

#[tokio::test(start_paused = true)]
async fn persistent_unavailability_stops_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(504))
        .expect(4)
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let err = get(&c).await.expect_err("gives up");
    assert!(matches!(err.error, GraphError::Unavailable { .. }));
    assert!(err.client_request_id.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_wait_beyond_the_budget_gives_up_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(throttled(Some("60")))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(settings(&server)); // budget 30 s
    let start = tokio::time::Instant::now();
    let err = get(&c).await.expect_err("throttled");
    assert_eq!(err.error, GraphError::Throttled { retry_after: Some(Duration::from_secs(60)) });
    assert_eq!(start.elapsed(), Duration::ZERO);
    insta::assert_snapshot!(err.user_message(), @"Microsoft 365 is throttling requests. Try again in 60 seconds.");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_graph_request_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            serde_json::json!({"error":{"code":"ErrorAccessDenied","message":"Access is denied.",
            "innerError":{"request-id":"rid-403"}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let err = get(&c).await.expect_err("forbidden");
    assert_eq!(
        err.error,
        GraphError::Forbidden {
            code: "ErrorAccessDenied".into(),
            message: "Access is denied.".into()
        }
    );
    assert_eq!(err.request_id.as_deref(), Some("rid-403"));
}

#[tokio::test]
async fn status_codes_map_to_errors() {
    let server = MockServer::start().await;
    let c = client(settings(&server));
    let claims =
        "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTcyNjI1ODEyMiJ9fX0=";
    let cases = [
        (
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"error":{"code":"ErrorItemNotFound"}})),
            GraphError::NotFound,
        ),
        (
            ResponseTemplate::new(400).set_body_json(
                serde_json::json!({"error":{"code":"ErrorInvalidUrlQuery","message":"m"}}),
            ),
            GraphError::BadRequest { code: "ErrorInvalidUrlQuery".into(), message: "m".into() },
        ),
        (ResponseTemplate::new(401), GraphError::Unauthorized),
        (
            ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                format!(r#"Bearer realm="", error="insufficient_claims", claims="{claims}""#)
                    .as_str(),
            ),
            GraphError::ClaimsChallenge { claims: claims.into() },
        ),
        (
            ResponseTemplate::new(403).insert_header(
                "WWW-Authenticate",
                format!(r#"Bearer error="insufficient_claims", claims="{claims}""#).as_str(),
            ),
            GraphError::ClaimsChallenge { claims: claims.into() },
        ),
        (ResponseTemplate::new(200).set_body_string("not json"), GraphError::Decode),
        (
            ResponseTemplate::new(302).insert_header("Location", "https://evil.example/"),
            GraphError::DisallowedRedirect,
        ),
    ];
    for (response, expected) in cases {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path("/v1.0/me"))
            .respond_with(response)
            .mount(&server)
            .await;
        assert_eq!(get(&c).await.expect_err("error").error, expected);
    }
}

#[tokio::test]
async fn requests_send_bearer_client_request_id_select_and_prefer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me/messages"))
        .and(query_param("$select", "id,subject"))
        .and(header("authorization", "Bearer graph-token"))
        .and(header("prefer", "IdType=\"ImmutableId\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value":[]})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let req = GraphRequest::get(GraphPath::fixed("/me/messages"))
        .select(&["id", "subject"])
        .prefer("IdType=\"ImmutableId\"");
    let res: GraphResponse<serde_json::Value> =
        c.send_json(&token(), mailbox(1), &req).await.expect("ok");
    let reqs = server.received_requests().await.expect("recorded");
    let sent = reqs[0].headers.get("client-request-id").and_then(|v| v.to_str().ok()).expect("id");
    assert_eq!(sent, res.client_request_id.to_string());
}

#[tokio::test]
async fn query_posts_go_out_as_post_with_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/search/query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value":[]})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let body =
        serde_json::json!({"requests":[{"entityTypes":["message"],"query":{"queryString":"q"}}]});
    let req =
        GraphRequest::query_post(GraphPath::fixed("/search/query"), body.clone()).expect("allowed");
    let _: GraphResponse<serde_json::Value> =
        c.send_json(&token(), mailbox(1), &req).await.expect("ok");
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&reqs[0].body).expect("json"), body);
}

#[tokio::test]
async fn next_links_are_followed_below_the_base_only() {
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me/messages"))
        .and(query_param("$skip", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"value":[{"id":"3"}],
            "@odata.nextLink": format!("{}/v1.0/me/messages?$skip=3", other.uri())})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"value":[{"id":"1"},{"id":"2"}],
            "@odata.nextLink": format!("{}/v1.0/me/messages?$skip=2", server.uri())})),
        )
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let req = GraphRequest::get(GraphPath::fixed("/me/messages"));
    // Stops at the limit without following further.
    let two = c.get_all_pages(&token(), mailbox(1), &req, 2).await.expect("pages");
    assert_eq!(two.body.len(), 2);
    // Follows the first link (same origin), refuses the second (another port).
    let err = c.get_all_pages(&token(), mailbox(1), &req, 10).await.expect_err("foreign link");
    assert_eq!(err.error, GraphError::NotAllowed);
    assert_eq!(requests(&other).await, 0);
}

#[tokio::test]
async fn downloads_follow_the_redirect_without_authorization_within_the_cap() {
    let graph = MockServer::start().await;
    let files = MockServer::start().await;
    redirect_item_to(&graph, &format!("{}/_download/abc?sig=1", files.uri())).await;
    Mock::given(method("GET"))
        .and(path("/_download/abc"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_bytes(vec![b'x'; 100]),
        )
        .expect(3)
        .mount(&files)
        .await;
    let c = client(settings(&graph));
    let got = c.download(&token(), mailbox(1), item_content()).await.expect("download");
    assert_eq!(got.body.bytes.len(), 100);
    assert_eq!(got.body.content_type.as_deref(), Some("text/plain"));
    let reqs = files.received_requests().await.expect("recorded");
    assert!(reqs[0].headers.get("authorization").is_none());

    // Exactly the cap is delivered; one byte more is refused.
    let mut exact = settings(&graph);
    exact.max_download_bytes = 100;
    let got =
        client(exact).download(&token(), mailbox(1), item_content()).await.expect("at the cap");
    assert_eq!(got.body.bytes.len(), 100);
    let mut small = settings(&graph);
    small.max_download_bytes = 99;
    let err = client(small).download(&token(), mailbox(1), item_content()).await.expect_err("cap");
    assert_eq!(err.error, GraphError::TooLarge);
}

#[tokio::test]
async fn download_redirects_to_hosts_outside_the_allow_list_are_refused() {
    let graph = MockServer::start().await;
    let c = client(settings(&graph));
    for location in [
        "https://evil.example/file",
        "http://169.254.169.254/latest/meta-data",
        "https://contoso.sharepoint.com.evil.example/x",
        // loopback, but not the listed download host: the list holds for tests' hosts too
        "http://127.0.0.3:9/file",
        "http://localhost:9/file",
    ] {
        graph.reset().await;
        redirect_item_to(&graph, location).await;
        let err = c.download(&token(), mailbox(1), item_content()).await.expect_err("refused");
        assert_eq!(err.error, GraphError::DisallowedRedirect, "{location}");
    }
}

#[test]
fn download_host_patterns_match_whole_labels() {
    assert!(host_matches("*.sharepoint.com", "contoso.sharepoint.com"));
    assert!(host_matches("*.sharepoint.com", "contoso-my.SharePoint.com"));
    assert!(!host_matches("*.sharepoint.com", "sharepoint.com"));
    assert!(!host_matches("*.sharepoint.com", ".sharepoint.com"), "an empty first label");
    assert!(!host_matches("*.sharepoint.com", "evilsharepoint.com"));
    assert!(!host_matches("*.sharepoint.com", "contoso.sharepoint.com.evil.example"));
    assert!(host_matches("files.example", "FILES.example"));
}

#[test]
fn the_shared_http_client_builds_for_https_and_loopback_bases() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(
        http_client(&GraphSettings::new(
            Url::parse("https://graph.microsoft.com/v1.0").expect("url")
        ))
        .is_ok()
    );
    let local = GraphSettings::new(Url::parse("http://127.0.0.1:1/v1.0").expect("url"));
    assert!(local.base_is_loopback());
    assert!(http_client(&local).is_ok());
}

#[tokio::test]
async fn at_most_four_requests_per_mailbox_are_in_flight() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({}))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let c = client(settings(&server));
    let run = |boxes: Vec<u128>| {
        let c = c.clone();
        async move {
            let start = std::time::Instant::now();
            let calls = boxes.into_iter().map(|b| {
                let c = c.clone();
                async move { c.send_json::<serde_json::Value>(&token(), mailbox(b), &me()).await }
            });
            for r in futures::future::join_all(calls).await {
                r.expect("ok");
            }
            start.elapsed()
        }
    };
    // Eight calls to one mailbox take two waves; eight calls to eight mailboxes take one.
    assert!(run(vec![1; 8]).await >= Duration::from_millis(600));
    assert!(run((1..=8).collect()).await < Duration::from_millis(600));
}

/// A client whose base is Graph itself (not loopback), with the default download hosts.
fn production_client() -> GraphClient {
    client(GraphSettings::new(Url::parse("https://graph.microsoft.com/v1.0").expect("url")))
}

fn allowed(c: &GraphClient, url: &str) -> bool {
    c.download_allowed(&Url::parse(url).expect("url"))
}

#[test]
fn off_loopback_only_https_to_listed_hosts_without_credentials_is_downloaded() {
    let c = production_client();
    assert!(!c.settings().base_is_loopback());
    assert!(allowed(&c, "https://contoso.sharepoint.com/_layouts/download.aspx?x=1"));
    assert!(!allowed(&c, "http://contoso.sharepoint.com/_layouts/download.aspx"), "plain http");
    assert!(!allowed(&c, "https://user@contoso.sharepoint.com/x"), "a user name alone");
    assert!(!allowed(&c, "https://user:pw@contoso.sharepoint.com/x"));
    assert!(!allowed(&c, "https://:pw@contoso.sharepoint.com/x"), "a password alone");
    assert!(!allowed(&c, "https://evil.example/x"));

    // Loopback downloads exist for the test world only: with a real base they are refused
    // even when the host is listed.
    let mut settings =
        GraphSettings::new(Url::parse("https://graph.microsoft.com/v1.0").expect("url"));
    settings.download_hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let c = client(settings);
    for url in ["https://127.0.0.1:9/file", "http://127.0.0.1:9/file", "https://localhost/f"] {
        assert!(!allowed(&c, url), "{url}");
    }
}

#[test]
fn on_loopback_listed_loopback_hosts_are_downloaded_over_http_too() {
    let mut settings = GraphSettings::new(Url::parse("http://127.0.0.1:1/v1.0").expect("url"));
    settings.download_hosts = vec!["127.0.0.1".to_owned(), "files.example".to_owned()];
    let c = client(settings);
    assert!(allowed(&c, "http://127.0.0.1:9/file"));
    assert!(allowed(&c, "https://127.0.0.1:9/file"));
    assert!(!allowed(&c, "ftp://127.0.0.1/file"));
    assert!(!allowed(&c, "http://127.0.0.2:9/file"), "loopback but not listed");
    assert!(allowed(&c, "https://files.example/f"));
    assert!(!allowed(&c, "http://files.example/f"), "a listed remote host still needs https");
}

#[test]
fn loopback_hosts_are_localhost_and_loopback_addresses_only() {
    for host in ["localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "[::1]", "::1"] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in ["graph.microsoft.com", "10.0.0.1", "0.0.0.0", "[::]", "localhost.evil.example"] {
        assert!(!is_loopback_host(host), "{host}");
    }
}

/// The shared client follows no redirect itself (downloads follow theirs by hand, without the
/// token), and off loopback it speaks HTTPS only.
#[tokio::test]
async fn the_shared_http_client_follows_no_redirect_and_refuses_plain_http_off_loopback() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/there"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/there"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let local = settings(&server);
    let http = http_client(&local).expect("client");
    let answer = http.get(format!("{}/moved", server.uri())).send().await.expect("answer");
    assert_eq!(answer.status().as_u16(), 302, "the redirect is returned, not followed");

    let remote = GraphSettings::new(Url::parse("https://graph.microsoft.com/v1.0").expect("url"));
    let http = http_client(&remote).expect("client");
    let refused = http.get(format!("{}/there", server.uri())).send().await;
    assert!(refused.is_err(), "plain http with a non-loopback base");
    assert_eq!(requests(&server).await, 1, "only the first request reached the server");
}

#[test]
fn debug_output_shows_no_token() {
    let shown = format!("{:?}", token());
    assert_eq!(shown, "BearerToken([redacted])");
    let shown = format!("{:?}", production_client());
    assert_eq!(shown, r#"GraphClient { base_url: "https://graph.microsoft.com/v1.0" }"#);
}

/// Graph's error envelope is read from up to 64 KiB of body: a long message does not cost the
/// error code.
#[tokio::test]
async fn long_error_bodies_keep_their_code() {
    let server = MockServer::start().await;
    let message = "m".repeat(8 * 1024);
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"error":{"code":"ErrorInvalidUrlQuery","message": message}}),
        ))
        .mount(&server)
        .await;
    let err = get(&client(settings(&server))).await.expect_err("bad request");
    let shown = "m".repeat(200);
    assert_eq!(
        err.error,
        GraphError::BadRequest { code: "ErrorInvalidUrlQuery".into(), message: shown },
        "the code kept, the message cut at 200 characters"
    );
}

/// The per-mailbox limits are bounded: past `MAX_TRACKED_MAILBOXES`, the idle ones are
/// forgotten and the ones in use kept.
#[tokio::test]
async fn idle_mailbox_limits_are_forgotten_past_the_bound_and_busy_ones_kept() {
    let c = production_client();
    let tracked = || c.inner.mailboxes.lock().expect("lock").len();
    let busy = c.mailbox_permit(mailbox(0)).await.expect("permit");
    for n in 1..=MAX_TRACKED_MAILBOXES as u128 {
        drop(c.mailbox_permit(mailbox(n)).await);
    }
    assert_eq!(tracked(), MAX_TRACKED_MAILBOXES + 1, "nothing forgotten up to the bound");
    drop(c.mailbox_permit(mailbox(u128::MAX)).await);
    assert_eq!(tracked(), 2, "the busy mailbox and the new one");
    drop(busy);
}

/// A JSON answer of exactly the cap is read; one byte more is refused.
#[tokio::test]
async fn a_json_answer_of_exactly_the_cap_is_read() {
    let server = MockServer::start().await;
    let body = br#"{"id":"me"}"#;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_vec(), "application/json"))
        .mount(&server)
        .await;
    let mut exact = settings(&server);
    exact.max_json_bytes = body.len() as u64;
    let got = get(&client(exact)).await.expect("at the cap");
    assert_eq!(got.body, serde_json::json!({"id":"me"}));
    let mut below = settings(&server);
    below.max_json_bytes = body.len() as u64 - 1;
    assert_eq!(get(&client(below)).await.expect_err("over").error, GraphError::TooLarge);
}

/// A streamed answer (no `Content-Length`) is refused as soon as it passes the cap, however
/// its chunks fall.
#[tokio::test]
async fn a_streamed_answer_over_the_cap_is_refused() {
    let body = br#"{"id":"me","displayName":"Adele"}"#;
    let (head, chunks) = crate::http::raw_server::chunked(&[&body[..]]);
    let base = crate::http::raw_server::raw_server(head, chunks).await;
    let mut capped = GraphSettings::new(Url::parse(&format!("{base}/v1.0")).expect("url"));
    capped.max_json_bytes = 10;
    assert_eq!(get(&client(capped)).await.expect_err("over").error, GraphError::TooLarge);
    let mut exact = GraphSettings::new(Url::parse(&format!("{base}/v1.0")).expect("url"));
    exact.max_json_bytes = body.len() as u64;
    assert_eq!(get(&client(exact)).await.expect("at the cap").body["displayName"], "Adele");
}

/// `retry-attempt` numbers the retries: absent on the first attempt, 1 on the second.
#[tokio::test(start_paused = true)]
async fn retries_are_numbered_and_the_first_attempt_is_not() {
    let server = MockServer::start().await;
    mount_then_ok(&server, throttled(Some("1")), 1).await;
    get(&client(settings(&server))).await.expect("retried");
    let reqs = server.received_requests().await.expect("recorded");
    let attempt =
        |n: usize| reqs[n].headers.get("retry-attempt").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!((attempt(0), attempt(1)), (None, Some("1".to_owned())));
}

/// A demanded wait that exactly uses up the retry budget is still waited.
#[tokio::test(start_paused = true)]
async fn a_wait_of_exactly_the_remaining_budget_is_waited() {
    let server = MockServer::start().await;
    mount_then_ok(&server, throttled(Some("30")), 1).await;
    let c = client(settings(&server)); // budget 30 s
    let start = tokio::time::Instant::now();
    get(&c).await.expect("retried after 30 s");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(requests(&server).await, 2);
}
