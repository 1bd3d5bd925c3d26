//! Protected Resource Metadata (RFC 9728), served at
//! `/.well-known/oauth-protected-resource/mcp` and at the root well-known path.

use serde::Serialize;

use crate::{config::Settings, policy::Policy};

/// The metadata document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: Vec<String>,
    pub resource_name: String,
}

impl ProtectedResourceMetadata {
    /// Builds the document: one authorization server per enabled tenant
    /// (`{authority}/{tid}/v2.0`, a concrete issuer clients can check), the one scope the
    /// connector needs (no `offline_access`: scope minimisation), header bearer only.
    pub fn build(settings: &Settings, policy: &Policy) -> Self {
        Self {
            resource: settings.server.resource.to_string(),
            authorization_servers: policy
                .enabled_tenants()
                .iter()
                .map(|tid| settings.entra.issuer_for(&tid.to_string()))
                .collect(),
            scopes_supported: vec![settings.entra.qualified_scope()],
            bearer_methods_supported: vec!["header".into()],
            resource_name: settings.server.resource_name.clone(),
        }
    }
}
