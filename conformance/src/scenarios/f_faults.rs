//! F — faults and bad input.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use fake_entra::{BadToken, Endpoint, Fault, FaultKind, TokenSpec, UserRateLimit};
use serde_json::json;

use super::{catalogue, ensure_status, me_of, scenario};
use crate::{Persona, World};

catalogue!($ f_faults_tests {
    f01_throttling_is_honoured_and_reported => scenario!(
        "F01",
        "429 with Retry-After is honoured, then reported past the budget",
        f01_throttling
    ),
    f02_server_errors_are_bounded_and_isolated => scenario!(
        "F02",
        "Graph 5xx and timeouts: bounded retries, clear error, others unaffected",
        f02_server_errors
    ),
    f03_entra_unavailable_then_recovery => scenario!(
        "F03",
        "Entra unavailable: a clear error, recovery when it returns",
        f03_entra_unavailable
    ),
    f04_jwks_down_cached_keys_keep_working => scenario!(
        "F04",
        "JWKS endpoint down: cached keys keep working",
        f04_jwks_down_cached_keys_work
    ),
    f05_bad_requests_get_protocol_errors => scenario!(
        "F05",
        "malformed, oversized and mistyped requests get protocol errors",
        f05_bad_requests
    ),
    f06_foreign_uris_are_refused_without_outbound_requests => scenario!(
        "F06",
        "read_resource refuses foreign URIs without any outbound request",
        f06_foreign_uris
    ),
    f07_odata_and_kql_metacharacters_are_escaped => scenario!("F07", "OData/KQL metacharacters are escaped", f07_injection),
    f08_entra_request_loop_is_reported_without_a_hot_loop => scenario!(
        "F08",
        "Entra throttles a user's token requests (429, AADSTS50196): a clear error, no Graph request, no hot loop",
        f08_entra_request_loop
    ),
    f09_a_hanging_entra_is_reported_in_bounded_time => scenario!(
        "F09",
        "Entra's token endpoint hangs: a clear error within the exchange timeout, no Graph request",
        f09_entra_hangs
    ),
    f10_a_dropped_entra_connection_is_reported => scenario!(
        "F10",
        "Entra drops the connection: a clear error at once, no Graph request",
        f10_entra_drops_the_connection
    ),
    f11_downloads_come_from_the_download_host_without_a_bearer => scenario!(
        "F11",
        "pre-authenticated downloads come from the download host, without Graph's bearer",
        f11_downloads_without_bearer
    ),
    f12_outlook_concurrency_per_app_is_retried_and_bounded => scenario!(
        "F12",
        "Outlook's 4-request limit counted per app across mailboxes: throttled calls are retried, bounded, and answered",
        f12_outlook_concurrency_per_app
    ),
});

