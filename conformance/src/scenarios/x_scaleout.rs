//! X — scale-out: two connector instances sharing a real `redis-server` (started here on a
//! random loopback port, temporary directory, no persistence), reached through the
//! scenario's own round-robin. The instances run the world's own configuration (same fakes,
//! same cache and cursor keys, same policy file) plus `[redis]`: as child processes of the
//! gate's connector binary in binary mode, in process under `cargo test`; the world's
//! original connector is left idle.
//!
//! The harness is [`crate::scaleout`], shared with `m365-sandbox --instances 2` and
//! `m365-bench --instances 2 --redis`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;
use uuid::Uuid;

use super::{catalogue, me_of, obo_exchanges, scenario};
use crate::{
    Persona, Session, World,
    scaleout::{DEFAULT_KNOBS, Knobs, ScaleOut},
    world::TenantRule,
};

catalogue!($ x_scaleout_tests {
    x01_one_obo_exchange_per_sign_in_across_two_instances => scenario!(
        "X01",
        "one OBO exchange per sign-in across two instances, under concurrency",
        x01_one_exchange_per_sign_in
    ),
    x02_tenant_disabled_on_one_instance_is_refused_by_the_other => scenario!(
        "X02",
        "a tenant disabled through one instance is refused by the other on its next call",
        x02_disable_reaches_the_other_instance
    ),
    x03_per_user_rate_limit_holds_across_instances => scenario!(
        "X03",
        "the per-user rate limit holds across instances",
        x03_rate_limit_across_instances
    ),
    x04_redis_outage_fails_no_call_and_l2_returns => scenario!(
        "X04",
        "Redis stopped mid-run: no call fails; restarted: L2 used again",
        x04_redis_outage
    ),
    x05_redis_holds_nothing_readable => scenario!(
        "X05",
        "Redis holds no plaintext token and no key names a user or tenant",
        x05_nothing_readable_in_redis
    ),
    x06_tenants_never_share_an_l2_entry => scenario!(
        "X06",
        "two tenants' users with the same oid never share an L2 entry or a budget",
        clock = false,
        setup = twin_world,
        x06_tenants_never_share_entries
    ),
    x07_a_copied_cache_blob_is_refused => scenario!(
        "X07",
        "a cache blob copied to another user's key is refused",
        x07_copied_blob_refused
    ),
});

/// `get_me` through instance `i`: the identity, or why the call failed.
async fn me_via(x: &ScaleOut, world: &World, s: &Session, i: usize) -> Result<(String, String)> {
    let out = x.on(world, s, i).call_tool_http("get_me", json!({})).await?;
    ensure!(out.status == 200, "HTTP {} from instance {i}: {}", out.status, out.text);
    let result = out.tool_result()?;
    me_of(&crate::session::ToolOutcome::from_json(&result))
}

// ─── Scenarios ──────────────────────────────────────────────────────────────────────────

/// X01: twenty concurrent first calls of one sign-in, alternating between the instances,
/// cost one OBO exchange at Entra.
pub async fn x01_one_exchange_per_sign_in(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    for persona in [Persona::Adele, Persona::Lee] {
        let s = world.session(persona).await?;
        let before = obo_exchanges(world, s.tenant_id, s.object_id);
        let calls = (0..20).map(|i| me_via(&x, world, &s, i));
        for r in futures::future::join_all(calls).await {
            r?;
        }
        let exchanges = obo_exchanges(world, s.tenant_id, s.object_id) - before;
        ensure!(exchanges == 1, "{}: {exchanges} OBO exchanges for one sign-in", s.upn);
    }
    Ok(())
}

