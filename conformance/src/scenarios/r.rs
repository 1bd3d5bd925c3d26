//! R — revocation. R01–R05 run twice: OBO max reuse 0, and the default with the clock moved
//! past the reuse age.

use anyhow::{Result, ensure};
use serde_json::json;

use super::{me_of, scenario};
use crate::{Persona, World, world::TenantRule};

pub fn scenarios() -> Vec<super::Scenario> {
    let mut v = vec![scenario!(
        "R07",
        "a tool switched off for a tenant cannot be called",
        r07_tool_switched_off_for_a_tenant
    )];
    #[cfg(feature = "pending-tools")]
    v.extend(pending::scenarios());
    v.sort_by_key(|s| s.id);
    v
}

pub async fn r07_tool_switched_off_for_a_tenant(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    world
        .set_tenant_policy(
            "contoso",
            TenantRule { enabled: true, tools: Some(vec!["read_resource".into()]) },
        )
        .await?;
    let out = adele.call_ok("get_me", json!({})).await?;
    ensure!(out.is_error, "get_me still works for contoso after it was switched off");
    ensure!(out.text.contains("not enabled"), "the refusal is not clear: {}", out.text);
    #[cfg(feature = "pending-tools")]
    {
        let names = adele.tool_names().await?;
        ensure!(!names.iter().any(|n| n == "get_me"), "tools/list still offers get_me: {names:?}");
    }
    me_of(&lee.call_ok("get_me", json!({})).await?)?;
    ensure!(lee.tool_names().await?.iter().any(|n| n == "get_me"), "fabrikam lost get_me");
    Ok(())
}

#[cfg(feature = "pending-tools")]
mod pending {
    use std::time::Duration;

    use anyhow::anyhow;
    use fake_entra::GrantResource;

    use super::*;
    use crate::scenarios::Scenario;

    fn reuse_zero() -> crate::WorldBuilder {
        World::builder().obo_max_reuse_secs(0)
    }

    pub fn scenarios() -> Vec<Scenario> {
        vec![
            scenario!(
                "R01/reuse-0",
                "revoking Sites.Read.All blocks SharePoint",
                clock = false,
                setup = reuse_zero,
                r01_zero
            ),
            scenario!(
                "R01/default",
                "revoking Sites.Read.All blocks SharePoint after the reuse age",
                clock = true,
                setup = World::builder,
                r01_default
            ),
            scenario!(
                "R02/reuse-0",
                "revoking Mail.Read blocks mail",
                clock = false,
                setup = reuse_zero,
                r02_zero
            ),
            scenario!(
                "R02/default",
                "revoking Mail.Read blocks mail after the reuse age",
                clock = true,
                setup = World::builder,
                r02_default
            ),
            scenario!(
                "R03/reuse-0",
                "revoking Chat.Read blocks chat",
                clock = false,
                setup = reuse_zero,
                r03_zero
            ),
            scenario!(
                "R03/default",
                "revoking Chat.Read blocks chat after the reuse age",
                clock = true,
                setup = World::builder,
                r03_default
            ),
            scenario!(
                "R04/reuse-0",
                "revoking Files.Read blocks OneDrive files",
                clock = false,
                setup = reuse_zero,
                r04_zero
            ),
            scenario!(
                "R04/default",
                "revoking Files.Read blocks files after the reuse age",
                clock = true,
                setup = World::builder,
                r04_default
            ),
            scenario!(
                "R05/reuse-0",
                "revoking everything blocks everything",
                clock = false,
                setup = reuse_zero,
                r05_zero
            ),
            scenario!(
                "R05/default",
                "revoking everything blocks everything after the reuse age",
                clock = true,
                setup = World::builder,
                r05_default
            ),
            scenario!(
                "R06",
                "sessions revoked or user disabled: 401 asking for a fresh sign-in",
                r06_identity_events
            ),
            scenario!(
                "R08",
                "Sites.Selected only: SharePoint explains it needs Sites.Read.All",
                r08_sites_selected_only
            ),
        ]
    }

