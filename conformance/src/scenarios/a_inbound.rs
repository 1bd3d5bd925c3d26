//! A — inbound tokens.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use fake_entra::{BadToken, HeaderTrick, TokenSpec};
use serde_json::json;

use super::{catalogue, ensure_status, ensure_untouched, me_of, scenario};
use crate::{KeyIssuer, Persona, World, canary::Canary, session::initialize_body};

catalogue!($ a_inbound_tests {
    a01_no_token_is_challenged_with_resource_metadata => scenario!(
        "A01",
        "no token is challenged with resource metadata",
        a01_no_token_is_challenged
    ),
    a02_valid_token_lists_the_tools_and_calls_one => scenario!(
        "A02",
        "a valid user token lists the tools and calls one",
        a02_valid_token_lists_and_calls
    ),
    a03_expired_token_is_refused_without_obo_or_graph => scenario!(
        "A03",
        "expired token is refused without OBO or Graph",
        a03_expired_token_is_refused
    ),
    a04_token_not_yet_valid_is_refused => scenario!("A04", "token not yet valid is refused", a04_not_yet_valid_token_is_refused),
    a05_graph_audience_token_is_refused => scenario!("A05", "graph audience token is refused", a05_graph_audience_token_is_refused),
    a06_forged_tokens_are_refused => scenario!("A06", "forged tokens are refused", a06_forged_tokens_are_refused),
    a06_typ_a_token_typed_other_than_jwt_is_refused => scenario!(
        "A06/typ",
        "a token typed other than JWT is refused",
        a06_token_typed_other_than_jwt_is_refused
    ),
    a07_issuer_of_one_tenant_with_tid_of_another_is_refused => scenario!(
        "A07",
        "issuer of one tenant with tid of another is refused",
        a07_cross_tenant_issuer_is_refused
    ),
    a07_keys_without_issuer_the_issuer_rule_alone_refuses => scenario!(
        "A07/keys-without-issuer",
        "issuer of one tenant with tid of another is refused by the issuer rule alone",
        clock = false,
        setup = keys_without_issuer,
        a07_cross_tenant_issuer_is_refused
    ),
    a07_tenant_bound_key_signs_for_its_tenant_only => scenario!(
        "A07/tenant-bound-key",
        "a key valid for one tenant cannot sign for another",
        clock = false,
        setup = keys_bound_to_contoso,
        a07_tenant_bound_key_signs_for_its_tenant_only
    ),
    a08_token_without_the_scope_gets_insufficient_scope => scenario!(
        "A08",
        "token without the scope gets insufficient_scope",
        a08_missing_scope_is_403
    ),
    a09_key_rotation_is_picked_up_without_a_jwks_flood => scenario!("A09", "key rotation is picked up without a JWKS flood", a09_key_rotation),
    a10_personal_accounts_are_refused_clearly => scenario!("A10", "personal accounts are refused clearly", a10_personal_account_is_refused),
});

async fn call_me_with(world: &World, token: &str) -> Result<crate::RawResponse> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_me", "arguments": {}}});
    world.post_mcp(Some(token), body.to_string().into_bytes(), &[]).await
}

pub async fn a01_no_token_is_challenged(world: &World) -> Result<()> {
    let r = world.post_mcp(None, initialize_body().to_string().into_bytes(), &[]).await?;
    ensure_status(&r, 401, "no token")?;
    let header = r.header("www-authenticate").unwrap_or_default().to_owned();
    ensure!(header.starts_with("Bearer"), "challenge is not Bearer: {header}");
    ensure!(r.challenge("error").is_none(), "a missing token must not carry `error`: {header}");
    let prm_url =
        r.challenge("resource_metadata").ok_or_else(|| anyhow::anyhow!("no resource_metadata"))?;
    for url in
        [prm_url.clone(), format!("{}/.well-known/oauth-protected-resource", world.base_url())]
    {
        let prm: serde_json::Value = world.http().get(&url).send().await?.json().await?;
        ensure!(prm["resource"] == json!(world.mcp_url()), "PRM resource: {prm}");
        let servers = prm["authorization_servers"].as_array().cloned().unwrap_or_default();
        ensure!(!servers.is_empty(), "PRM names no authorization server");
        for s in &servers {
            ensure!(
                s.as_str().unwrap_or_default().starts_with(&world.entra.uri()),
                "unexpected AS {s}"
            );
        }
        let scopes = prm["scopes_supported"].as_array().cloned().unwrap_or_default();
        let wanted = format!("api://{}/access_as_user", world.entra.connector_id());
        ensure!(scopes.contains(&json!(wanted)), "scopes_supported lacks {wanted}: {prm}");
        ensure!(
            !scopes.contains(&json!("offline_access")),
            "offline_access must not be advertised"
        );
    }
    Ok(())
}

pub async fn a02_valid_token_lists_and_calls(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let names = adele.tool_names().await?;
    ensure!(names.iter().any(|n| n == "get_me"), "tools/list lacks get_me: {names:?}");
    let me = adele.call_tool("get_me", json!({})).await?;
    let (tid, oid) = me_of(&me)?;
    ensure!(
        tid == adele.tenant_id.to_string() && oid == adele.object_id.to_string(),
        "get_me answered {tid}/{oid}"
    );
    adele.close().await;
    Ok(())
}