/// X02: instance 0 applies a policy disabling Contoso; instance 1, whose own poll is an hour
/// away, refuses Contoso on its next call (the tenant epoch in Redis carries the news).
pub async fn x02_disable_reaches_the_other_instance(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    me_via(&x, world, &adele, 0).await?;
    me_via(&x, world, &adele, 1).await?;
    let epochs_before = epoch_keys(&x)?;
    // The shared policy file changes; instance 0 picks it up at its own poll (1 s, plus one
    // poll for the content to settle) and bumps the tenant's epoch.
    world.set_tenant_policy("contoso", TenantRule { enabled: false, tools: None }).await?;
    for _ in 0..1000 {
        if epoch_keys(&x)? > epochs_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(epoch_keys(&x)? > epochs_before, "no tenant epoch was bumped in Redis");
    // Instance 1 polls its policy file hourly, so only the epoch can tell it; in process the
    // premise is checked directly.
    if let Some(state) = &x.instances[1].state {
        ensure!(
            state.policy.current().is_enabled(&tenant(&adele)),
            "instance 1 already knew (the scenario would prove nothing)"
        );
    }
    match me_via(&x, world, &adele, 1).await {
        Ok(_) => bail!("instance 1 still served Contoso after it was disabled through instance 0"),
        Err(e) => ensure!(
            e.to_string().contains("not enabled") || e.to_string().contains("HTTP 403"),
            "refused, but not as a disabled tenant: {e}"
        ),
    }
    Ok(())
}

fn tenant(s: &Session) -> connector::domain::TenantId {
    connector::domain::TenantId::from(s.tenant_id)
}

/// Sum of all epoch values in Redis.
fn epoch_keys(x: &ScaleOut) -> Result<u64> {
    Ok(x.redis
        .dump()?
        .into_iter()
        .filter(|(k, _)| k.starts_with("m365:epoch:"))
        .filter_map(|(_, v)| String::from_utf8(v).ok()?.parse::<u64>().ok())
        .sum())
}

/// X03: with a per-user burst of 4 (and a refill of one per 10 s), 16 requests alternating
/// between two instances are admitted at most 4 times in total.
pub async fn x03_rate_limit_across_instances(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, Knobs { per_minute: 6, burst: 4 }).await?;
    let adele = world.session(Persona::Adele).await?;
    let mut admitted = 0;
    let mut limited = 0;
    for i in 0..16 {
        let out = x.on(world, &adele, i).call_tool_http("get_me", json!({})).await?;
        match out.status {
            429 => limited += 1,
            200 => admitted += 1,
            other => bail!("HTTP {other} from instance {}: {}", i % 2, out.text),
        }
    }
    ensure!(admitted <= 4, "{admitted} requests admitted across two instances; budget is 4");
    ensure!(admitted >= 1 && limited >= 12, "admitted {admitted}, limited {limited}");
    // Another user has a budget of their own.
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &diego, 1).await?;
    Ok(())
}

/// X04: Redis killed mid-run: every call still succeeds (L1 and direct exchanges, local rate
/// limit); restarted: an entry written by one instance serves the other again.
pub async fn x04_redis_outage(world: &World) -> Result<()> {
    let mut x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &adele, 0).await?;
    x.redis.stop();
    let mut failed = Vec::new();
    for i in 0..20 {
        let s = if i % 4 < 2 { &adele } else { &diego };
        if let Err(e) = me_via(&x, world, s, i).await {
            failed.push(e.to_string());
        }
    }
    ensure!(failed.is_empty(), "{} calls failed while Redis was down: {failed:?}", failed.len());
    let ready = readyz(&x, world, 0).await?;
    ensure!(
        ready.0 == 200 && ready.1.contains("degraded"),
        "/readyz while Redis is down: {ready:?}"
    );
    x.redis.restart()?;
    tokio::time::sleep(Duration::from_millis(400)).await; // the breakers' cool-down
    let megan = world.session(Persona::Megan).await?;
    me_via(&x, world, &megan, 0).await?;
    me_via(&x, world, &megan, 1).await?;
    let exchanges = obo_exchanges(world, megan.tenant_id, megan.object_id);
    ensure!(exchanges == 1, "after the restart {exchanges} exchanges for one sign-in: L2 unused");
    ensure!(!x.redis.token_entries()?.is_empty(), "nothing written to Redis after the restart");
    let ready = readyz(&x, world, 0).await?;
    ensure!(ready == (200, "ready".to_owned()), "/readyz once Redis is back: {ready:?}");
    Ok(())
}

