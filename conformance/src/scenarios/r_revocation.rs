//! R — revocation. R01–R05 run twice: OBO max reuse 0 (the very next call fails), and the
//! default with the clock moved just past the reuse age (fails then, never later).

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use fake_entra::GrantResource;
use serde_json::{Value, json};

use super::{catalogue, ensure_status, me_of, scenario, structured_ok, uri_where};
use crate::{Persona, Session, World, world::TenantRule};

const SP: &str = "sharepoint_search";
const FOLDERS: &str = "sharepoint_folder_search";
const MAIL: &str = "outlook_email_search";
const CAL: &str = "outlook_calendar_search";
const CHAT: &str = "chat_message_search";
const READ: &str = "read_resource";

fn reuse_zero() -> crate::WorldBuilder {
    World::builder().obo_max_reuse_secs(0)
}

catalogue!($ r_revocation_tests {
    r01_revoke_sites_read_all_after_default_reuse_age => scenario!(
        "R01/default",
        "revoking Sites.Read.All blocks SharePoint after the reuse age",
        clock = true,
        setup = World::builder,
        r01_default
    ),
    r01_revoke_sites_read_all_with_max_reuse_zero => scenario!(
        "R01/reuse-0",
        "revoking Sites.Read.All blocks SharePoint",
        clock = false,
        setup = reuse_zero,
        r01_zero
    ),
    r02_revoke_mail_read_after_default_reuse_age => scenario!(
        "R02/default",
        "revoking Mail.Read blocks mail after the reuse age",
        clock = true,
        setup = World::builder,
        r02_default
    ),
    r02_revoke_mail_read_with_max_reuse_zero => scenario!(
        "R02/reuse-0",
        "revoking Mail.Read blocks mail",
        clock = false,
        setup = reuse_zero,
        r02_zero
    ),
    r03_revoke_chat_read_after_default_reuse_age => scenario!(
        "R03/default",
        "revoking Chat.Read blocks chat after the reuse age",
        clock = true,
        setup = World::builder,
        r03_default
    ),
    r03_revoke_chat_read_with_max_reuse_zero => scenario!(
        "R03/reuse-0",
        "revoking Chat.Read blocks chat",
        clock = false,
        setup = reuse_zero,
        r03_zero
    ),
    r04_revoke_files_read_after_default_reuse_age => scenario!(
        "R04/default",
        "revoking Files.Read blocks files after the reuse age",
        clock = true,
        setup = World::builder,
        r04_default
    ),
    r04_revoke_files_read_with_max_reuse_zero => scenario!(
        "R04/reuse-0",
        "revoking Files.Read blocks OneDrive files",
        clock = false,
        setup = reuse_zero,
        r04_zero
    ),
    r05_revoke_everything_after_default_reuse_age => scenario!(
        "R05/default",
        "revoking everything blocks everything after the reuse age",
        clock = true,
        setup = World::builder,
        r05_default
    ),
    r05_revoke_everything_with_max_reuse_zero => scenario!(
        "R05/reuse-0",
        "revoking everything blocks everything",
        clock = false,
        setup = reuse_zero,
        r05_zero
    ),
    r06_identity_events_end_the_session => scenario!(
        "R06",
        "sessions revoked or user disabled: 401 asking for a fresh sign-in",
        r06_identity_events
    ),
    r07_tool_switched_off_for_a_tenant_cannot_be_called => scenario!(
        "R07",
        "a tool switched off for a tenant cannot be called",
        r07_tool_switched_off_for_a_tenant
    ),
    r08_sites_selected_only_is_explained => scenario!(
        "R08",
        "Sites.Selected only: SharePoint explains it needs Sites.Read.All",
        r08_sites_selected_only
    ),
});

/// Revokes Graph `scopes` from the connector in Contoso. With the default reuse age, moves
/// the clock to the boundary with journal evidence: five seconds before the age the probe
/// call is still served by the Graph token already in force (no OBO exchange, Graph sees that
/// token's `uti`); one second past it, the next call makes a fresh exchange (which Entra now
/// refuses) and the old token is never used again.
async fn revoke(
    world: &World,
    s: &Session,
    scopes: &[&str],
    age: bool,
    probe: (&str, Value),
) -> Result<()> {
    world
        .entra
        .revoke_consent("contoso", world.entra.connector_id(), GrantResource::Graph, scopes)
        .map_err(|e| anyhow!("revoke {scopes:?}: {e:?}"))?;
    if age {
        to_the_boundary(world, s, probe).await?;
    }
    Ok(())
}