pub async fn f03_entra_unavailable(world: &World) -> Result<()> {
    world.entra.add_fault(Fault::new(
        Endpoint::Token,
        1,
        FaultKind::Unavailable { retry_after: Some(1) },
    ));
    match world.try_sign_in(Persona::Adele.upn(), &[]).await {
        Ok(_) => return Err(anyhow!("sign-in succeeded while the token endpoint was down")),
        Err(e) => {
            let e = e.entra().cloned().ok_or_else(|| anyhow!("not an HTTP refusal: {e}"))?;
            ensure!(e.status == 503, "expected 503 from the token endpoint: {e}");
        }
    }
    // Signed in, but no call has been made yet: the first call needs an OBO exchange (one
    // exchange serves every tool of a user afterwards, so it must be the first).
    let adele = world.session(Persona::Adele).await?;
    world.entra.add_fault(Fault::new(
        Endpoint::Token,
        10,
        FaultKind::Unavailable { retry_after: Some(1) },
    ));
    let out = adele.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(out.is_error, "a call needing OBO succeeded while Entra was down");
    ensure!(
        out.text.contains("Try again"),
        "the outage is not explained as temporary: {}",
        out.text
    );
    world.entra.clear_faults();
    let out = adele.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(!out.is_error, "no recovery: {}", out.text);
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

/// Token requests fake-entra journalled for a session's user, refused with AADSTS `code`.
fn entra_refusals(world: &World, s: &crate::Session, code: u32) -> usize {
    let journal = world.entra.journal();
    journal.iter().filter(|e| e.user_id == Some(s.object_id) && e.error_code == Some(code)).count()
}

/// Exchanges a token of the session's user at fake-entra directly, as another client of the
/// same user would: it uses up the user's allowance without the connector.
async fn exchange_outside_the_connector(world: &World, s: &crate::Session) -> Result<()> {
    let assertion = world.mint(&TokenSpec::user(s.tenant_id, s.object_id));
    let connector = world.fixtures.apps.connector.app_id.to_string();
    let secret = world.fixtures.apps.connector.client_secrets.first().cloned().unwrap_or_default();
    let status = world
        .http()
        .post(world.entra.token_endpoint(&s.tenant_id.to_string()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("client_id", connector.as_str()),
            ("client_secret", secret.as_str()),
            ("assertion", assertion.as_str()),
            ("scope", "https://graph.microsoft.com/User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ])
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "the direct exchange was refused: HTTP {status}");
    Ok(())
}

pub async fn f08_entra_request_loop(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let megan = world.session(Persona::Megan).await?;
    // Entra allows each user two token requests a minute (counted from here: the sign-ins
    // are done); another client of Adele's has just used both.
    world.entra.set_user_rate_limit(Some(UserRateLimit::new(2, 60)));
    for _ in 0..2 {
        exchange_outside_the_connector(world, &adele).await?;
    }
    let started = std::time::Instant::now();
    let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
    ensure!(out.is_error, "a call over Entra's limit succeeded: {}", out.text);
    ensure!(out.text.contains("Try again"), "the throttling is not explained: {}", out.text);
    ensure!(entra_refusals(world, &adele, 50196) == 1, "Entra did not refuse with AADSTS50196");
    ensure!(world.graph.never_called_for(adele.tenant_id, adele.object_id), "Graph was called");
    ensure!(started.elapsed() < Duration::from_secs(5), "the refusal was not prompt");
    // No hot loop: while Entra's Retry-After runs, the next call is refused without asking.
    let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
    ensure!(out.is_error, "the call during the cool-down succeeded: {}", out.text);
    ensure!(
        entra_refusals(world, &adele, 50196) == 1,
        "the connector asked Entra again before Retry-After"
    );
    // The limit is per user: Megan is served.
    let out = megan.call_ok(MAIL, json!({"query": "budget"})).await?;
    ensure!(!out.is_error, "another user was throttled: {}", out.text);
    world.entra.set_user_rate_limit(None);
    Ok(())
}

pub async fn f09_entra_hangs(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    world
        .entra
        .add_fault(Fault::new(Endpoint::Token, 1, FaultKind::Hang).for_tenant(adele.tenant_id));
    let started = std::time::Instant::now();
    let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
    let took = started.elapsed();
    ensure!(out.is_error, "a call succeeded while Entra hung: {}", out.text);
    ensure!(out.text.contains("Try again"), "the outage is not explained: {}", out.text);
    ensure!(took < Duration::from_secs(20), "the call waited {took:?} for a hung Entra");
    ensure!(world.graph.never_called_for(adele.tenant_id, adele.object_id), "Graph was called");
    // The fault held one request; the next exchange works.
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

pub async fn f10_entra_drops_the_connection(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    world.entra.add_fault(
        Fault::new(Endpoint::Token, 1, FaultKind::DropConnection).for_tenant(adele.tenant_id),
    );
    let started = std::time::Instant::now();
    let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
    ensure!(out.is_error, "a call succeeded on a dropped connection: {}", out.text);
    ensure!(out.text.contains("Try again"), "the failure is not explained: {}", out.text);
    ensure!(started.elapsed() < Duration::from_secs(5), "the dropped connection was not noticed");
    ensure!(world.graph.never_called_for(adele.tenant_id, adele.object_id), "Graph was called");
    ensure!(
        world.entra.journal().iter().any(|e| e.error.as_deref() == Some("connection_dropped")),
        "fake-entra did not drop a token request"
    );
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

pub async fn f04_jwks_down_cached_keys_work(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    world.entra.add_fault(Fault::new(
        Endpoint::Keys,
        10_000,
        FaultKind::Unavailable { retry_after: None },
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        me_of(&adele.call_ok("get_me", json!({})).await?)?;
    }
    // A new session's token uses the same (cached) key.
    let megan = world.session(Persona::Megan).await?;
    me_of(&megan.call_ok("get_me", json!({})).await?)?;
    // An unknown kid cannot be decided while the keys are unreachable: 503 + Retry-After.
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let token = world.mint(&TokenSpec::user(tid, oid).bad(BadToken::UnknownKey));
    let r = world
        .session_with_token(Persona::Adele.upn(), token)
        .call_tool_http("get_me", json!({}))
        .await?;
    ensure!(matches!(r.status, 401 | 503), "unknown kid while JWKS is down: HTTP {}", r.status);
    if r.status == 503 {
        ensure!(r.header("retry-after").is_some(), "503 without Retry-After");
    }
    world.entra.clear_faults();
    Ok(())
}

pub async fn f05_bad_requests(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let r = adele.raw_post(b"{not json".to_vec(), &[]).await?;
    ensure!(
        (400..500).contains(&r.status)
            || r.json().is_ok_and(|v| v["error"]["code"] == json!(-32700)),
        "malformed JSON: HTTP {}",
        r.status
    );
    let big = vec![b' '; 2 * 1024 * 1024];
    // The server may answer 413 and close before the client finishes sending: a reset
    // connection is a refusal too. Liveness is checked at the end.
    match adele.raw_post(big, &[]).await {
        Ok(r) => ensure_status(&r, 413, "oversized body")?,
        Err(e) => {
            // Which of these the client sees depends on how far it got writing when the
            // server closed: all three mean the request was refused, not served.
            let text = format!("{e:#}");
            let refused = ["connection closed", "Broken pipe", "Connection reset"]
                .iter()
                .any(|sign| text.contains(sign));
            ensure!(refused, "oversized body: {text}");
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string().into_bytes();
    let r = adele.raw_post(body.clone(), &[("content-type", "text/plain")]).await?;
    ensure_status(&r, 415, "text/plain body")?;
    let r = adele.raw_post(body.clone(), &[("accept", "text/html")]).await?;
    ensure_status(&r, 406, "Accept: text/html")?;
    let r = adele
        .raw_post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "no/such"}).to_string().into_bytes(),
            &[],
        )
        .await?;
    ensure!(
        r.json().is_ok_and(|v| v["error"]["code"] == json!(-32601)) || r.status == 404,
        "unknown method: HTTP {} {}",
        r.status,
        r.text
    );
    let r = adele.raw_post(json!([1, 2, 3]).to_string().into_bytes(), &[]).await?;
    ensure!(
        r.status != 200 || r.json().is_ok_and(|v| !v["error"].is_null()),
        "garbage batch accepted"
    );
    // Still alive and serving.
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

use fake_graph::{ConcurrencyScope, Fault as GFault, FaultRule, RetryAfter, ThrottleKind};

use super::{obo_exchanges, structured_ok};

const MAIL: &str = "outlook_email_search";
const MESSAGES: &str = "/v1.0/me/messages";

fn throttle() -> GFault {
    GFault::Throttle {
        retry_after: RetryAfter::Seconds(1),
        throttle: ThrottleKind::TooManyRequests,
    }
}

/// Requests of a user whose path starts with `prefix`.
fn requests_to(world: &World, s: &crate::Session, prefix: &str) -> Vec<fake_graph::JournalEntry> {
    world
        .graph
        .requests_for_user(s.tenant_id, s.object_id)
        .into_iter()
        .filter(|e| e.path.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()))
        .collect()
}

pub async fn f01_throttling(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    // `from` makes the search an OData `$filter` on /me/messages.
    let args = json!({"from": "kim.akers@litware.com"});
    structured_ok(&adele, MAIL, args.clone()).await?;
    let before = requests_to(world, &adele, MESSAGES).len();
    world.graph.add_fault(
        FaultRule::always(throttle())
            .path(MESSAGES)
            .user(adele.tenant_id, adele.object_id)
            .times(1),
    );
    let started = std::time::Instant::now();
    let st = structured_ok(&adele, MAIL, args.clone()).await?;
    ensure!(
        st["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "no mail after a retry: {st}"
    );
    ensure!(started.elapsed() >= Duration::from_millis(900), "the connector did not wait");
    let tries = requests_to(world, &adele, MESSAGES).len() - before;
    ensure!(tries == 2, "expected one 429 and one retry, saw {tries} requests");
    ensure!(world.graph.retry_violations().is_empty(), "the connector retried before Retry-After");
    // Throttled for good: bounded retries, then a clear message.
    world.graph.add_fault(
        FaultRule::always(throttle()).path(MESSAGES).user(adele.tenant_id, adele.object_id),
    );
    let before = requests_to(world, &adele, MESSAGES).len();
    let out = adele.call_ok(MAIL, args).await?;
    ensure!(out.is_error, "a call throttled for good succeeded");
    ensure!(out.text.to_lowercase().contains("throttl"), "the error does not say so: {}", out.text);
    let tries = requests_to(world, &adele, MESSAGES).len() - before;
    ensure!((2..=4).contains(&tries), "{tries} attempts: the retry budget is not bounded");
    ensure!(world.graph.retry_violations().is_empty(), "the connector retried before Retry-After");
    world.graph.clear_faults();
    Ok(())
}

pub async fn f02_server_errors(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    let args = json!({"from": "kim.akers@litware.com"});
    for (name, fault) in [
        ("504", GFault::GatewayTimeout),
        ("503", GFault::ServiceUnavailable { retry_after: RetryAfter::Absent }),
        ("reset", GFault::ConnectionReset),
    ] {
        world.graph.clear_faults();
        world.graph.add_fault(
            FaultRule::always(fault).path(MESSAGES).user(adele.tenant_id, adele.object_id),
        );
        let before = requests_to(world, &adele, MESSAGES).len();
        let out = adele.call_ok(MAIL, args.clone()).await?;
        ensure!(out.is_error, "{name}: the failure was not reported: {}", out.text);
        ensure!(!out.text.is_empty() && out.text.len() < 2000, "{name}: unclear error");
        ensure_graph_unavailable_text(name, &out.text)?;
        let tries = requests_to(world, &adele, MESSAGES).len() - before;
        ensure!((1..=4).contains(&tries), "{name}: {tries} attempts: retries are not bounded");
        let other = structured_ok(&lee, MAIL, args.clone()).await;
        ensure!(other.is_ok(), "{name}: another user was affected: {other:?}");
    }
    // Timeouts: a Graph answer slower than the connector's timeout is an error, not a hang.
    world.graph.clear_faults();
    world.graph.add_fault(
        FaultRule::always(GFault::Latency { millis: 60_000 })
            .path(MESSAGES)
            .user(adele.tenant_id, adele.object_id)
            .times(1),
    );
    let started = std::time::Instant::now();
    let out = adele.call_ok(MAIL, args.clone()).await?;
    ensure!(
        started.elapsed() < Duration::from_secs(25),
        "the connector waited for the slow answer"
    );
    ensure!(out.is_error, "timeout: the failure was not reported: {}", out.text);
    ensure_graph_unavailable_text("timeout", &out.text)?;
    world.graph.clear_faults();
    structured_ok(&adele, MAIL, args).await?;
    Ok(())
}

/// The client is told Microsoft 365 (Graph) failed and that trying later may help, without
/// raw internals (status lines, stack traces, URLs of the backend).
fn ensure_graph_unavailable_text(what: &str, text: &str) -> Result<()> {
    let lower = text.to_lowercase();
    ensure!(
        [
            "unavailable",
            "could not be reached",
            "did not answer",
            "timed out",
            "timeout",
            "did not respond",
            "failed",
            "error"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "{what}: the error does not say the service failed: {text}"
    );
    ensure!(
        ["try again", "retry", "later"].iter().any(|w| lower.contains(w)),
        "{what}: the error does not say whether to try again: {text}"
    );
    ensure!(
        !lower.contains("127.0.0.1") && !lower.contains("/v1.0/") && !lower.contains("panicked"),
        "{what}: the error leaks internals: {text}"
    );
    Ok(())
}

pub async fn f06_foreign_uris(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let entra_before = obo_exchanges(world, adele.tenant_id, adele.object_id);
    let graph_before = world.graph.journal().len();
    let downloads_before = world.graph.downloads().len();
    // A listener of our own on loopback: a connector that fetched a pasted URL directly
    // would connect to it (the other hosts below do not exist or do not answer).
    let canary = crate::canary::Canary::start().await?;
    let canary_http = canary.url("/x");
    let canary_m365 = format!("m365://{}/drive/items/1", canary.authority());
    let canary_https = format!("https://{}/latest/meta-data/", canary.authority());
    for uri in [
        canary_http.as_str(),
        canary_m365.as_str(),
        canary_https.as_str(),
        "https://evil.example.com/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "file:///etc/passwd",
        "m365://../../etc/passwd",
        "m365://evil.example.com/drive/items/1",
        "m365://drive/..%2F..%2Fetc/item/passwd",
        "m365://mail/..%2F..%2Fusers%2Fdiego%40contoso.com%2Fmessages",
        &format!("{}/v1.0/me/messages", world.graph.uri()),
        "https://127.0.0.1:1/x",
    ] {
        let r = adele.call_tool_http("read_resource", json!({"uri": uri})).await?;
        let refused =
            r.json().is_ok_and(|v| !v["error"].is_null() || v["result"]["isError"] == json!(true));
        ensure!(refused, "{uri} was not refused: {}", r.text);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(
        canary.connections() == 0,
        "the connector connected to a pasted URL ({} connections to the canary)",
        canary.connections()
    );
    ensure!(world.graph.journal().len() == graph_before, "fake-graph saw a request");
    ensure!(world.graph.downloads().len() == downloads_before, "a download was made");
    ensure!(
        obo_exchanges(world, adele.tenant_id, adele.object_id) == entra_before,
        "an OBO exchange was made for a refused URI"
    );
    Ok(())
}

pub async fn f07_injection(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    // OData: a folder-scoped search with a hostile query text, and hostile filter values.
    for q in ["' or 1 eq 1 or '", "x') or (true", "%27 or 1 eq 1", "a\" OR from:*"] {
        let r = adele
            .call_tool_http(
                MAIL,
                json!({"query": q, "folder": "inbox", "received_after": "2026-01-01"}),
            )
            .await?;
        ensure!(r.status == 200, "HTTP {}", r.status);
        let r = adele.call_tool_http(MAIL, json!({"from": q})).await?;
        let v = r.json()?;
        ensure!(
            !v["error"].is_null()
                || v["result"]["isError"] == json!(true)
                || v["result"]["structuredContent"]["messages"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
            "a hostile sender widened the filter: {}",
            r.text.chars().take(300).collect::<String>()
        );
    }
    for e in world.graph.requests_for_user(adele.tenant_id, adele.object_id) {
        let uri = percent_decode(&e.request_uri);
        ensure!(!uri.contains("' or 1 eq 1 or '"), "unescaped OData value: {uri}");
        ensure!(!uri.contains("') or (true"), "unescaped OData value: {uri}");
    }
    // The one OData escape: a quote inside a string literal is doubled. A sender address may
    // hold an apostrophe, and an attendee name is matched by prefix: both reach `$filter`.
    let before = world.graph.journal().len();
    let out = adele.call_ok(MAIL, json!({"from": "o'brien@contoso.com"})).await?;
    ensure!(!out.is_error, "a sender address with an apostrophe failed: {}", out.text);
    let filters: Vec<String> = super::graph_since(world, before)
        .iter()
        .map(|e| percent_decode(&e.request_uri))
        .filter(|u| u.contains("$filter"))
        .collect();
    ensure!(
        !filters.is_empty() && filters.iter().all(|u| u.contains("'o''brien@contoso.com'")),
        "the apostrophe of a sender address was not doubled in $filter: {filters:?}"
    );
    let before = world.graph.journal().len();
    let hostile = "Alex' or startswith(displayName,'";
    let out = adele
        .call_ok(
            "find_meeting_availability",
            json!({"attendees": [hostile], "duration_minutes": 30,
                   "start": "2026-06-01", "end": "2026-06-03"}),
        )
        .await?;
    let filters: Vec<String> = super::graph_since(world, before)
        .iter()
        .map(|e| percent_decode(&e.request_uri))
        .filter(|u| u.contains("$filter"))
        .collect();
    ensure!(
        // (the query string writes a space as `+`)
        !filters.is_empty()
            && filters
                .iter()
                .all(|u| u.replace('+', " ").contains("'Alex'' or startswith(displayName,'''")),
        "an attendee name was not one OData literal: {filters:?}"
    );
    ensure!(
        !out.text.contains("alex@contoso.com"),
        "a hostile attendee name resolved to Alex: {}",
        out.text
    );
    // KQL: quotes and operators in the text are plain words, so nothing extra matches.
    let plain = structured_ok(&adele, "sharepoint_search", json!({"query": "zzqx"})).await?;
    let hostile = structured_ok(
        &adele,
        "sharepoint_search",
        json!({"query": "zzqx\" OR filetype:docx OR \""}),
    )
    .await?;
    ensure!(
        hostile["items"].as_array().map_or(0, Vec::len)
            <= plain["items"].as_array().map_or(0, Vec::len),
        "a KQL operator in the query widened the search: {hostile}"
    );
    let chat =
        structured_ok(&adele, "chat_message_search", json!({"query": "zzqx\" OR *"})).await?;
    ensure!(
        chat["messages"].as_array().is_none_or(Vec::is_empty),
        "a KQL operator widened chat search: {chat}"
    );
    Ok(())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.replace('+', "%2B").as_bytes())
        .map(|(k, v)| if v.is_empty() { k.into_owned() } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn f11_downloads_without_bearer(world: &World) -> Result<()> {
    ensure!(
        world.graph.download_uri() != world.graph.uri(),
        "the World serves downloads from Graph's own host"
    );
    let adele = world.session(Persona::Adele).await?;
    let hits = structured_ok(&adele, "sharepoint_search", json!({"query": "design"})).await?;
    let docx = super::uri_where(&hits, "items", "name", "Design.docx")?;
    let before = world.graph.downloads().len();
    let read = structured_ok(&adele, "read_resource", json!({"uri": docx})).await?;
    ensure!(
        read["text"].as_str().is_some_and(|t| t.contains("Project Falcon")),
        "Design.docx was not read: {read}"
    );
    let downloads = world.graph.downloads();
    let new = downloads.get(before..).unwrap_or_default();
    ensure!(!new.is_empty(), "the file was not fetched from the download host");
    ensure!(new.iter().all(|d| d.status < 300), "a download failed: {new:?}");
    ensure!(
        new.iter().all(|d| !d.had_authorization),
        "the connector sent an Authorization header to the download host"
    );
    Ok(())
}

/// F12: seven users of two tenants search their mail at once while Graph holds each Outlook
/// request for 300 ms. Counted per (app, mailbox), the documented reading the connector's own
/// limit of 4 per user is built for, nobody is throttled. Counted per app across mailboxes
/// (the stricter reading, `graph.md` §4.2), the requests beyond 4 get `ApplicationThrottled`
/// without `Retry-After`: each such call is retried after a backoff instead of failing at
/// once, within the attempt budget, and every call answers, with mail or a throttling message.
pub async fn f12_outlook_concurrency_per_app(world: &World) -> Result<()> {
    const MAX_ATTEMPTS: usize = 4; // the connector's default `graph.max_attempts`
    let personas = [
        Persona::Adele,
        Persona::Alex,
        Persona::Megan,
        Persona::PradeepContoso,
        Persona::AdeleFabrikam,
        Persona::PradeepFabrikam,
        Persona::Lee,
    ];
    let mut sessions = Vec::with_capacity(personas.len());
    for persona in personas {
        let s = world.session(persona).await?;
        // Warm: the OBO token and the mailbox settings are cached, so the burst below sends
        // only the Outlook requests themselves.
        structured_ok(&s, MAIL, json!({})).await?;
        sessions.push(s);
    }
    world.graph.add_fault(FaultRule::always(GFault::Latency { millis: 300 }).path(MESSAGES));
    let burst = || async {
        let before: Vec<usize> =
            sessions.iter().map(|s| requests_to(world, s, MESSAGES).len()).collect();
        let calls = sessions.iter().map(|s| s.call_ok(MAIL, json!({})));
        let outcomes = futures::future::join_all(calls).await;
        let mut per_user = Vec::with_capacity(sessions.len());
        for ((s, outcome), before) in sessions.iter().zip(outcomes).zip(before) {
            let requests: Vec<u16> = requests_to(world, s, MESSAGES)[before..]
                .iter()
                .map(|e| e.response_status_code)
                .collect();
            per_user.push((s.upn.clone(), outcome?, requests));
        }
        anyhow::Ok(per_user)
    };

    for (upn, out, requests) in burst().await? {
        ensure!(!out.is_error, "{upn} failed under the per-mailbox reading: {}", out.text);
        ensure!(
            !requests.contains(&429),
            "{upn} was throttled under the per-mailbox reading: {requests:?}"
        );
    }

    world.graph.set_concurrency_scope(ConcurrencyScope::PerApp);
    let per_user = burst().await?;
    let throttled = per_user.iter().filter(|(_, _, r)| r.contains(&429)).count();
    ensure!(throttled > 0, "no request was throttled per app: the scenario proves nothing");
    for (upn, out, requests) in &per_user {
        ensure!(
            (1..=MAX_ATTEMPTS).contains(&requests.len()),
            "{upn}: {} Outlook requests for one call: the retry budget is not bounded ({requests:?})",
            requests.len()
        );
        if let Some(first) = requests.iter().position(|s| *s == 429) {
            ensure!(
                requests.len() > first + 1 || requests.len() == MAX_ATTEMPTS,
                "{upn}: a throttled request was not retried ({requests:?})"
            );
        }
        if out.is_error {
            ensure!(
                out.text.to_lowercase().contains("throttl"),
                "{upn}: the call failed without saying it was throttled: {}",
                out.text
            );
        } else {
            ensure!(requests.last() == Some(&200), "{upn}: answered, but Graph said {requests:?}");
        }
    }
    Ok(())
}
