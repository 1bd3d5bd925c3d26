//! T — tokens over time.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use base64::Engine;
use fixtures::TokenLifetimePolicy;
use serde_json::json;

use super::{PAST_LEEWAY, catalogue, ensure_status, me_of, scenario};
use crate::{Persona, World};

catalogue!($ t_tokens_tests {
    t01_many_calls_one_obo_exchange => scenario!("T01", "many calls, one OBO exchange", t01_many_calls_one_exchange),
    t02_obo_token_near_expiry_is_renewed_before_use => scenario!(
        "T02",
        "OBO token near expiry is renewed before use",
        clock = true,
        setup = t02_setup,
        t02_renewal_before_expiry
    ),
    t03_expired_user_token_refresh_and_continue => scenario!(
        "T03",
        "expired user token: 401, refresh, continue",
        clock = true,
        setup = World::builder,
        t03_expired_token_refresh_and_continue
    ),
    t04_refresh_token_idle_past_90_days_needs_fresh_sign_in => scenario!(
        "T04",
        "refresh token idle past 90 days needs a fresh sign-in",
        clock = true,
        setup = World::builder,
        t04_idle_refresh_token_is_refused
    ),
    t05_token_lifetime_policy_is_honoured => scenario!(
        "T05",
        "a token lifetime policy is honoured",
        clock = true,
        setup = t05_setup,
        t05_token_lifetime_policy
    ),
    t06_concurrent_first_calls_make_one_exchange => scenario!(
        "T06",
        "100 concurrent first calls make one exchange",
        t06_concurrent_first_calls
    ),
    t07_token_cache_at_rest_holds_no_plaintext => scenario!(
        "T07",
        "the token cache at rest holds no plaintext token",
        t07_no_plaintext_at_rest
    ),
    t08_cache_entries_are_keyed_by_tenant_and_user => scenario!(
        "T08",
        "cache entries are keyed by tenant and user",
        t08_cache_keyed_by_tenant_and_user
    ),
    t08_same_oid_two_tenants_nothing_crosses => scenario!(
        "T08/same-oid",
        "two tenants, one object id: nothing crosses between them",
        clock = false,
        setup = twin_world,
        t08_same_oid_in_two_tenants
    ),
});