async fn refused_untouched(
    world: &World,
    spec: TokenSpec,
    status: u16,
    what: &str,
) -> Result<crate::RawResponse> {
    let (tid, oid) = (spec.tid, spec.oid);
    let token = world.mint(&spec);
    let r = call_me_with(world, &token).await?;
    ensure_status(&r, status, what)?;
    ensure_untouched(world, tid, oid)?;
    Ok(r)
}

pub async fn a03_expired_token_is_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let r =
        refused_untouched(world, TokenSpec::user(tid, oid).bad(BadToken::Expired), 401, "expired")
            .await?;
    ensure!(
        r.challenge("error").as_deref() == Some("invalid_token"),
        "error: {:?}",
        r.header("www-authenticate")
    );
    Ok(())
}

/// Each token breaks exactly one time claim, so each of the connector's time rules is the
/// only one that can refuse it (an expired token is A03).
pub async fn a04_not_yet_valid_token_is_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    for (bad, what) in [
        (BadToken::FutureNbf, "nbf 30 minutes ahead (iat now)"),
        (BadToken::FutureIat, "iat 30 minutes ahead (nbf now)"),
        (BadToken::IatAfterExp, "iat after exp (both within the clock-skew leeway)"),
    ] {
        let r = refused_untouched(world, TokenSpec::user(tid, oid).bad(bad), 401, what).await?;
        ensure!(
            r.challenge("error").as_deref() == Some("invalid_token"),
            "{what}: {:?}",
            r.header("www-authenticate")
        );
    }
    // The same claims without the defect are accepted: the refusals are the time rules'.
    let r = call_me_with(world, &world.mint(&TokenSpec::user(tid, oid))).await?;
    ensure_status(&r, 200, "the same token without a time defect")?;
    Ok(())
}

pub async fn a05_graph_audience_token_is_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    refused_untouched(
        world,
        TokenSpec::user(tid, oid).bad(BadToken::WrongAudience),
        401,
        "graph audience",
    )
    .await?;
    // A real Graph token (v1, sts.windows.net issuer) is refused too.
    let graph_token = world.entra.graph_token(tid, oid, &["User.Read"], true);
    let r = call_me_with(world, &graph_token).await?;
    ensure_status(&r, 401, "graph token passthrough")?;
    ensure_untouched(world, tid, oid)
}

pub async fn a06_forged_tokens_are_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    for bad in [
        BadToken::UnknownKey,
        BadToken::ForeignKeyKnownKid,
        BadToken::TamperedPayload,
        BadToken::AlgNone,
        BadToken::Hs256WithPublicKey,
        BadToken::IdToken,
        BadToken::AppOnly,
    ] {
        let what = format!("{bad:?}");
        let token = world.mint(&TokenSpec::user(tid, oid).bad(bad));
        let r = call_me_with(world, &token).await?;
        ensure!(matches!(r.status, 401 | 403), "{what}: expected a refusal, got {}", r.status);
        if r.status == 401 {
            ensure!(
                r.challenge("error").as_deref() == Some("invalid_token"),
                "{what}: {:?}",
                r.header("www-authenticate")
            );
        }
    }
    // Header tricks (RFC 8725 §3.10–3.11, RFC 7515 §4.1.11): the key is chosen from the
    // connector's own JWKS by `kid`, never from the token; no URL in a header is fetched.
    let canary = Canary::start().await?;
    for trick in [
        HeaderTrick::MissingKid,
        HeaderTrick::UnknownCrit,
        HeaderTrick::EmbeddedJwk,
        HeaderTrick::Jku(canary.url("/keys")),
        HeaderTrick::X5u(canary.url("/cert.pem")),
    ] {
        let what = format!("{trick:?}");
        let token = world.mint(&TokenSpec::user(tid, oid).bad(BadToken::Header(trick)));
        let r = call_me_with(world, &token).await?;
        ensure_status(&r, 401, &what)?;
        ensure!(
            r.challenge("error").as_deref() == Some("invalid_token"),
            "{what}: {:?}",
            r.header("www-authenticate")
        );
    }
    // Give a fetch in the background time to arrive before looking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(
        canary.connections() == 0,
        "the connector fetched a URL named in a token header ({} connections)",
        canary.connections()
    );
    // Garbage that is not a JWT at all.
    for junk in ["abc", "a.b.c", "eyJhbGciOiJub25lIn0..", ""] {
        let r = call_me_with(world, junk).await?;
        ensure_status(&r, 401, &format!("junk token {junk:?}"))?;
    }
    ensure_untouched(world, tid, oid)
}

