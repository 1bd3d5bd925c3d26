//! O — organisation.

use anyhow::{Result, anyhow, ensure};
use serde_json::json;

use super::{catalogue, ensure_status, ensure_untouched, me_of, refused_at_obo, scenario};
use crate::{Persona, World, world::TenantRule};

catalogue!($ o_org_tests {
    o01_tenant_not_enabled_is_refused_clearly => scenario!(
        "O01",
        "tenant not enabled is refused clearly",
        o01_tenant_not_enabled_is_refused
    ),
    o02_no_admin_consent_gets_a_clear_error => scenario!("O02", "no admin consent gets a clear error", o02_no_admin_consent),
    o03_assignment_required_admits_only_the_pilot => scenario!("O03", "assignment required admits only the pilot", o03_assignment_required),
    o04_disabling_the_tenant_stops_live_sessions => scenario!(
        "O04",
        "disabling the tenant stops live sessions",
        o04_disabled_tenant_stops_live_sessions
    ),
});

pub async fn o01_tenant_not_enabled_is_refused(world: &World) -> Result<()> {
    for p in [Persona::Miriam, Persona::Johanna] {
        let s = world.session(p).await?;
        let r = s.call_tool_http("get_me", json!({})).await?;
        ensure_status(&r, 403, "tenant not enabled")?;
        ensure!(r.text.contains("not enabled"), "refusal is not clear: {}", r.text);
        ensure_untouched(world, s.tenant_id, s.object_id)?;
    }
    Ok(())
}

pub async fn o02_no_admin_consent(world: &World) -> Result<()> {
    let upn = Persona::Nancy.upn();
    let err = match world.try_sign_in(upn, &[]).await {
        Ok(_) => return Err(anyhow!("{upn} signed in although Northwind never consented")),
        Err(e) => e.entra().cloned().ok_or_else(|| anyhow!("not an Entra refusal: {e}"))?,
    };
    ensure!(err.has_code(65001) || err.error == "consent_required", "unexpected refusal: {err}");
    ensure!(
        err.description.to_lowercase().contains("consent"),
        "the message does not say what to do: {err}"
    );
    let (tid, oid) = world.ids(upn)?;
    ensure_untouched(world, tid, oid)?;
    // A token Entra issued anyway (consent withdrawn after sign-in): the connector meets the
    // refusal at its OBO exchange and tells the user an administrator must consent.
    let nancy = world.session_with_token(upn, world.mint(&fake_entra::TokenSpec::user(tid, oid)));
    refused_at_obo(world, &nancy, 65001, &["administrator", "consent"]).await
}

pub async fn o03_assignment_required(world: &World) -> Result<()> {
    // Diego signed in before assignment became required: his token is valid, but the
    // connector's OBO exchange is refused and he is told he is not assigned.
    let early = world.session(Persona::Diego).await?;
    world.entra.set_assignment_required("contoso", true).map_err(|e| anyhow!("{e:?}"))?;
    refused_at_obo(world, &early, 50105, &["not assigned"]).await?;
    let refused = world.try_sign_in(Persona::Diego.upn(), &[]).await;
    match refused {
        Ok(_) => return Err(anyhow!("diego is outside the pilot but signed in")),
        Err(e) => {
            let e = e.entra().cloned().ok_or_else(|| anyhow!("not an Entra refusal"))?;
            ensure!(e.has_code(50105), "expected AADSTS50105 (not assigned): {e}");
        }
    }
    for p in [Persona::Alex, Persona::Megan] {
        let s = world.session(p).await?;
        me_of(&s.call_ok("get_me", json!({})).await?)?;
    }
    // Widen: assign a group Diego belongs to.
    world.entra.assign("contoso", "All Company").map_err(|e| anyhow!("{e:?}"))?;
    let diego = world.session(Persona::Diego).await?;
    me_of(&diego.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

pub async fn o04_disabled_tenant_stops_live_sessions(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let lee = world.session(Persona::Lee).await?;
    me_of(&adele.call_ok("get_me", json!({})).await?)?;
    world.set_tenant_policy("contoso", TenantRule { enabled: false, tools: None }).await?;
    let r = adele.call_tool_http("get_me", json!({})).await?;
    ensure_status(&r, 403, "call after the tenant was disabled")?;
    me_of(&lee.call_ok("get_me", json!({})).await?)?;
    Ok(())
}