async fn readyz(x: &ScaleOut, world: &World, i: usize) -> Result<(u16, String)> {
    let url = x.instances[i].mcp_url.replace("/mcp", "/readyz");
    let r = world.http().get(url).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// X05: after traffic from two tenants, no Redis value holds a token (or any fragment of a
/// token or secret the world has seen), sealed entries do not open under another key, and no
/// key names a tenant or user.
pub async fn x05_nothing_readable_in_redis(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    for (i, s) in [&adele, &lee].into_iter().enumerate() {
        me_via(&x, world, s, i).await?;
        me_via(&x, world, s, i + 1).await?;
    }
    let dump = x.redis.dump()?;
    let entries = x.redis.token_entries()?;
    ensure!(entries.len() >= 2, "expected ≥ 2 sealed entries in Redis, found {}", entries.len());
    let mut names_to_hide = vec![adele.upn.clone(), lee.upn.clone()];
    for s in [&adele, &lee] {
        for id in [s.tenant_id, s.object_id] {
            names_to_hide.push(id.to_string());
            names_to_hide.push(id.simple().to_string());
        }
    }
    let secrets = world.secrets();
    for (key, value) in &dump {
        for n in &names_to_hide {
            ensure!(!key.to_lowercase().contains(&n.to_lowercase()), "Redis key {key} names {n}");
        }
        let text = String::from_utf8_lossy(value);
        ensure!(!text.contains("eyJ"), "a JWT in plaintext under {key}");
        for s in secrets.iter().filter(|s| s.len() >= 16) {
            ensure!(
                !value.windows(16).any(|w| s.as_bytes().windows(16).any(|t| t == w)),
                "part of a token or secret in plaintext under {key}"
            );
        }
    }
    // The right key opens Adele's entry; a wrong key opens nothing.
    let right = x.cache_keys()?;
    let wrong = connector::obo::CacheKeys::ephemeral();
    let key = union_key(&adele);
    let opened = entries.iter().filter(|(_, v)| right.open(&key, v).is_ok()).count();
    ensure!(opened == 1, "Adele's entry opened {opened} times with the right key");
    ensure!(
        entries.iter().all(|(_, v)| wrong.open(&key, v).is_err()),
        "an entry opened under a wrong key"
    );
    Ok(())
}

/// The cache key of `s`'s union token (one token per sign-in serves every tool).
fn union_key(s: &Session) -> connector::obo::TokenCacheKey {
    let caller = connector::domain::Caller {
        tenant_id: connector::domain::TenantId::from(s.tenant_id),
        object_id: connector::domain::ObjectId::from(s.object_id),
        client_id: Uuid::nil(),
        scopes: connector::domain::ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        assertion: connector::domain::UserAssertion::new(s.token()),
    };
    connector::obo::TokenCacheKey::for_caller(
        &caller,
        connector::tools::permissions::union_scopes(),
    )
}

/// X06: Contoso's Adele and Wingtip's Adele share an object id (the twin tenant,
/// [`fixtures::with_twin_tenant`]). Through both instances each is served as herself, with
/// an exchange and an L2 entry of her own, and a budget of her own: Contoso's Adele spends
/// her whole shared per-user budget, and Wingtip's Adele is still admitted. Any Redis key
/// (token entry, lock, rate state) derived without the tenant mixes the two up and fails here.
pub async fn x06_tenants_never_share_entries(world: &World) -> Result<()> {
    const BURST: u32 = 4;
    let x = ScaleOut::start(world, Knobs { per_minute: 6, burst: BURST }).await?;
    let contoso = world.session(Persona::Adele).await?;
    let wingtip = world.sign_in(fixtures::TWIN_UPN).await?;
    ensure!(
        contoso.object_id == wingtip.object_id && contoso.tenant_id != wingtip.tenant_id,
        "the twin does not share Adele's object id (the scenario would prove nothing)"
    );
    let served_as_herself = |s: &Session, i: usize, (tid, oid): (String, String)| {
        ensure!(
            tid == s.tenant_id.to_string() && oid == s.object_id.to_string(),
            "{} was served as {tid}/{oid} by instance {i}",
            s.upn
        );
        Ok(())
    };
    // Contoso's Adele: her whole budget, alternating between the instances, then refused.
    for i in 0..BURST as usize {
        served_as_herself(&contoso, i % 2, me_via(&x, world, &contoso, i).await?)?;
    }
    let over = x.on(world, &contoso, 0).call_tool_http("get_me", json!({})).await?;
    ensure!(over.status == 429, "Contoso's Adele past her budget: HTTP {}", over.status);
    // Wingtip's Adele, same object id: a budget, an exchange and an entry of her own.
    for i in 0..2 {
        served_as_herself(
            &wingtip,
            i,
            me_via(&x, world, &wingtip, i).await.with_context(|| {
                format!("{} on instance {i}, after Contoso's Adele spent her budget", wingtip.upn)
            })?,
        )?;
    }
    for s in [&contoso, &wingtip] {
        let exchanges = obo_exchanges(world, s.tenant_id, s.object_id);
        ensure!(exchanges == 1, "{}: {exchanges} exchanges", s.upn);
    }
    let entries = x.redis.token_entries()?.len();
    ensure!(entries == 2, "{entries} L2 entries for the two Adeles");
    Ok(())
}

fn twin_world() -> crate::WorldBuilder {
    World::builder().with_twin_tenant()
}

/// X07: Adele's sealed entry copied over Diego's in Redis; instance 1 (whose L1 has never
/// seen Diego) must refuse it (AEAD bound to the cache key) and serve Diego as Diego.
pub async fn x07_copied_blob_refused(world: &World) -> Result<()> {
    let x = ScaleOut::start(world, DEFAULT_KNOBS).await?;
    let adele = world.session(Persona::Adele).await?;
    let diego = world.session(Persona::Diego).await?;
    me_via(&x, world, &adele, 0).await?;
    let adele_entry = x.redis.token_entries()?;
    ensure!(adele_entry.len() == 1, "expected Adele's entry alone, found {}", adele_entry.len());
    me_via(&x, world, &diego, 0).await?;
    let diego_name = x
        .redis
        .token_entries()?
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| *k != adele_entry[0].0)
        .ok_or_else(|| anyhow!("Diego's entry is not in Redis"))?;
    let mut c = x.redis.connection()?;
    redis::cmd("SET").arg(&diego_name).arg(&adele_entry[0].1).arg("KEEPTTL").query::<()>(&mut c)?;
    let (_, oid) = me_via(&x, world, &diego, 1).await?;
    ensure!(oid == diego.object_id.to_string(), "Diego was served with Adele's token ({oid})");
    let exchanges = obo_exchanges(world, diego.tenant_id, diego.object_id);
    ensure!(exchanges == 2, "the copied blob was not refused ({exchanges} exchanges for Diego)");
    Ok(())
}