/// Correctly signed by Entra's published key, every claim valid, but the JOSE header types
/// it as another kind of JWT (RFC 8725 §3.11): only a `typ` rule refuses it.
pub async fn a06_token_typed_other_than_jwt_is_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    for typ in ["logout+jwt", "at+jwt", "JWE"] {
        let spec = TokenSpec::user(tid, oid).bad(BadToken::Header(HeaderTrick::Typ(typ.into())));
        refused_untouched(world, spec, 401, &format!("typ {typ}")).await?;
    }
    Ok(())
}

fn keys_without_issuer() -> crate::WorldBuilder {
    World::builder().key_issuer(KeyIssuer::Omitted)
}

fn keys_bound_to_contoso() -> crate::WorldBuilder {
    World::builder().key_issuer(KeyIssuer::Tenant("contoso"))
}

/// A Contoso token whose `iss` is Fabrikam's. With Entra's JWKS both the issuer-per-`tid`
/// rule and the key's `issuer` rule refuse it; with `keys-without-issuer` only the first can.
pub async fn a07_cross_tenant_issuer_is_refused(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let fabrikam = world.tenant_id("fabrikam")?;
    let spec = TokenSpec::user(tid, oid).bad(BadToken::MismatchedIssuer { iss_tid: fabrikam });
    refused_untouched(world, spec, 401, "iss/tid mismatch").await?;
    // The same token with its own issuer is accepted: the refusal is the issuer rule's.
    let r = call_me_with(world, &world.mint(&TokenSpec::user(tid, oid))).await?;
    ensure_status(&r, 200, "a Contoso token with Contoso's issuer")?;
    Ok(())
}

/// Every published key carries Contoso's concrete issuer. A Fabrikam token, consistent in
/// itself (`iss` and `tid` both Fabrikam's, so the issuer-per-`tid` rule passes), signed with
/// such a key is refused by the key's `issuer` rule alone; a Contoso token is accepted.
pub async fn a07_tenant_bound_key_signs_for_its_tenant_only(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Lee.upn())?;
    refused_untouched(world, TokenSpec::user(tid, oid), 401, "Fabrikam token, Contoso key").await?;
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let r = call_me_with(world, &world.mint(&TokenSpec::user(tid, oid))).await?;
    ensure_status(&r, 200, "Contoso token, Contoso key")?;
    Ok(())
}

pub async fn a08_missing_scope_is_403(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    let r = refused_untouched(
        world,
        TokenSpec::user(tid, oid).scopes(&["Other.Scope"]),
        403,
        "no scope",
    )
    .await?;
    ensure!(
        r.challenge("error").as_deref() == Some("insufficient_scope"),
        "{:?}",
        r.header("www-authenticate")
    );
    let scope = r.challenge("scope").unwrap_or_default();
    ensure!(scope.ends_with("/access_as_user"), "challenge scope `{scope}`");
    ensure!(r.challenge("resource_metadata").is_some(), "challenge lacks resource_metadata");
    Ok(())
}

pub async fn a09_key_rotation(world: &World) -> Result<()> {
    let (tid, oid) = world.ids(Persona::Adele.upn())?;
    // Unknown kids may make the connector look for a rotated key, at most once per refresh
    // floor (1 s in the test configuration). fake-entra journals every JWKS it serves;
    // fake-graph fetches keys only for tokens it sees, and it sees none of these.
    let before = world.entra.jwks_fetches();
    let started = Instant::now();
    for _ in 0..30 {
        let token = world.mint(&TokenSpec::user(tid, oid).bad(BadToken::UnknownKey));
        let r = call_me_with(world, &token).await?;
        ensure_status(&r, 401, "unknown kid")?;
    }
    let fetches = world.entra.jwks_fetches() - before;
    let allowed = usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX) + 2;
    ensure!(
        fetches <= allowed,
        "30 unknown-kid tokens made {fetches} JWKS fetches in {:?} (the floor allows {allowed})",
        started.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_kid = world.entra.rotate_keys().map_err(|e| anyhow::anyhow!("rotate: {e:?}"))?;
    let adele = world.session(Persona::Adele).await?;
    let header = adele.token().split('.').next().unwrap_or_default().to_owned();
    let header = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)?;
    ensure!(
        String::from_utf8_lossy(&header).contains(&new_kid),
        "the new token is not signed with {new_kid}"
    );
    let me = adele.call_ok("get_me", json!({})).await?;
    me_of(&me)?;
    Ok(())
}

pub async fn a10_personal_account_is_refused(world: &World) -> Result<()> {
    let upn = Persona::Pat.upn();
    let (tid, oid) = world.ids(upn)?;
    let session = match world.try_sign_in(upn, &[]).await {
        Ok(s) => s,
        // Entra may already refuse; the connector must refuse a consumer token regardless.
        Err(_) => world.session_with_token(upn, world.mint(&TokenSpec::user(tid, oid))),
    };
    let r = session.call_tool_http("get_me", json!({})).await?;
    ensure!(matches!(r.status, 401 | 403), "consumer account got HTTP {}", r.status);
    let text =
        format!("{} {}", r.text, r.header("www-authenticate").unwrap_or_default()).to_lowercase();
    ensure!(text.contains("personal"), "the refusal does not say why: {text}");
    ensure_untouched(world, tid, oid)
}