fn claims(token: &str) -> Result<serde_json::Value> {
    let payload = token.split('.').nth(1).ok_or_else(|| anyhow!("not a JWT"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

pub async fn t03_expired_token_refresh_and_continue(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    let life = u64::try_from(adele.expires_in().max(0))?;
    world.advance(Duration::from_secs(life) + PAST_LEEWAY)?;
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
    world.advance(Duration::from_secs(91 * 24 * 3600))?;
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
    // Registered as moving the clock, so a spawned connector follows it too (libfaketime).
    world.advance(Duration::from_secs(600) + PAST_LEEWAY)?;
    let r = adele.call_tool_http("get_me", json!({})).await?;
    ensure_status(&r, 401, "token past the policy's lifetime")?;
    // The other tenant keeps Entra's default 60–90 minutes.
    let lee = world.session(Persona::Lee).await?;
    let c = claims(&lee.token())?;
    let life = c["exp"].as_i64().unwrap_or_default() - c["iat"].as_i64().unwrap_or_default();
    ensure!((3600..=5400).contains(&life), "fabrikam token lifetime {life} s");
    Ok(())
}

// ─── Scenarios with OBO exchanges ──────────────────────────────────────────────────────

use crate::scenarios::{contains_jwt, obo_exchanges_by_scopes, structured_ok};

const MAIL: &str = "outlook_email_search";

/// Every scope set the user's calls needed was exchanged exactly once.
fn one_exchange_per_scope_set(world: &World, s: &crate::Session, what: &str) -> Result<()> {
    let by = obo_exchanges_by_scopes(world, s.tenant_id, s.object_id);
    ensure!(!by.is_empty(), "{what}: no OBO exchange at all");
    for (scopes, n) in &by {
        ensure!(
            *n == 1,
            "{what}: {n} OBO exchanges for {scopes:?} (expected one, then cache hits)"
        );
    }
    Ok(())
}

pub async fn t01_many_calls_one_exchange(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    for _ in 0..10 {
        structured_ok(&adele, MAIL, json!({"query": "budget"})).await?;
    }
    one_exchange_per_scope_set(world, &adele, "10 mail searches")?;
    let hits = world
        .audit_records()
        .iter()
        .filter(|r| r["event"] == "tool_call" && r["obo"] == json!("cache_hit"))
        .count();
    ensure!(hits >= 9, "the audit log shows {hits} OBO cache hits for 10 calls");
    Ok(())
}

/// The OBO renewal margin of the connector's default configuration (`obo.renew_before_secs`).
const RENEW_BEFORE_SECS: i64 = 300;
/// The Graph token's lifetime in T02 (Contoso's token lifetime policy, CAE off).
const T02_GRAPH_TOKEN_SECS: i64 = 3600;
/// How far T02 moves the clock between calls.
const T02_STEP_SECS: i64 = 240;

/// Only the renewal margin can trigger the re-exchange: the reuse age is a day, the user
/// token (minted) lives six hours, and the Graph token one hour (no long-lived CAE token).
fn t02_setup() -> crate::WorldBuilder {
    World::builder().obo_max_reuse_secs(24 * 3600).without_cae_tokens().token_lifetime(
        "contoso",
        TokenLifetimePolicy {
            access_token_minutes: Some(u32::try_from(T02_GRAPH_TOKEN_SECS / 60).unwrap_or(60)),
            refresh_token_max_inactive_days: 90,
        },
    )
}

/// The OBO exchanges fake-entra issued for a user: (clock time, `uti`).
fn issued_exchanges(
    world: &World,
    s: &crate::Session,
) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    super::obo_journal(world, s)
        .into_iter()
        .filter(|e| e.issued())
        .filter_map(|e| Some((e.time, e.uti?)))
        .collect()
}

pub async fn t02_renewal_before_expiry(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let token = world.mint(&fake_entra::TokenSpec::user(tid, oid).lifetime_secs(6 * 3600));
    let adele = world.session_with_token(Persona::Adele.upn(), token);
    structured_ok(&adele, MAIL, json!({"query": "budget"})).await?;
    let first = issued_exchanges(world, &adele);
    ensure!(first.len() == 1, "expected one OBO exchange for the first call, got {}", first.len());
    let (mut issued_at, mut uti) = first[0].clone();
    let mut renewals = 0;
    // Two hours in 4-minute steps. Each Graph token must be used until the first call at or
    // after `exp − renew_before`, renewed by that call (before `exp`), and never after.
    for _ in 0..30 {
        world.advance(Duration::from_secs(T02_STEP_SECS.unsigned_abs()))?;
        let now = world.clock.now();
        let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
        ensure!(!out.is_error, "a call failed near the OBO boundary: {}", out.text);
        let exchanges = issued_exchanges(world, &adele);
        let age = (now - issued_at).num_seconds();
        let due = age >= T02_GRAPH_TOKEN_SECS - RENEW_BEFORE_SECS;
        let renewed = exchanges.len() > renewals + 1;
        ensure!(
            renewed == due,
            "at {age} s into a {T02_GRAPH_TOKEN_SECS} s Graph token: renewed = {renewed}, \
             expected {due} (renew {RENEW_BEFORE_SECS} s before expiry, not earlier, not later)"
        );
        // The request this call made carried the token in force: the old one until the
        // boundary, the fresh one from it.
        if renewed {
            renewals += 1;
            (issued_at, uti) = exchanges[renewals].clone();
        }
        let last = world
            .graph
            .requests_for_user(tid, oid)
            .last()
            .and_then(|e| e.sign_in_activity_id.clone())
            .unwrap_or_default();
        ensure!(last == uti, "Graph saw token {last} at {age} s; the one in force is {uti}");
    }
    ensure!(renewals >= 2, "two hours of one-hour Graph tokens made {renewals} renewals");
    // Graph never saw an expired token: no 401 in its journal for her.
    let rejected = world
        .graph
        .requests_for_user(tid, oid)
        .iter()
        .filter(|e| e.response_status_code == 401)
        .count();
    ensure!(rejected == 0, "Graph refused {rejected} requests: a stale OBO token was used");
    Ok(())
}

pub async fn t06_concurrent_first_calls(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let calls = (0..100).map(|_| adele.call_ok(MAIL, json!({"query": "budget"})));
    for r in futures::future::join_all(calls).await {
        let out = r?;
        ensure!(!out.is_error, "{}", out.text);
    }
    one_exchange_per_scope_set(world, &adele, "100 concurrent first calls")
}

pub async fn t07_no_plaintext_at_rest(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    for s in [&adele, &lee] {
        structured_ok(s, MAIL, json!({"query": "budget"})).await?;
        structured_ok(s, "chat_message_search", json!({"query": "budget"})).await?;
    }
    let secrets = world.secrets();
    // Nothing the connector writes to disk holds a token.
    // (The config file holds the client secret and cache key by design; no token anywhere.)
    let tokens: Vec<&String> = secrets.iter().filter(|s| s.matches('.').count() == 2).collect();
    for entry in std::fs::read_dir(world.dir())? {
        let path = entry?.path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
        ensure!(!contains_jwt(&text), "{} holds a JWT", path.display());
        for t in &tokens {
            ensure!(!text.contains(t.as_str()), "{} holds a token in plaintext", path.display());
        }
    }
    // The cache itself: sealed blobs only.
    if let Some(blobs) = world.token_cache_blobs() {
        // At least one sealed Graph token per user (one exchange serves all of a user's tools).
        ensure!(blobs.len() >= 2, "expected ≥ 2 cached OBO tokens, found {}", blobs.len());
        for blob in &blobs {
            let text = String::from_utf8_lossy(blob);
            ensure!(!contains_jwt(&text), "a cache entry holds a JWT in plaintext");
            ensure!(!text.contains("eyJ0eX") && !text.contains("eyJhbG"), "a JWT header at rest");
            for s in secrets.iter().filter(|s| s.len() >= 16) {
                ensure!(
                    !blob.windows(16).any(|w| s.as_bytes().windows(16).any(|t| t == w)),
                    "a cache entry holds part of a token or secret in plaintext"
                );
            }
            for marker in ["access_token", "expires_at", "Mail.Read", "Chat.Read"] {
                ensure!(!text.contains(marker), "a cache entry is readable (`{marker}`)");
            }
        }
    }
    Ok(())
}

pub async fn t08_cache_keyed_by_tenant_and_user(world: &World) -> Result<()> {
    // Same display name in two tenants.
    let a = world.session(Persona::Adele).await?;
    let b = world.session(Persona::AdeleFabrikam).await?;
    let mut seen = Vec::new();
    for s in [&a, &b, &a, &b] {
        let me = crate::scenarios::me_of(&s.call_ok("get_me", json!({})).await?)?;
        ensure!(me == (s.tenant_id.to_string(), s.object_id.to_string()), "{} got {me:?}", s.upn);
        let found = structured_ok(s, MAIL, json!({"query": "budget"})).await?;
        seen.push((s, found));
    }
    one_exchange_per_scope_set(world, &a, "contoso adele")?;
    one_exchange_per_scope_set(world, &b, "fabrikam adele")?;
    for (s, found) in seen {
        let (own, other) = if s.tenant_id == a.tenant_id {
            ("Contoso", "Fabrikam")
        } else {
            ("Fabrikam", "Contoso")
        };
        let text = found.to_string();
        ensure!(text.contains(own), "{} does not see their own mail: {text:.300}", s.upn);
        ensure!(!text.contains(&format!("{other} Q3")), "{} sees the other tenant's mail", s.upn);
    }
    for e in world.graph.journal() {
        if e.user_id == Some(a.object_id) {
            ensure!(e.tenant_id == Some(a.tenant_id), "a Graph call crossed tenants");
        }
        if e.user_id == Some(b.object_id) {
            ensure!(e.tenant_id == Some(b.tenant_id), "a Graph call crossed tenants");
        }
    }
    Ok(())
}

fn twin_world() -> crate::WorldBuilder {
    World::builder().with_twin_tenant()
}

/// The Graph requests journalled since `before` all ran as `s` (tenant and user).
fn graph_ran_as(world: &World, s: &crate::Session, before: usize, what: &str) -> Result<usize> {
    let journal = world.graph.journal();
    let slice = journal.get(before..).unwrap_or_default();
    ensure!(!slice.is_empty(), "{what}: no Graph request");
    for e in slice {
        ensure!(
            e.tenant_id == Some(s.tenant_id) && e.user_id == Some(s.object_id),
            "{what}: Graph request {} ran as {:?}/{:?}; the caller is {}/{}",
            e.request_uri,
            e.tenant_id,
            e.user_id,
            s.tenant_id,
            s.object_id
        );
    }
    Ok(journal.len())
}

/// Contoso's Adele and Wingtip's Adele share an object id. Interleaved calls each get their
/// own identity and content, each Graph request runs in the caller's tenant, each tenant makes
/// its own OBO exchange (the token cache is keyed by tenant too), and a paging cursor of one
/// is refused to the other.
pub async fn t08_same_oid_in_two_tenants(world: &World) -> Result<()> {
    let contoso = world.session(Persona::Adele).await?;
    let wingtip = world.sign_in(fixtures::TWIN_UPN).await?;
    ensure!(
        contoso.object_id == wingtip.object_id && contoso.tenant_id != wingtip.tenant_id,
        "the twin does not share Adele's object id"
    );
    let mut journal = world.graph.journal().len();
    for (s, own, other) in [
        (&contoso, "Contoso", "Wingtip"),
        (&wingtip, "Wingtip", "Contoso"),
        (&contoso, "Contoso", "Wingtip"),
        (&wingtip, "Wingtip", "Contoso"),
    ] {
        let me = crate::scenarios::me_of(&s.call_ok("get_me", json!({})).await?)?;
        ensure!(me == (s.tenant_id.to_string(), s.object_id.to_string()), "{} got {me:?}", s.upn);
        journal = graph_ran_as(world, s, journal, &format!("get_me of {}", s.upn))?;
        let found = structured_ok(s, MAIL, json!({"query": "budget"})).await?;
        journal = graph_ran_as(world, s, journal, &format!("mail search of {}", s.upn))?;
        let text = found.to_string();
        ensure!(text.contains(own), "{} does not see their own mail: {text:.300}", s.upn);
        ensure!(!text.contains(&format!("{other} Q3")), "{} sees {other}'s mail", s.upn);
    }
    one_exchange_per_scope_set(world, &contoso, "contoso adele")?;
    one_exchange_per_scope_set(world, &wingtip, "wingtip adele")?;
    // A cursor sealed for one Adele is refused to the other.
    let args = json!({"folder": "inbox", "limit": 1});
    let page = structured_ok(&contoso, MAIL, args.clone()).await?;
    let cursor = page["page"]["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow!("no next_cursor on a one-item page: {page}"))?
        .to_owned();
    let mut next = args;
    next["cursor"] = json!(cursor);
    let r = wingtip.call_tool_http(MAIL, next).await?;
    ensure!(
        r.json()?["error"]["code"] == json!(-32602),
        "Wingtip's Adele used Contoso's Adele's cursor: HTTP {} {}",
        r.status,
        r.text.chars().take(300).collect::<String>()
    );
    Ok(())
}