/// OBO exchanges (issued or refused) fake-entra journalled for a user: (clock time, uti).
fn exchanges(world: &World, s: &Session) -> Vec<(chrono::DateTime<chrono::Utc>, Option<String>)> {
    super::obo_journal(world, s).into_iter().map(|e| (e.time, e.uti)).collect()
}

async fn to_the_boundary(world: &World, s: &Session, (tool, args): (&str, Value)) -> Result<()> {
    let before = exchanges(world, s);
    let (issued, old_uti) = before
        .iter()
        .rev()
        .find_map(|(t, u)| u.clone().map(|u| (*t, u)))
        .ok_or_else(|| anyhow!("no OBO token was issued before the revocation"))?;
    let age = chrono::Duration::seconds(
        i64::try_from(crate::world::DEFAULT_OBO_MAX_REUSE_SECS).unwrap_or(i64::MAX),
    );
    let step = |target: chrono::DateTime<chrono::Utc>| {
        (target - world.clock.now()).to_std().unwrap_or(Duration::ZERO)
    };
    world.advance(step(issued + age - chrono::Duration::seconds(5)))?;
    let out = s.call_ok(tool, args.clone()).await?;
    ensure!(
        !out.is_error,
        "{tool} failed 5 s before the reuse age: the cached token was not used: {}",
        out.text
    );
    ensure!(
        exchanges(world, s).len() == before.len(),
        "{tool} 5 s before the reuse age made an OBO exchange (the age is {age})"
    );
    let last = world.graph.requests_for_user(s.tenant_id, s.object_id);
    let last = last.last().and_then(|e| e.sign_in_activity_id.clone()).unwrap_or_default();
    ensure!(last == old_uti, "5 s before the age Graph saw token {last}, not {old_uti}");
    let boundary = issued + age;
    world.advance(step(boundary + chrono::Duration::seconds(1)))?;
    let graph_before = world.graph.requests_for_user(s.tenant_id, s.object_id).len();
    let out = s.call_ok(tool, args).await?;
    let fresh: Vec<_> = exchanges(world, s)
        .into_iter()
        .skip(before.len())
        .filter(|(t, _)| *t >= boundary)
        .collect();
    ensure!(
        !fresh.is_empty(),
        "{tool} past the reuse age made no fresh OBO exchange (answered: {})",
        out.text.chars().take(200).collect::<String>()
    );
    let reused = world
        .graph
        .requests_for_user(s.tenant_id, s.object_id)
        .into_iter()
        .skip(graph_before)
        .any(|e| e.sign_in_activity_id.as_deref() == Some(old_uti.as_str()));
    ensure!(!reused, "Graph saw the old token {old_uti} after the reuse age");
    Ok(())
}

/// The call fails as a tool error whose text names `permission`.
async fn fails_naming(s: &Session, tool: &str, args: Value, permission: &str) -> Result<()> {
    let out = s.call_ok(tool, args).await?;
    ensure!(out.is_error, "{tool} still works after {permission} was revoked: {}", out.text);
    ensure!(
        out.text.contains(permission),
        "{tool}: the error does not name {permission}: {}",
        out.text
    );
    Ok(())
}

async fn works(s: &Session, tool: &str, args: Value) -> Result<Value> {
    structured_ok(s, tool, args).await
}

async fn r01(world: &World, age: bool) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    works(&adele, SP, json!({"query": "budget"})).await?;
    works(&adele, FOLDERS, json!({"name": "Reports"})).await?;
    revoke(world, &adele, &["Sites.Read.All"], age, (SP, json!({"query": "budget"}))).await?;
    fails_naming(&adele, SP, json!({"query": "budget"}), "Sites.Read.All").await?;
    fails_naming(&adele, FOLDERS, json!({"name": "Reports"}), "Sites.Read.All").await?;
    works(&adele, MAIL, json!({"query": "budget"})).await?;
    let names = adele.tool_names().await?;
    ensure!(
        !names.iter().any(|n| n.starts_with("sharepoint")),
        "SharePoint tools are still listed after Sites.Read.All was revoked: {names:?}"
    );
    ensure!(names.iter().any(|n| n == MAIL), "mail search vanished from the list: {names:?}");
    Ok(())
}
async fn r01_zero(w: &World) -> Result<()> {
    r01(w, false).await
}
async fn r01_default(w: &World) -> Result<()> {
    r01(w, true).await
}

