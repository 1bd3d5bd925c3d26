//! T — tokens over time.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use base64::Engine;
use fixtures::TokenLifetimePolicy;
use serde_json::json;

use super::{PAST_LEEWAY, ensure_status, me_of, scenario};
use crate::{Persona, World};

pub fn scenarios() -> Vec<super::Scenario> {
    let mut v = vec![
        scenario!(
            "T03",
            "expired user token: 401, refresh, continue",
            clock = true,
            setup = World::builder,
            t03_expired_token_refresh_and_continue
        ),
        scenario!(
            "T04",
            "refresh token idle past 90 days needs a fresh sign-in",
            clock = true,
            setup = World::builder,
            t04_idle_refresh_token_is_refused
        ),
        scenario!(
            "T05",
            "a token lifetime policy is honoured",
            clock = false,
            setup = t05_setup,
            t05_token_lifetime_policy
        ),
    ];
    #[cfg(feature = "pending-tools")]
    v.extend(pending::scenarios());
    v.sort_by_key(|s| s.id);
    v
}

fn claims(token: &str) -> Result<serde_json::Value> {
    let payload = token.split('.').nth(1).ok_or_else(|| anyhow!("not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

pub async fn t03_expired_token_refresh_and_continue(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    let life = u64::try_from(adele.expires_in().max(0))?;
    world.advance(Duration::from_secs(life) + PAST_LEEWAY);
    let r = adele.call_tool_http("get_me", json!({})).await?;
    ensure_status(&r, 401, "expired token")?;
    ensure!(
        r.challenge("error").as_deref() == Some("invalid_token"),
        "{:?}",
        r.header("www-authenticate")
    );
    adele.refresh().await.map_err(|e| anyhow!("refresh: {e}"))?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

pub async fn t04_idle_refresh_token_is_refused(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    world.advance(Duration::from_secs(91 * 24 * 3600));
    match adele.refresh().await {
        Ok(()) => return Err(anyhow!("a refresh token idle for 91 days was accepted")),
        Err(e) => {
            let e = e.entra().cloned().ok_or_else(|| anyhow!("not an Entra refusal"))?;
            ensure!(e.error == "invalid_grant", "expected invalid_grant: {e}");
        }
    }
    adele.sign_in_again(&[]).await.map_err(|e| anyhow!("fresh sign-in: {e}"))?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

fn t05_setup() -> crate::WorldBuilder {
    World::builder().token_lifetime(
        "contoso",
        TokenLifetimePolicy { access_token_minutes: Some(10), refresh_token_max_inactive_days: 90 },
    )
}

pub async fn t05_token_lifetime_policy(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let c = claims(&adele.token())?;
    let life = c["exp"].as_i64().unwrap_or_default() - c["iat"].as_i64().unwrap_or_default();
    ensure!(life == 600, "token lifetime is {life} s, the policy says 600");
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    if world.controls_clock() {
        world.advance(Duration::from_secs(600) + PAST_LEEWAY);
        let r = adele.call_tool_http("get_me", json!({})).await?;
        ensure_status(&r, 401, "token past the policy's lifetime")?;
    }
    // The other tenant keeps Entra's default 60–90 minutes.
    let lee = world.session(Persona::Lee).await?;
    let c = claims(&lee.token())?;
    let life = c["exp"].as_i64().unwrap_or_default() - c["iat"].as_i64().unwrap_or_default();
    ensure!((3600..=5400).contains(&life), "fabrikam token lifetime {life} s");
    Ok(())
}

/// Scenarios that need a tool performing an OBO exchange.
#[cfg(feature = "pending-tools")]
mod pending {
    use super::*;
    use crate::scenarios::{Scenario, obo_exchanges};

    pub fn scenarios() -> Vec<Scenario> {
        vec![
            scenario!("T01", "many calls, one OBO exchange", t01_many_calls_one_exchange),
            scenario!(
                "T02",
                "OBO token near expiry is renewed before use",
                clock = true,
                setup = World::builder,
                t02_renewal_before_expiry
            ),
            scenario!(
                "T06",
                "100 concurrent first calls make one exchange",
                t06_concurrent_first_calls
            ),
            scenario!(
                "T07",
                "the token cache at rest holds no plaintext token",
                t07_no_plaintext_at_rest
            ),
            scenario!(
                "T08",
                "cache entries are keyed by tenant and user",
                t08_cache_keyed_by_tenant_and_user
            ),
        ]
    }

    const MAIL: &str = "outlook_email_search";

    pub async fn t01_many_calls_one_exchange(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        for _ in 0..10 {
            ensure!(!adele.call_ok(MAIL, json!({"query": "budget"})).await?.is_error);
        }
        let n = obo_exchanges(world, adele.tenant_id, adele.object_id);
        ensure!(n == 1, "{n} OBO exchanges for 10 calls");
        Ok(())
    }

    pub async fn t02_renewal_before_expiry(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        ensure!(!adele.call_ok(MAIL, json!({"query": "budget"})).await?.is_error);
        for _ in 0..30 {
            world.advance(Duration::from_secs(240));
            if adele.call_tool_http(MAIL, json!({"query": "x"})).await?.status == 401 {
                adele.refresh().await.map_err(|e| anyhow!("{e}"))?;
            }
            let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
            ensure!(!out.is_error, "a call failed at the OBO boundary: {}", out.text);
        }
        Ok(())
    }

    pub async fn t06_concurrent_first_calls(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        let calls = (0..100).map(|_| adele.call_ok(MAIL, json!({"query": "budget"})));
        for r in futures::future::join_all(calls).await {
            ensure!(!r?.is_error);
        }
        let n = obo_exchanges(world, adele.tenant_id, adele.object_id);
        ensure!(n == 1, "{n} OBO exchanges for 100 concurrent first calls");
        Ok(())
    }

    pub async fn t07_no_plaintext_at_rest(world: &World) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        ensure!(!adele.call_ok(MAIL, json!({"query": "budget"})).await?.is_error);
        // Nothing the connector writes to disk holds a token.
        for entry in std::fs::read_dir(world.dir())? {
            let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
            for s in world.secrets() {
                ensure!(!text.contains(&s), "a token is stored in plaintext");
            }
        }
        Ok(())
    }

    pub async fn t08_cache_keyed_by_tenant_and_user(world: &World) -> Result<()> {
        let a = world.session(Persona::Adele).await?;
        let b = world.session(Persona::AdeleFabrikam).await?;
        for s in [&a, &b, &a, &b] {
            ensure!(!s.call_ok(MAIL, json!({"query": "budget"})).await?.is_error);
        }
        ensure!(obo_exchanges(world, a.tenant_id, a.object_id) == 1);
        ensure!(obo_exchanges(world, b.tenant_id, b.object_id) == 1);
        for e in world.graph.journal() {
            if e.user_id == Some(a.object_id) {
                ensure!(e.tenant_id == Some(a.tenant_id), "a Graph call crossed tenants");
            }
        }
        Ok(())
    }
}
