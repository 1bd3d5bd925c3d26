//! What a delegated sign-in may get: the `scope` parameter parsed into one resource and its
//! scope names, tenant-wide consent per scope (AADSTS65001), assignment to the connector
//! (AADSTS50105) and Conditional Access (AADSTS50076/50079/53000/53003), plus the `claims`
//! request parameter (cp1, step-up). Used by `/authorize` and by every delegated grant.

use fixtures::{AppRegistration, CaControl, GrantResource, TenantKind, User};
use uuid::Uuid;

use crate::{
    error::{self, AadError},
    state::{Directory, Inner, SignInContext, TenantDir},
    tokens,
};

/// The resource a set of scopes names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Connector,
    Graph,
}

impl Resource {
    pub fn grant(self) -> GrantResource {
        match self {
            Resource::Connector => GrantResource::Connector,
            Resource::Graph => GrantResource::Graph,
        }
    }
}

/// A parsed `scope` parameter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scopes {
    pub resource: Option<Resource>,
    /// Resource scope names without prefix (`access_as_user`, `Mail.Read`, `.default`).
    pub names: Vec<String>,
    /// `openid`, `profile`, `email`, `offline_access`.
    pub oidc: Vec<String>,
}

impl Scopes {
    pub fn has(&self, oidc: &str) -> bool {
        self.oidc.iter().any(|s| s == oidc)
    }

    /// All scopes, fully qualified, for the journal.
    pub fn all(&self, dir: &Directory) -> Vec<String> {
        let mut v: Vec<String> =
            self.names.iter().map(|n| qualify(dir, self.resource, n)).collect();
        v.extend(self.oidc.iter().cloned());
        v
    }
}

pub(crate) fn qualify(dir: &Directory, r: Option<Resource>, name: &str) -> String {
    match r {
        Some(Resource::Connector) => {
            let base = dir
                .apps
                .connector
                .identifier_uri
                .clone()
                .unwrap_or_else(|| format!("api://{}", dir.apps.connector.app_id));
            format!("{base}/{name}")
        }
        Some(Resource::Graph) => format!("{}/{name}", tokens::GRAPH_AUDIENCE),
        None => name.to_string(),
    }
}

pub(crate) fn parse_scopes(dir: &Directory, raw: &str) -> Result<Scopes, AadError> {
    let connector = dir.apps.connector.app_id.to_string();
    let connector_prefixes = [
        dir.apps.connector.identifier_uri.clone().unwrap_or_else(|| format!("api://{connector}")),
        format!("api://{connector}"),
        connector.clone(),
    ];
    let graph_prefixes = ["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"];
    let mut out = Scopes::default();
    for s in raw.split([' ', '+']).filter(|s| !s.is_empty()) {
        let lower = s.to_ascii_lowercase();
        if ["openid", "profile", "email", "offline_access"].contains(&lower.as_str()) {
            out.oidc.push(lower);
            continue;
        }
        let (resource, name) = if let Some(n) = connector_prefixes
            .iter()
            .find_map(|p| s.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix('/')))
        {
            (Resource::Connector, n)
        } else if let Some(n) =
            graph_prefixes.iter().find_map(|p| s.strip_prefix(p).and_then(|r| r.strip_prefix('/')))
        {
            (Resource::Graph, n)
        } else if !s.contains('/') && !s.contains(':') {
            // A bare scope name is a Graph scope, as in Entra.
            (Resource::Graph, s)
        } else {
            return Err(AadError::new(
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {s} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
                ),
            ));
        };
        if name.is_empty() {
            return Err(error::invalid_scope(s));
        }
        if out.resource.is_some_and(|r| r != resource) {
            return Err(AadError::new(
                "invalid_scope",
                700022,
                "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope "
                    .to_string()
                    + raw
                    + " is not valid.",
            ));
        }
        if resource == Resource::Connector
            && name != ".default"
            && !dir.apps.connector.exposed_scopes.iter().any(|e| e == name)
        {
            return Err(error::invalid_scope(s));
        }
        out.resource = Some(resource);
        out.names.push(name.to_string());
    }
    Ok(out)
}

/// Checks tenant-wide consent of `client` for each scope: the granted names (with the
/// grant's casing), or AADSTS65001.
pub(crate) fn check_consent(
    tenant: &TenantDir,
    client: &AppRegistration,
    resource: Resource,
    names: &[String],
) -> Result<Vec<String>, AadError> {
    let refuse = || error::consent_required(client.app_id, &client.display_name);
    let Some(granted) = tenant.granted(client.app_id, resource.grant()) else {
        return Err(refuse());
    };
    if names.iter().any(|n| n == ".default") {
        let all: Vec<String> = granted.into_iter().filter(|g| g != "offline_access").collect();
        if all.is_empty() {
            return Err(refuse());
        }
        return Ok(all);
    }
    names
        .iter()
        .map(|n| granted.iter().find(|g| g.eq_ignore_ascii_case(n)).cloned().ok_or_else(refuse))
        .collect()
}

/// Conditional Access on a sign-in, as Entra answers at the token endpoint.
pub(crate) fn check_ca(
    tenant: &TenantDir,
    user: &User,
    ctx: &SignInContext,
    resource_name: &str,
) -> Result<(), AadError> {
    let Some(p) = tenant.ca_violation(user, ctx) else { return Ok(()) };
    Err(match &p.control {
        CaControl::RequireMfa if user.mfa_registered => error::mfa_required(resource_name, p.id),
        CaControl::RequireMfa => error::mfa_enrollment_required(resource_name, p.id),
        CaControl::RequireCompliantDevice => error::device_not_compliant(),
        CaControl::AllowedIpRanges { .. } | CaControl::Block => error::ca_blocked(),
    })
}

/// Parses a `claims` parameter: (cp1 declared, MFA requested).
pub(crate) fn parse_claims(raw: Option<&str>) -> (bool, bool) {
    let Some(v) = raw.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()) else {
        return (false, false);
    };
    let at = &v["access_token"];
    let cp1 = at["xms_cc"]["values"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("cp1")));
    // A CA claims challenge (capolids / polids), an auth-context or amr request asks for a
    // stronger sign-in: the fake treats it as "perform MFA".
    let mfa = ["capolids", "polids", "acrs", "amr"].iter().any(|k| !at[k].is_null())
        || !v["id_token"]["amr"].is_null();
    (cp1, mfa)
}

/// Consent, assignment and CA for a delegated token in an organisation tenant.
pub(crate) fn check_policy(
    inner: &Inner,
    client: &AppRegistration,
    tid: Uuid,
    oid: Uuid,
    resource: Option<Resource>,
    names: &[String],
    ctx: &SignInContext,
) -> Result<Vec<String>, AadError> {
    let Some(tdir) = inner.dir.tenant_by_id(tid) else { return Ok(names.to_vec()) };
    if tdir.kind == TenantKind::Consumer {
        return Ok(names.to_vec());
    }
    let Some(user) = tdir.user(oid) else { return Ok(names.to_vec()) };
    let granted = match resource {
        Some(r) => check_consent(tdir, client, r, names)?,
        None => vec![],
    };
    let connector = &inner.dir.apps.connector;
    let involves_connector =
        resource == Some(Resource::Connector) || client.app_id == connector.app_id;
    if involves_connector && !tdir.is_assigned(user) {
        return Err(error::not_assigned(&user.upn, connector.app_id, &connector.display_name));
    }
    let resource_name = match resource {
        Some(Resource::Graph) => tokens::GRAPH_AUDIENCE.to_string(),
        _ => connector.app_id.to_string(),
    };
    check_ca(tdir, user, ctx, &resource_name)?;
    Ok(granted)
}
