//! C — Conditional Access.

use anyhow::{Result, anyhow, ensure};
use fixtures::{CaControl, CaPolicy, CaScope};
use serde_json::json;

use super::{catalogue, ensure_untouched, me_of, refused_at_obo, scenario};
use crate::{Persona, World, signin::EntraError};

catalogue!($ c_ca_tests {
    c01_mfa_required_step_up_then_the_call_works => scenario!(
        "C01",
        "MFA required: claims challenge, step-up, then the call works",
        c01_mfa_step_up
    ),
    c02_non_compliant_device_gets_no_data => scenario!(
        "C02",
        "non-compliant device gets no data",
        c02_non_compliant_device_gets_no_data
    ),
    c03_sign_in_outside_the_ip_range_gets_no_data => scenario!(
        "C03",
        "sign-in from outside the IP range gets no data",
        c03_ip_range_restriction
    ),
    c04_group_scoped_policy_affects_only_that_group => scenario!(
        "C04",
        "a policy scoped to a group affects only that group",
        c04_group_scoped_policy
    ),
    c05_a_graph_token_earned_by_one_sign_in_does_not_serve_another => scenario!(
        "C05",
        "a Graph token earned by one sign-in does not serve another (CA per sign-in)",
        c05_cached_token_bound_to_its_sign_in
    ),
});

async fn refusal(world: &World, upn: &str, extra: &[(&str, &str)]) -> Result<EntraError> {
    match world.try_sign_in(upn, extra).await {
        Ok(_) => Err(anyhow!("{upn} signed in despite Conditional Access")),
        Err(e) => e.entra().cloned().ok_or_else(|| anyhow!("not an Entra refusal: {e}")),
    }
}

pub async fn c01_mfa_step_up(world: &World) -> Result<()> {
    let upn = Persona::Isaiah.upn();
    // A token Entra minted without MFA (e.g. before the policy applied): the connector accepts
    // it, but its OBO exchange meets Conditional Access and must be handed back as a claims
    // challenge the client can satisfy.
    let (tid, oid) = world.ids(upn)?;
    let weak = world.session_with_token(upn, world.entra.user_token(tid, oid));
    let r = weak.call_tool_http("get_me", json!({})).await?;
    super::ensure_status(&r, 401, "OBO under an MFA policy")?;
    ensure!(
        r.challenge("error").as_deref() == Some("insufficient_claims"),
        "expected error=\"insufficient_claims\": {:?}",
        r.header("www-authenticate")
    );
    let claims = r.challenge("claims").ok_or_else(|| {
        anyhow!("the challenge has no claims: {:?}", r.header("www-authenticate"))
    })?;
    let json_claims = crate::session::decode_claims(&claims);
    ensure!(
        serde_json::from_str::<serde_json::Value>(&json_claims).is_ok(),
        "the claims parameter is not base64 of JSON: {claims}"
    );
    ensure!(
        world.graph.never_called_for(tid, oid),
        "Graph was called although the exchange was refused"
    );
    // An interactive sign-in without the claims is refused too (AADSTS50076).
    let e = refusal(world, upn, &[]).await?;
    ensure!(
        e.error == "interaction_required" && e.has_code(50076),
        "expected an MFA challenge: {e}"
    );
    // Step-up: authorize again with the challenge's claims.
    let isaiah = world
        .try_sign_in(upn, &[("claims", &json_claims)])
        .await
        .map_err(|e| anyhow!("step-up sign-in: {e}"))?;
    me_of(&isaiah.call_ok("get_me", json!({})).await?)?;
    let found = isaiah.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(!found.is_error, "mail after step-up: {}", found.text);
    Ok(())
}

pub async fn c02_non_compliant_device_gets_no_data(world: &World) -> Result<()> {
    let upn = Persona::Nestor.upn();
    let e = refusal(world, upn, &[]).await?;
    ensure!(e.has_code(53000), "expected AADSTS53000: {e}");
    let (tid, oid) = world.ids(upn)?;
    ensure_untouched(world, tid, oid)?;
    // A token from the same device issued before the policy applied: refused at OBO.
    let early = world.session_with_token(upn, world.mint(&fake_entra::TokenSpec::user(tid, oid)));
    refused_at_obo(world, &early, 53000, &["Conditional Access", "compliant"]).await
}