    /// Revokes `scopes`, then checks that `tool` fails naming `name` — at once (reuse 0) or
    /// once the clock passes the reuse age (default), never later.
    async fn revoke(
        world: &World,
        scopes: &[&str],
        tool: &str,
        args: serde_json::Value,
        name: &str,
        after_age: bool,
    ) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        ensure!(
            !adele.call_ok(tool, args.clone()).await?.is_error,
            "{tool} fails before revocation"
        );
        world
            .entra
            .revoke_consent("contoso", world.entra.connector_id(), GrantResource::Graph, scopes)
            .map_err(|e| anyhow!("{e:?}"))?;
        if after_age {
            world.advance(Duration::from_secs(crate::world::DEFAULT_OBO_MAX_REUSE_SECS + 1));
        }
        let out = adele.call_ok(tool, args).await?;
        ensure!(out.is_error, "{tool} still works after revoking {scopes:?}");
        ensure!(out.text.contains(name), "the error does not name {name}: {}", out.text);
        Ok(())
    }

    const SP: &str = "sharepoint_search";
    const MAIL: &str = "outlook_email_search";
    const CHAT: &str = "chat_message_search";

    async fn r01(world: &World, age: bool) -> Result<()> {
        revoke(world, &["Sites.Read.All"], SP, json!({"query": "budget"}), "Sites.Read.All", age)
            .await?;
        let adele = world.session(Persona::Adele).await?;
        let out = adele.call_ok("sharepoint_folder_search", json!({"query": "Finance"})).await?;
        ensure!(out.is_error, "folder search still works");
        ensure!(!adele.call_ok(MAIL, json!({"query": "budget"})).await?.is_error, "mail broke too");
        let names = adele.tool_names().await?;
        ensure!(
            !names.iter().any(|n| n.starts_with("sharepoint")),
            "SharePoint tools still listed: {names:?}"
        );
        Ok(())
    }
    async fn r01_zero(w: &World) -> Result<()> {
        r01(w, false).await
    }
    async fn r01_default(w: &World) -> Result<()> {
        r01(w, true).await
    }
    async fn r02_zero(w: &World) -> Result<()> {
        revoke(w, &["Mail.Read"], MAIL, json!({"query": "budget"}), "Mail.Read", false).await
    }
    async fn r02_default(w: &World) -> Result<()> {
        revoke(w, &["Mail.Read"], MAIL, json!({"query": "budget"}), "Mail.Read", true).await
    }
    async fn r03_zero(w: &World) -> Result<()> {
        revoke(w, &["Chat.Read"], CHAT, json!({"query": "lunch"}), "Chat.Read", false).await
    }
    async fn r03_default(w: &World) -> Result<()> {
        revoke(w, &["Chat.Read"], CHAT, json!({"query": "lunch"}), "Chat.Read", true).await
    }
    async fn r04(world: &World, age: bool) -> Result<()> {
        let adele = world.session(Persona::Adele).await?;
        let hits = adele.call_ok(SP, json!({"query": "report"})).await?;
        let uri = hits
            .structured
            .as_ref()
            .and_then(|s| s["results"][0]["uri"].as_str())
            .unwrap_or("m365://me/drive/root")
            .to_owned();
        revoke(
            world,
            &["Files.Read", "Files.Read.All"],
            "read_resource",
            json!({"uri": uri}),
            "Files.Read",
            age,
        )
        .await
    }
    async fn r04_zero(w: &World) -> Result<()> {
        r04(w, false).await
    }
    async fn r04_default(w: &World) -> Result<()> {
        r04(w, true).await
    }
    async fn r05(world: &World, age: bool) -> Result<()> {
        world.entra.revoke_all_consent("contoso").map_err(|e| anyhow!("{e:?}"))?;
        if age {
            world.advance(Duration::from_secs(crate::world::DEFAULT_OBO_MAX_REUSE_SECS + 1));
        }
        let adele = world.session_with_token(
            Persona::Adele.upn(),
            world
                .entra
                .user_token(world.ids(Persona::Adele.upn())?.0, world.ids(Persona::Adele.upn())?.1),
        );
        for (tool, args) in [
            (MAIL, json!({"query": "x"})),
            (SP, json!({"query": "x"})),
            (CHAT, json!({"query": "x"})),
        ] {
            let out = adele.call_ok(tool, args).await?;
            ensure!(out.is_error, "{tool} works after revoking every permission");
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
        for (upn, disable) in [(Persona::Adele.upn(), false), (Persona::Megan.upn(), true)] {
            let s = world.sign_in(upn).await?;
            ensure!(!s.call_ok(MAIL, json!({"query": "budget"})).await?.is_error);
            if disable {
                world.entra.disable_user("contoso", upn).map_err(|e| anyhow!("{e:?}"))?;
            } else {
                world.entra.revoke_sessions("contoso", upn).map_err(|e| anyhow!("{e:?}"))?;
            }
            let r = s.call_tool_http(MAIL, json!({"query": "budget"})).await?;
            ensure!(
                r.status == 401,
                "{upn}: expected 401 after the identity event, got {}",
                r.status
            );
            ensure!(
                r.challenge("error").is_some(),
                "{upn}: the 401 does not ask for a fresh sign-in"
            );
        }
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
        ensure!(out.is_error && out.text.contains("Sites.Read.All"), "{}", out.text);
        Ok(())
    }
}
