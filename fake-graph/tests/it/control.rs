//! Scripted faults, concurrency limit, Retry-After compliance, control API.

use std::time::Duration;

use fake_graph::{ConcurrencyScope, Fault, FaultRule, RetryAfter, ThrottleKind};
use reqwest::StatusCode;

use crate::helpers::{MAIL, TestWorld};

fn throttle(retry_after: RetryAfter) -> Fault {
    Fault::Throttle { retry_after, throttle: ThrottleKind::TooManyRequests }
}

#[tokio::test]
async fn the_nth_request_is_throttled_with_each_retry_after_style() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    w.graph.add_fault(
        FaultRule::always(throttle(RetryAfter::Seconds(5))).path("/v1.0/me/messages").nth(2),
    );
    assert_eq!(w.get(&t, "/v1.0/me/messages").await.status, StatusCode::OK);
    let r = w.get(&t, "/v1.0/me/messages").await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"));
    assert_eq!(r.header("retry-after"), "5");
    assert_eq!(r.body["error"]["innerError"]["status"], "429");
    // Coming back early is recorded.
    assert_eq!(w.get(&t, "/v1.0/me/messages").await.status, StatusCode::OK);
    assert_eq!(w.graph.retry_violations().len(), 1);

    w.graph.clear_faults();
    w.graph.add_fault(
        FaultRule::always(throttle(RetryAfter::Fractional(2.128))).path("/v1.0/me").times(1),
    );
    assert_eq!(w.get(&t, "/v1.0/me").await.header("retry-after"), "2.128");
    w.graph.add_fault(
        FaultRule::always(throttle(RetryAfter::HttpDate(30))).path("/v1.0/me/mailFolders").times(1),
    );
    assert!(w.get(&t, "/v1.0/me/mailFolders").await.header("retry-after").ends_with(" GMT"));
    w.graph.add_fault(
        FaultRule::always(throttle(RetryAfter::Absent)).path("/v1.0/me/events").times(1),
    );
    let r = w.get(&w.token("contoso", "adele", &["Calendars.Read"]), "/v1.0/me/events").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn waiting_out_retry_after_is_not_a_violation() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    w.graph.add_fault(
        FaultRule::always(throttle(RetryAfter::Seconds(3))).path("/v1.0/me/messages").times(1),
    );
    assert_eq!(w.get(&t, "/v1.0/me/messages").await.status, StatusCode::TOO_MANY_REQUESTS);
    w.clock.advance(Duration::from_secs(4));
    assert_eq!(w.get(&t, "/v1.0/me/messages").await.status, StatusCode::OK);
    assert!(w.graph.retry_violations().is_empty());
}

