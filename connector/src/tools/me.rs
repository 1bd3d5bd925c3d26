//! `get_me`: who the connector is acting as.

use rmcp::{handler::server::wrapper::Json, schemars, tool, tool_router};
use serde::Serialize;

use super::{Authenticated, Connector};

/// The signed-in user as the connector sees them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Me {
    /// Entra tenant id (GUID) of the signed-in user.
    pub tenant_id: String,
    /// The user's object id (GUID) within that tenant.
    pub user_id: String,
    /// Display name, for display only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[tool_router(router = me_router, vis = "pub(crate)")]
impl Connector {
    #[tool(
        name = "get_me",
        description = "Returns the signed-in user's identity (tenant id, user id, display name).",
        annotations(
            title = "Who am I",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_me(&self, auth: Authenticated) -> Result<Json<Me>, String> {
        let caller = &auth.caller;
        let call = self.context().begin(caller, "get_me", Default::default(), None)?;
        let me = Me {
            tenant_id: caller.tenant_id.to_string(),
            user_id: caller.object_id.to_string(),
            display_name: caller.display_name.clone(),
        };
        call.finish("ok", 200)?;
        Ok(Json(me))
    }
}
