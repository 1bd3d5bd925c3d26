//! Protected Resource Metadata (RFC 9728), served at
//! `/.well-known/oauth-protected-resource/mcp` and at the root well-known path.

use serde::Serialize;

use crate::config::Settings;

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
    /// Builds the document: the multi-tenant work-and-school authority
    /// (`{authority}/organizations/v2.0`), the one scope the connector needs (no
    /// `offline_access`: scope minimisation), header bearer only. The document is served
    /// without authentication, so it names no tenant: listing each enabled tenant's issuer
    /// would let anyone enumerate the operator's customers. The user's own tenant is decided at
    /// sign-in, and the tenant policy still refuses every tenant it does not enable.
    pub fn build(settings: &Settings) -> Self {
        Self {
            resource: settings.server.resource.to_string(),
            authorization_servers: vec![settings.entra.issuer_for("organizations")],
            scopes_supported: vec![settings.entra.qualified_scope()],
            bearer_methods_supported: vec!["header".into()],
            resource_name: settings.server.resource_name.clone(),
        }
    }
}
