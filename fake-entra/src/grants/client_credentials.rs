//! The `client_credentials` grant: app-only tokens for a confidential client, on a concrete
//! tenant only, with a `/.default` scope, for an app with a service principal in the tenant.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fixtures::AppRegistration;

use super::{Issued, TokenResponse, Trail};
use crate::{
    consent::{Resource, parse_scopes},
    error::{self, AadError},
    state::{Inner, Shared},
    tenant::TenantRef,
    tokens::{self, Times},
};

pub(super) fn client_credentials(
    s: &Shared,
    inner: &mut Inner,
    app: &AppRegistration,
    t: TenantRef,
    p: &HashMap<String, String>,
    trail: &mut Trail,
    now: DateTime<Utc>,
) -> Result<Issued, AadError> {
    let Some(tid) = t.id().filter(|_| matches!(t, TenantRef::Tenant(_))) else {
        return Err(AadError::new(
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        ));
    };
    let raw = p.get("scope").ok_or_else(|| error::missing_param("scope"))?;
    trail.scopes = vec![raw.clone()];
    let scopes = parse_scopes(&inner.dir, raw)?;
    if scopes.names != [".default"] || scopes.resource.is_none() {
        return Err(AadError::new(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {raw} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let tdir = inner
        .dir
        .tenant_by_id(tid)
        .cloned()
        .ok_or_else(|| error::tenant_not_found(&tid.to_string()))?;
    let has_sp = tdir.state.service_principals.contains(&app.app_id)
        || tdir.state.consent_grants.iter().any(|g| g.client_app_id == app.app_id);
    if !has_sp {
        return Err(error::app_not_found(&app.app_id.to_string(), &tid.to_string()));
    }
    let life = inner.access_lifetime(tid);
    let uti = tokens::new_uti();
    let graph = scopes.resource == Some(Resource::Graph);
    let (aud, roles) = if graph {
        (tokens::GRAPH_AUDIENCE.to_string(), app.app_roles.clone())
    } else {
        (inner.dir.apps.connector.app_id.to_string(), vec![])
    };
    let claims = tokens::app_only_claims(
        &s.issuer_v2(tid),
        tid,
        app.app_id,
        &app.display_name,
        &aud,
        graph,
        &roles,
        Times::new(now, life),
        &uti,
    );
    trail.uti = Some(uti);
    Ok(Issued {
        resp: TokenResponse {
            token_type: "Bearer".into(),
            scope: raw.clone(),
            expires_in: life,
            ext_expires_in: life,
            access_token: String::new(),
            refresh_token: None,
            id_token: None,
            client_info: None,
        },
        access: tokens::Unsigned::new(inner.keys.active(), claims, graph, graph),
        id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::{super::testing::*, *};
    use crate::FakeEntra;

    fn contoso(entra: &FakeEntra) -> TenantRef {
        TenantRef::Tenant(entra.tenant_id("contoso.com").unwrap_or_default())
    }

    fn request(entra: &FakeEntra, t: TenantRef, scope: Option<&str>) -> Result<Issued, AadError> {
        let now = entra.shared.now();
        let mut inner = entra.shared.lock();
        let app = inner.dir.apps.connector.clone();
        let mut trail = trail(app.app_id);
        let p = scope.map_or_else(|| form(&[]), |s| form(&[("scope", s)]));
        client_credentials(&entra.shared, &mut inner, &app, t, &p, &mut trail, now)
    }

    #[tokio::test]
    async fn a_default_scope_on_a_tenant_gets_an_app_only_token() {
        let entra = entra().await;
        let t = contoso(&entra);
        let issued = request(&entra, t, Some("https://graph.microsoft.com/.default"));
        assert!(issued.is_ok_and(|i| i.resp.refresh_token.is_none() && i.id.is_none()));
    }

    #[tokio::test]
    async fn common_names_no_tenant_and_is_refused_with_50059() {
        let entra = entra().await;
        let r = request(&entra, TenantRef::Common, Some("https://graph.microsoft.com/.default"));
        assert_refused(r, "invalid_request", 50059, 400);
    }

    #[tokio::test]
    async fn a_missing_scope_or_one_without_default_is_refused() {
        let entra = entra().await;
        let t = contoso(&entra);
        assert_refused(request(&entra, t, None), "invalid_request", 900144, 400);
        let named = request(&entra, t, Some("https://graph.microsoft.com/Mail.Read"));
        assert_refused(named, "invalid_scope", 1002012, 400);
    }

    #[tokio::test]
    async fn an_app_without_a_service_principal_is_refused_with_700016() {
        let entra = entra().await;
        let t = contoso(&entra);
        {
            let mut inner = entra.shared.lock();
            if let Some(tenant) = inner.dir.tenant_mut("contoso") {
                tenant.state.service_principals.clear();
                tenant.state.consent_grants.clear();
            }
        }
        let r = request(&entra, t, Some("https://graph.microsoft.com/.default"));
        assert_refused(r, "unauthorized_client", 700016, 400);
    }
}
