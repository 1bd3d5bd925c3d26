//! F — faults and bad input.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use fake_entra::{BadToken, Endpoint, Fault, FaultKind, TokenSpec};
use serde_json::json;

use super::{ensure_status, me_of, scenario};
use crate::{Persona, World};

pub fn scenarios() -> Vec<super::Scenario> {
    let mut v = vec![
        scenario!(
            "F03",
            "Entra unavailable: a clear error, recovery when it returns",
            f03_entra_unavailable
        ),
        scenario!(
            "F04",
            "JWKS endpoint down: cached keys keep working",
            f04_jwks_down_cached_keys_work
        ),
        scenario!(
            "F05",
            "malformed, oversized and mistyped requests get protocol errors",
            f05_bad_requests
        ),
    ];
    #[cfg(feature = "pending-tools")]
    v.extend(pending::scenarios());
    v.sort_by_key(|s| s.id);
    v
}

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
    let adele = world.session(Persona::Adele).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    #[cfg(feature = "pending-tools")]
    {
        world.entra.add_fault(Fault::new(
            Endpoint::Token,
            10,
            FaultKind::Unavailable { retry_after: Some(1) },
        ));
        let out = adele.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
        ensure!(out.is_error, "a call needing OBO succeeded while Entra was down");
        world.entra.clear_faults();
        let out = adele.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
        ensure!(!out.is_error, "no recovery: {}", out.text);
    }
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
        Err(e) => ensure!(format!("{e:#}").contains("connection closed"), "oversized body: {e:#}"),
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

#[cfg(feature = "pending-tools")]
mod pending {
    use fake_graph::{Fault as GFault, FaultRule, RetryAfter, ThrottleKind};

    use super::*;
    use crate::scenarios::Scenario;

    pub fn scenarios() -> Vec<Scenario> {
        vec![
            scenario!(
                "F01",
                "429 with Retry-After is honoured, then reported past the budget",
                f01_throttling
            ),
            scenario!(
                "F02",
                "Graph 5xx and timeouts: bounded retries, clear error, others unaffected",
                f02_server_errors
            ),
            scenario!(
                "F06",
                "read_resource refuses foreign URIs without any outbound request",
                f06_foreign_uris
            ),
            scenario!("F07", "OData/KQL metacharacters are escaped", f07_injection),
        ]
    }

    pub async fn f01_throttling(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        world.graph.add_fault(
            FaultRule::always(GFault::Throttle {
                retry_after: RetryAfter::Seconds(1),
                throttle: ThrottleKind::TooManyRequests,
            })
            .user(adele.tenant_id, adele.object_id)
            .times(1),
        );
        ensure!(!adele.call_ok("outlook_email_search", json!({"query": "a"})).await?.is_error);
        ensure!(
            world.graph.retry_violations().is_empty(),
            "the connector retried before Retry-After"
        );
        world.graph.add_fault(
            FaultRule::always(GFault::Throttle {
                retry_after: RetryAfter::Seconds(1),
                throttle: ThrottleKind::TooManyRequests,
            })
            .user(adele.tenant_id, adele.object_id),
        );
        let out = adele.call_ok("outlook_email_search", json!({"query": "a"})).await?;
        ensure!(out.is_error && out.text.to_lowercase().contains("throttl"), "{}", out.text);
        Ok(())
    }

    pub async fn f02_server_errors(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        let lee = world.session(Persona::Lee).await?;
        world.graph.add_fault(
            FaultRule::always(GFault::GatewayTimeout).user(adele.tenant_id, adele.object_id),
        );
        let out = adele.call_ok("outlook_email_search", json!({"query": "a"})).await?;
        ensure!(out.is_error, "a 504 was not reported");
        let n = world.graph.requests_for_user(adele.tenant_id, adele.object_id).len();
        ensure!(n <= 5, "{n} attempts: retries are not bounded");
        ensure!(!lee.call_ok("outlook_email_search", json!({"query": "a"})).await?.is_error);
        Ok(())
    }

    pub async fn f06_foreign_uris(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        let before = world.graph.journal().len();
        for uri in [
            "https://evil.example.com/x",
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "m365://../../etc/passwd",
            "m365://evil.example.com/drive/items/1",
        ] {
            let r = adele.call_tool_http("read_resource", json!({"uri": uri})).await?;
            let refused = r
                .json()
                .is_ok_and(|v| !v["error"].is_null() || v["result"]["isError"] == json!(true));
            ensure!(refused, "{uri} was not refused");
        }
        ensure!(world.graph.journal().len() == before, "an outbound request was made");
        Ok(())
    }

    pub async fn f07_injection(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        for q in ["' or 1 eq 1 or '", "a\" OR author:*", "x) or (true", "%27"] {
            let _ = adele.call_ok("outlook_email_search", json!({"query": q, "sender": q})).await?;
        }
        for e in world.graph.journal() {
            ensure!(!e.request_uri.contains(" or 1 eq 1"), "unescaped filter: {}", e.request_uri);
        }
        Ok(())
    }
}