async fn r02(world: &World, age: bool) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let found = works(&adele, MAIL, json!({"query": "budget"})).await?;
    let uri = uri_where(&found, "messages", "subject", "budget")?;
    works(&adele, READ, json!({"uri": uri})).await?;
    revoke(world, &adele, &["Mail.Read"], age, (MAIL, json!({"query": "budget"}))).await?;
    fails_naming(&adele, MAIL, json!({"query": "budget"}), "Mail.Read").await?;
    fails_naming(&adele, READ, json!({"uri": uri}), "Mail.Read").await?;
    works(&adele, CHAT, json!({"query": "budget"})).await?;
    Ok(())
}
async fn r02_zero(w: &World) -> Result<()> {
    r02(w, false).await
}
async fn r02_default(w: &World) -> Result<()> {
    r02(w, true).await
}

async fn r03(world: &World, age: bool) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    works(&adele, CHAT, json!({"query": "budget"})).await?;
    revoke(world, &adele, &["Chat.Read"], age, (CHAT, json!({"query": "budget"}))).await?;
    fails_naming(&adele, CHAT, json!({"query": "budget"}), "Chat.Read").await?;
    works(&adele, MAIL, json!({"query": "budget"})).await?;
    Ok(())
}
async fn r03_zero(w: &World) -> Result<()> {
    r03(w, false).await
}
async fn r03_default(w: &World) -> Result<()> {
    r03(w, true).await
}

async fn r04(world: &World, age: bool) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let hits = works(&adele, SP, json!({"query": "private notes"})).await?;
    let uri = uri_where(&hits, "items", "name", "private notes")?;
    works(&adele, READ, json!({"uri": uri})).await?;
    revoke(world, &adele, &["Files.Read", "Files.Read.All"], age, (READ, json!({"uri": uri})))
        .await?;
    fails_naming(&adele, READ, json!({"uri": uri}), "Files.Read").await?;
    works(&adele, MAIL, json!({"query": "budget"})).await?;
    Ok(())
}
async fn r04_zero(w: &World) -> Result<()> {
    r04(w, false).await
}
async fn r04_default(w: &World) -> Result<()> {
    r04(w, true).await
}

async fn r05(world: &World, age: bool) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let found = works(&adele, MAIL, json!({"query": "budget"})).await?;
    let uri = uri_where(&found, "messages", "subject", "budget")?;
    world.entra.revoke_all_consent("contoso").map_err(|e| anyhow!("{e:?}"))?;
    if age {
        to_the_boundary(world, &adele, (MAIL, json!({"query": "budget"}))).await?;
    }
    // The signed-in session keeps its (still valid) token; Entra no longer lets the connector
    // exchange it for anything.
    for (tool, args) in [
        (MAIL, json!({"query": "budget"})),
        (SP, json!({"query": "budget"})),
        (FOLDERS, json!({"name": "Reports"})),
        (CHAT, json!({"query": "budget"})),
        (CAL, json!({"start": "2026-05-01", "end": "2026-06-01"})),
        (READ, json!({"uri": uri})),
        ("get_me", json!({})),
    ] {
        let out = adele.call_ok(tool, args).await?;
        ensure!(out.is_error, "{tool} works after every permission was revoked: {}", out.text);
        let text = out.text.to_lowercase();
        ensure!(
            text.contains("consent") || text.contains("permission"),
            "{tool}: the error does not say a permission is missing: {}",
            out.text
        );
    }
    Ok(())
}
async fn r05_zero(w: &World) -> Result<()> {
    r05(w, false).await
}
async fn r05_default(w: &World) -> Result<()> {
    r05(w, true).await
}