pub async fn c03_ip_range_restriction(world: &World) -> Result<()> {
    let upn = Persona::Joni.upn();
    let e = refusal(world, upn, &[]).await?;
    ensure!(e.has_code(53003), "expected AADSTS53003: {e}");
    let (tid, oid) = world.ids(upn)?;
    ensure_untouched(world, tid, oid)?;
    // A token from outside the range issued before the policy applied: refused at OBO.
    let early = world.session_with_token(upn, world.mint(&fake_entra::TokenSpec::user(tid, oid)));
    refused_at_obo(world, &early, 53003, &["Conditional Access", "network location"]).await?;
    // From the office network she gets in.
    let joni =
        world.try_sign_in(upn, &[("fake_ip", "10.20.4.2")]).await.map_err(|e| anyhow!("{e}"))?;
    me_of(&joni.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

pub async fn c04_group_scoped_policy(world: &World) -> Result<()> {
    // The fixture policy targets "MFA Required": Isaiah is challenged, Adele is not.
    // (Adele signing in below is the "is not" half; she makes no call before the new
    // policy, so no Graph token of hers is cached when it arrives.)
    refusal(world, Persona::Isaiah.upn(), &[]).await?;
    // A new policy on "Sales" catches Adele and leaves Diego (not in Sales) alone.
    let policy = CaPolicy {
        id: uuid::Uuid::new_v4(),
        display_name: "MFA for Sales".into(),
        enabled: true,
        applies_to: CaScope::Groups { groups: vec!["Sales".into()] },
        control: CaControl::RequireMfa,
    };
    // Adele and Diego signed in before the policy was added; neither has called yet.
    let adele = world.session(Persona::Adele).await?;
    let diego = world.session(Persona::Diego).await?;
    world.entra.add_ca_policy("contoso", policy).map_err(|e| anyhow!("{e:?}"))?;
    let e = refusal(world, Persona::Adele.upn(), &[]).await?;
    ensure!(e.has_code(50076), "expected MFA for Sales: {e}");
    // Adele's earlier token meets the policy at the OBO exchange: a claims challenge for her
    // client, no data. Diego's is unaffected.
    let graph_before = world.graph.requests_for_user(adele.tenant_id, adele.object_id).len();
    let r = adele.call_tool_http("get_me", json!({})).await?;
    super::ensure_status(&r, 401, "Adele's pre-policy token under MFA for Sales")?;
    ensure!(
        r.challenge("error").as_deref() == Some("insufficient_claims")
            && r.challenge("claims").is_some(),
        "expected a claims challenge: {:?}",
        r.header("www-authenticate")
    );
    ensure!(
        world.graph.requests_for_user(adele.tenant_id, adele.object_id).len() == graph_before,
        "Graph was called for Adele although the policy blocks her"
    );
    me_of(&diego.call_ok("get_me", json!({})).await?)?;
    me_of(&world.session(Persona::Diego).await?.call_ok("get_me", json!({})).await?)?;
    Ok(())
}

/// Joni may reach Graph only from the office network. Sign-in A comes from inside it and earns
/// a Graph token the connector caches; sign-in B (same user, a token from outside the range,
/// well within the reuse age) must meet Conditional Access itself at the OBO step, not ride on
/// A's cached token (`issues` 11 §3).
pub async fn c05_cached_token_bound_to_its_sign_in(world: &World) -> Result<()> {
    let upn = Persona::Joni.upn();
    let (tid, oid) = world.ids(upn)?;
    let inside = fake_entra::TokenSpec::user(tid, oid).ip("10.20.4.2");
    let a = world.session_with_token(upn, world.entra.mint(&inside));
    me_of(&a.call_ok("get_me", json!({})).await?)?;
    let mail = a.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(!mail.is_error, "sign-in A from the office network: {}", mail.text);
    let exchanges = super::obo_exchanges(world, tid, oid);
    let graph_before = world.graph.requests_for_user(tid, oid).len();

    let outside = fake_entra::TokenSpec::user(tid, oid).ip("203.0.113.7");
    let b = world.session_with_token(upn, world.entra.mint(&outside));
    for (tool, args) in
        [("get_me", json!({})), ("outlook_email_search", json!({"query": "budget"}))]
    {
        let out = b.call_ok(tool, args).await?;
        ensure!(out.is_error, "{tool}: sign-in B from outside the range was served: {}", out.text);
        ensure!(
            out.text.contains("Conditional Access"),
            "{tool}: the refusal does not name Conditional Access: {}",
            out.text
        );
    }
    ensure!(
        super::obo_exchanges(world, tid, oid) > exchanges,
        "sign-in B never reached Entra: it was served from sign-in A's cached Graph token"
    );
    ensure!(
        world.graph.requests_for_user(tid, oid).len() == graph_before,
        "Graph was called for sign-in B although Conditional Access blocks it"
    );
    // Sign-in A keeps working from its own cached token.
    let again = a.call_ok("outlook_email_search", json!({"query": "budget"})).await?;
    ensure!(!again.is_error, "sign-in A after B was refused: {}", again.text);
    Ok(())
}
