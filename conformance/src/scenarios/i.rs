//! I — isolation and per-user permissions.

use anyhow::{Result, ensure};
use serde_json::json;

use super::{me_of, scenario};
use crate::{Persona, World, world::TenantRule};

pub fn scenarios() -> Vec<super::Scenario> {
    let mut v = vec![
        scenario!(
            "I04",
            "nothing handed to a caller is usable by another",
            i04_handles_bound_to_caller
        ),
        scenario!(
            "I05",
            "many users of several tenants at once each get their own results",
            clock = false,
            setup = i05_setup,
            i05_concurrent_callers
        ),
    ];
    #[cfg(feature = "pending-tools")]
    v.extend(pending::scenarios());
    v.sort_by_key(|s| s.id);
    v
}

pub async fn i04_handles_bound_to_caller(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let init =
        adele.raw_post(crate::session::initialize_body().to_string().into_bytes(), &[]).await?;
    ensure!(init.status == 200, "initialize: HTTP {}", init.status);
    ensure!(init.header("mcp-session-id").is_none(), "the connector minted a session id");
    // Another tenant's user presenting a session id gets only their own identity.
    let other = world.session(Persona::AdeleFabrikam).await?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_me", "arguments": {}}});
    let r = other
        .raw_post(body.to_string().into_bytes(), &[("mcp-session-id", "adele-session")])
        .await?;
    ensure!(r.status == 200 || r.status == 404 || r.status == 400, "HTTP {}", r.status);
    if r.status == 200 {
        let (tid, oid) = me_of(&crate::session::ToolOutcome::from_json(&r.tool_result()?))?;
        ensure!(
            tid == other.tenant_id.to_string() && oid == other.object_id.to_string(),
            "identity crossed callers"
        );
    }
    Ok(())
}

fn i05_setup() -> crate::WorldBuilder {
    World::builder().tenant_policy("tailspin", TenantRule { enabled: true, tools: None })
}

pub async fn i05_concurrent_callers(world: &World) -> Result<()> {
    let people = [
        Persona::Adele,
        Persona::Alex,
        Persona::Diego,
        Persona::Megan,
        Persona::PradeepContoso,
        Persona::AdeleFabrikam,
        Persona::PradeepFabrikam,
        Persona::Lee,
        Persona::Miriam,
        Persona::Johanna,
    ];
    let mut sessions = Vec::new();
    for round in 0..5 {
        for p in people {
            let _ = round;
            sessions.push(world.session(p).await?);
        }
    }
    ensure!(sessions.len() >= 50);
    let calls = sessions.iter().map(|s| async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(me_of(&s.call_ok("get_me", json!({})).await?)?);
        }
        #[cfg(feature = "pending-tools")]
        {
            let out = s.call_ok("outlook_email_search", json!({"query": "a"})).await?;
            ensure!(!out.is_error, "{}: {}", s.upn, out.text);
        }
        anyhow::Ok((s, seen))
    });
    for r in futures::future::join_all(calls).await {
        let (s, seen) = r?;
        for (tid, oid) in seen {
            ensure!(
                tid == s.tenant_id.to_string() && oid == s.object_id.to_string(),
                "{} got {tid}/{oid}",
                s.upn
            );
        }
    }
    for e in world.graph.journal() {
        ensure!(e.mutating.then_some(()).is_none(), "mutating Graph request");
    }
    Ok(())
}

#[cfg(feature = "pending-tools")]
mod pending {
    use super::*;
    use crate::scenarios::Scenario;

    pub fn scenarios() -> Vec<Scenario> {
        vec![
            scenario!(
                "I01",
                "a user cannot read another tenant's resources by URI",
                i01_cross_tenant_uri
            ),
            scenario!("I02", "a user cannot read another user's mail", i02_other_users_mail),
            scenario!("I03", "SharePoint results respect sharing", i03_sharing_respected),
        ]
    }

    async fn first_uri(s: &crate::Session, tool: &str) -> Result<String> {
        let out = s.call_ok(tool, json!({"query": "a"})).await?;
        ensure!(!out.is_error, "{}", out.text);
        let st = out.structured.unwrap_or_default();
        st["results"][0]["uri"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no result uri"))
    }

    pub async fn i01_cross_tenant_uri(world: &World) -> Result<()> {
        let a = world.session(Persona::Adele).await?;
        let b = world.session(Persona::AdeleFabrikam).await?;
        let uri = first_uri(&a, "sharepoint_search").await?;
        let out = b.call_ok("read_resource", json!({"uri": uri})).await?;
        ensure!(out.is_error, "fabrikam read a contoso resource");
        Ok(())
    }

    pub async fn i02_other_users_mail(world: &World) -> Result<()> {
        let a = world.session(Persona::Adele).await?;
        let d = world.session(Persona::Diego).await?;
        let uri = first_uri(&a, "outlook_email_search").await?;
        let out = d.call_ok("read_resource", json!({"uri": uri})).await?;
        ensure!(out.is_error, "diego read adele's mail");
        Ok(())
    }

    pub async fn i03_sharing_respected(world: &World) -> Result<()> {
        let d = world.session(Persona::Diego).await?;
        let out = d.call_ok("sharepoint_search", json!({"query": "a"})).await?;
        ensure!(!out.is_error, "{}", out.text);
        ensure!(
            world
                .graph
                .journal()
                .iter()
                .all(|e| e.response_status_code != 403 || e.user_id != Some(d.object_id))
        );
        Ok(())
    }
}