#[tokio::test]
async fn server_errors_and_broken_bodies() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    w.graph.add_fault(
        FaultRule::always(Fault::ServiceUnavailable { retry_after: RetryAfter::Seconds(1) })
            .path("/v1.0/me")
            .times(1),
    );
    let r = w.get(&t, "/v1.0/me").await;
    assert_eq!((r.status, r.code()), (StatusCode::SERVICE_UNAVAILABLE, "serviceNotAvailable"));
    w.graph.add_fault(FaultRule::always(Fault::GatewayTimeout).path("/v1.0/me").times(1));
    assert_eq!(w.get(&t, "/v1.0/me").await.status, StatusCode::GATEWAY_TIMEOUT);
    w.graph.add_fault(FaultRule::always(Fault::TruncatedBody).path("/v1.0/me").times(1));
    let r = w.get(&t, "/v1.0/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_null(), "a truncated body is not valid JSON");
    w.graph.add_fault(FaultRule::always(Fault::ConnectionReset).path("/v1.0/me").times(1));
    let sent = w.http.get(format!("{}/v1.0/me", w.graph.uri())).bearer_auth(&t).send().await;
    let failed = match sent {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection must break");
    assert_eq!(w.get(&t, "/v1.0/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn outlook_allows_four_concurrent_requests_per_mailbox() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    w.graph.add_fault(FaultRule::always(Fault::Latency { millis: 300 }).path("/v1.0/me/messages"));
    let calls = (0..5).map(|_| w.get(&t, "/v1.0/me/messages?$top=1"));
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<_> =
        results.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0].code(), "ApplicationThrottled");
    assert_eq!(
        throttled[0].body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
}

/// `n` concurrent `GET /me/messages` for each `(user, n)`, all held a second by a latency fault
/// (long enough to overlap on a loaded machine); returns how many were refused with
/// `ApplicationThrottled` (every other one must succeed).
async fn concurrent_mail_reads(w: &TestWorld, per_user: &[(&str, usize)]) -> usize {
    w.graph.clear_faults();
    w.graph.add_fault(FaultRule::always(Fault::Latency { millis: 1000 }).path("/v1.0/me/messages"));
    let tokens: Vec<(String, usize)> =
        per_user.iter().map(|(user, n)| (w.token("contoso", user, MAIL), *n)).collect();
    let calls = tokens
        .iter()
        .flat_map(|(t, n)| std::iter::repeat_n(t, *n))
        .map(|t| w.get(t, "/v1.0/me/messages?$top=1"));
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<_> =
        results.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(throttled.iter().all(|r| r.code() == "ApplicationThrottled"));
    assert!(
        results.iter().all(|r| matches!(r.status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS)),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    throttled.len()
}

#[tokio::test]
async fn per_mailbox_scope_gives_each_mailbox_its_own_four() {
    let w =
        TestWorld::start_with(|b| b.concurrency_scope(ConcurrencyScope::PerAppAndMailbox)).await;
    assert_eq!(concurrent_mail_reads(&w, &[("adele", 4), ("alex", 4)]).await, 0);
    assert_eq!(concurrent_mail_reads(&w, &[("adele", 5), ("alex", 4)]).await, 1);
}

#[tokio::test]
async fn per_app_scope_counts_four_across_mailboxes() {
    let w = TestWorld::start_with(|b| b.concurrency_scope(ConcurrencyScope::PerApp)).await;
    assert_eq!(concurrent_mail_reads(&w, &[("adele", 2), ("alex", 2)]).await, 0);
    assert_eq!(concurrent_mail_reads(&w, &[("adele", 3), ("alex", 3)]).await, 2);
    // The scope can change on a running server, back to the default reading.
    w.graph.set_concurrency_scope(ConcurrencyScope::PerAppAndMailbox);
    assert_eq!(concurrent_mail_reads(&w, &[("adele", 3), ("alex", 3)]).await, 0);
}

#[tokio::test]
async fn faults_can_target_one_user_and_be_scripted_over_http() {
    let w = TestWorld::start().await;
    let (tid, alex) = w.persona("contoso", "alex");
    let rule = FaultRule::always(throttle(RetryAfter::Seconds(1))).user(tid, alex);
    let r = w
        .send(
            reqwest::Method::POST,
            None,
            "/_fake/faults",
            Some(serde_json::to_value(&rule).expect("json")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(w.get(&w.token("contoso", "adele", MAIL), "/v1.0/me").await.status, StatusCode::OK);
    assert_eq!(
        w.get(&w.token("contoso", "alex", MAIL), "/v1.0/me").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let journal = w.send(reqwest::Method::GET, None, "/_fake/journal", None, &[]).await;
    assert_eq!(journal.body.as_array().expect("entries").len(), 2);
}

#[tokio::test]
async fn an_added_message_is_served_at_once() {
    let w = TestWorld::start().await;
    let (tid, oid) = w.persona("contoso", "adele");
    let mb =
        w.tenant("contoso").content.mailboxes.iter().find(|m| m.owner == oid).expect("mailbox");
    let mut m = mb.messages[0].clone();
    m.id = "AAMkAGFreshMessage=".into();
    m.immutable_id = "AAkALgFreshMessage=".into();
    m.subject = "Zebra unicorn memo".into();
    assert!(w.graph.add_message(tid, oid, m));
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get(&t, "/v1.0/me/messages?$search=\"zebra\"").await;
    assert_eq!(r.body["value"][0]["subject"], "Zebra unicorn memo");
    assert!(w.graph.delete_message(tid, oid, "AAMkAGFreshMessage="));
    let r = w.get(&t, "/v1.0/me/messages/AAMkAGFreshMessage=").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The panic message of `f`, if it panicked.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_read_only_fake_panics_on_drop_listing_the_writes() {
    let w = TestWorld::start_with(|b| b.read_only_on_drop(true)).await;
    let t = w.token("contoso", "adele", &["User.Read", "Mail.ReadWrite", "Mail.Send"]);
    assert_eq!(w.get(&t, "/v1.0/me").await.status, StatusCode::OK);
    let r = w
        .send(
            reqwest::Method::POST,
            Some(&t),
            "/v1.0/me/sendMail",
            Some(serde_json::json!({})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, adele) = w.persona("contoso", "adele");
    let message = panic_message(|| drop(w.graph)).expect("the drop panics");
    assert!(message.contains("journalled 1:"), "{message}");
    assert!(
        message.contains(&format!("- POST /v1.0/me/sendMail → 405 (user {adele})")),
        "{message}"
    );
    assert!(!message.contains("/v1.0/me "), "reads are not listed: {message}");
}

#[tokio::test]
async fn a_read_only_fake_that_saw_only_reads_drops_quietly() {
    let w = TestWorld::start_with(|b| b.read_only_on_drop(true)).await;
    let t = w.token("contoso", "adele", MAIL);
    assert_eq!(w.get(&t, "/v1.0/me/messages").await.status, StatusCode::OK);
    w.graph.verify_read_only();
    assert_eq!(panic_message(|| drop(w.graph)), None);
}

#[tokio::test]
async fn without_the_option_writes_are_only_journalled() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["Mail.ReadWrite"]);
    let r = w.send(reqwest::Method::DELETE, Some(&t), "/v1.0/me/messages/AAA", None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(w.graph.mutating_requests().len(), 1);
    let explicit = panic_message(|| w.graph.verify_read_only()).expect("verify panics");
    assert!(explicit.contains("- DELETE /v1.0/me/messages/AAA → 405"), "{explicit}");
    assert_eq!(panic_message(|| drop(w.graph)), None);
}

#[tokio::test]
async fn a_test_already_failing_is_not_turned_into_a_double_panic() {
    let w = TestWorld::start_with(|b| b.read_only_on_drop(true)).await;
    let t = w.token("contoso", "adele", &["Mail.ReadWrite"]);
    w.send(reqwest::Method::PATCH, Some(&t), "/v1.0/me/messages/AAA", None, &[]).await;
    let graph = w.graph;
    // The graph is dropped while this panic unwinds: a second panic would abort the process.
    let message = panic_message(move || {
        let _graph = graph;
        panic!("the test's own assertion failed");
    });
    assert_eq!(message.as_deref(), Some("the test's own assertion failed"));
}