pub async fn r06_identity_events(world: &World) -> Result<()> {
    for (p, disable) in [(Persona::Adele, false), (Persona::Megan, true)] {
        let upn = p.upn();
        let s = world.session(p).await?;
        works(&s, MAIL, json!({"query": "budget"})).await?;
        // Tokens are stamped in whole seconds: let the event fall after the cached token's
        // second, as it would in real time.
        if world.controls_clock() {
            world.advance(Duration::from_secs(2))?;
        } else {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        if disable {
            world.entra.disable_user("contoso", upn).map_err(|e| anyhow!("{e:?}"))?;
        } else {
            world.entra.revoke_sessions("contoso", upn).map_err(|e| anyhow!("{e:?}"))?;
        }
        let before = world.graph.requests_for_user(s.tenant_id, s.object_id).len();
        let r = s.call_tool_http(MAIL, json!({"query": "budget"})).await?;
        ensure_status(&r, 401, &format!("{upn} after the identity event"))?;
        // Either a plain "sign in again" or Graph's CAE claims, which only a fresh
        // interactive sign-in satisfies.
        let error = r.challenge("error").unwrap_or_default();
        ensure!(
            error == "invalid_token"
                || (error == "insufficient_claims" && r.challenge("claims").is_some()),
            "{upn}: the 401 does not ask for a fresh sign-in: {:?}",
            r.header("www-authenticate")
        );
        let claims = r.challenge("claims").map(|c| crate::session::decode_claims(&c));
        ensure!(
            r.challenge("resource_metadata").is_some(),
            "{upn}: the 401 does not say where to sign in: {:?}",
            r.header("www-authenticate")
        );
        // Graph challenged the cached token (CAE) and nothing was served after it.
        let after = world.graph.requests_for_user(s.tenant_id, s.object_id);
        ensure!(
            after[before..].iter().any(|e| e.response_status_code == 401),
            "{upn}: fake-graph journalled no claims challenge"
        );
        ensure!(
            after[before..].iter().all(|e| e.response_status_code != 200),
            "{upn}: Graph served data after the identity event"
        );
        // The session cannot be refreshed silently: a fresh sign-in is needed.
        ensure!(s.refresh().await.is_err(), "{upn}: the refresh token still works");
        if disable {
            ensure!(world.try_sign_in(upn, &[]).await.is_err(), "a disabled user signed in");
        } else {
            let extra: Vec<(&str, &str)> =
                claims.as_deref().map(|c| vec![("claims", c)]).unwrap_or_default();
            s.sign_in_again(&extra).await.map_err(|e| anyhow!("fresh sign-in of {upn}: {e}"))?;
            works(&s, MAIL, json!({"query": "budget"})).await?;
        }
    }
    Ok(())
}

pub async fn r07_tool_switched_off_for_a_tenant(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    works(&adele, MAIL, json!({"query": "budget"})).await?;
    world
        .set_tenant_policy(
            "contoso",
            TenantRule { enabled: true, tools: Some(vec![READ.into(), "get_me".into()]) },
        )
        .await?;
    let out = adele.call_ok(MAIL, json!({"query": "budget"})).await?;
    ensure!(out.is_error, "{MAIL} still works for contoso after it was switched off");
    ensure!(out.text.contains("not enabled"), "the refusal is not clear: {}", out.text);
    let names = adele.tool_names().await?;
    ensure!(!names.iter().any(|n| n == MAIL), "tools/list still offers {MAIL}: {names:?}");
    ensure!(names.iter().any(|n| n == "get_me"), "tools/list lost get_me: {names:?}");
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    works(&lee, MAIL, json!({"query": "budget"})).await?;
    ensure!(lee.tool_names().await?.iter().any(|n| n == MAIL), "fabrikam lost {MAIL}");
    Ok(())
}

pub async fn r08_sites_selected_only(world: &World) -> Result<()> {
    let id = world.entra.connector_id();
    world
        .entra
        .revoke_consent("contoso", id, GrantResource::Graph, &["Sites.Read.All"])
        .map_err(|e| anyhow!("{e:?}"))?;
    world
        .entra
        .grant_consent("contoso", id, GrantResource::Graph, &["Sites.Selected"])
        .map_err(|e| anyhow!("{e:?}"))?;
    let adele = world.session(Persona::Adele).await?;
    let out = adele.call_ok(SP, json!({"query": "budget"})).await?;
    ensure!(out.is_error, "SharePoint search worked with Sites.Selected only: {}", out.text);
    ensure!(
        out.text.contains("Sites.Read.All") && out.text.contains("Sites.Selected"),
        "the error does not explain that Sites.Selected cannot serve search: {}",
        out.text
    );
    Ok(())
}
