//! The read-only expectation: requests that would change a real tenant are recorded, and a
//! fake told so asserts on drop that there were none, without a double panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fake_entra::FakeEntra;

use crate::helpers::spawn;

async fn post_devicecode(http: &reqwest::Client, entra: &FakeEntra) -> u16 {
    let url = format!("{}/common/oauth2/v2.0/devicecode", entra.uri());
    http.post(url).form(&[("client_id", "x")]).send().await.expect("answered").status().as_u16()
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn reads_token_requests_and_control_calls_are_not_mutating() {
    let t = spawn().await;
    t.get_json("/common/v2.0/.well-known/openid-configuration").await;
    t.get_json("/common/discovery/v2.0/keys").await;
    t.sign_in("adele@contoso.com").await;
    t.token("contoso.com", &[("grant_type", "client_credentials")]).await;
    t.http.delete(format!("{}/_fake/journal", t.entra.uri())).send().await.expect("control");
    assert_eq!(t.entra.mutating_requests(), vec![]);
    t.entra.verify_read_only();
}

#[tokio::test]
async fn a_write_to_an_entra_endpoint_is_recorded_with_its_status() {
    let t = spawn().await;
    assert_eq!(post_devicecode(&t.http, &t.entra).await, 404);
    let writes = t.entra.mutating_requests();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str(), writes[0].status),
        ("POST", "/common/oauth2/v2.0/devicecode", 404)
    );
    let (status, body) = t.get_json("/_fake/mutating-requests").await;
    assert_eq!((status, body[0]["path"].as_str()), (200, Some("/common/oauth2/v2.0/devicecode")));
    let failed = catch_unwind(AssertUnwindSafe(|| t.entra.verify_read_only()));
    let text = failed.err().map(panic_text).unwrap_or_default();
    assert!(text.contains("- POST /common/oauth2/v2.0/devicecode → 404"), "{text}");
}

#[tokio::test]
async fn read_only_on_drop_panics_after_a_write_and_stays_quiet_without_one() {
    let t = spawn().await;
    let clean = FakeEntra::builder().read_only_on_drop(true).start().await.expect("starts");
    t.http.get(format!("{}/common/discovery/v2.0/keys", clean.uri())).send().await.expect("get");
    drop(clean);
    let dirty = FakeEntra::builder().read_only_on_drop(true).start().await.expect("starts");
    post_devicecode(&t.http, &dirty).await;
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(dirty)));
    let text = dropped.err().map(panic_text).unwrap_or_default();
    assert!(text.contains("fake-entra expected no mutating request but saw 1"), "{text}");
}

#[tokio::test]
async fn read_only_on_drop_does_not_double_panic_while_unwinding() {
    let t = spawn().await;
    let entra = FakeEntra::builder().read_only_on_drop(true).start().await.expect("starts");
    post_devicecode(&t.http, &entra).await;
    // The test's own failure unwinds through the fake's drop: that failure must be what is
    // reported (a second panic would abort the whole test binary instead).
    let joined = std::thread::spawn(move || {
        let _entra = entra;
        panic!("the test's own failure");
    })
    .join();
    assert_eq!(joined.err().map(panic_text).as_deref(), Some("the test's own failure"));
}
