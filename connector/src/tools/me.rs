//! `get_me`: who the connector is acting as: identity from the validated token, profile from
//! Graph `/me`, time zone from `/me/mailboxSettings` (best effort).

use rmcp::{handler::server::wrapper::Json, schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

use super::{Authenticated, Connector, failure_message};
use crate::graph::{GraphPath, GraphRequest};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// The mailbox time zone (Windows or IANA name), when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Tools the tenant policy allows for this user, or `["*"]` for all.
    pub allowed_tools: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    display_name: Option<String>,
    user_principal_name: Option<String>,
    mail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailboxSettings {
    time_zone: Option<String>,
}

#[tool_router(router = me_router, vis = "pub(crate)")]
impl Connector {
    #[tool(
        name = "get_me",
        description = "Returns the signed-in user's identity (tenant id, user id, name, mail), time zone, and which tools the organization allows.",
        annotations(
            title = "Who am I",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn get_me(&self, auth: Authenticated) -> Result<Json<Me>, String> {
        let ctx = self.context();
        let caller = &auth.caller;
        let mut call = ctx.begin(caller, "get_me", Default::default(), None)?;

        let profile = ctx.session(caller, &["User.Read"]);
        let req = GraphRequest::get(GraphPath::fixed("/me")).select(&[
            "displayName",
            "userPrincipalName",
            "mail",
        ]);
        let user = match profile.get_json::<GraphUser>(&req).await {
            Ok(r) => {
                call.graph_request_ids.extend(r.request_id);
                r.body
            }
            Err(failure) => {
                let message = failure_message(&failure, &auth.challenge);
                call.graph_request_ids.extend(failure.request_id.clone());
                call.finish("graph_error", 502)?;
                return Err(message);
            }
        };
        // The time zone is a convenience: a mailbox without settings (or a tenant that did not
        // consent to MailboxSettings.Read) still gets an answer.
        let settings = ctx.session(caller, &["MailboxSettings.Read"]);
        let req = GraphRequest::get(GraphPath::fixed("/me/mailboxSettings")).select(&["timeZone"]);
        let time_zone = match settings.get_json::<MailboxSettings>(&req).await {
            Ok(r) => {
                call.graph_request_ids.extend(r.request_id);
                r.body.time_zone
            }
            Err(failure) => {
                if failure.claims_challenge().is_some() {
                    let message = failure_message(&failure, &auth.challenge);
                    call.finish("claims_challenge", 401)?;
                    return Err(message);
                }
                None
            }
        };
        let allowed_tools =
            match ctx.policy.current().enabled_tenant(&caller.tenant_id).map(|t| t.tools.clone()) {
                Some(crate::policy::Allow::Only(set)) => set.into_iter().collect(),
                _ => vec![crate::policy::ANY.to_owned()],
            };
        let me = Me {
            tenant_id: caller.tenant_id.to_string(),
            user_id: caller.object_id.to_string(),
            display_name: user.display_name.or_else(|| caller.display_name.clone()),
            user_principal_name: user.user_principal_name,
            mail: user.mail,
            time_zone,
            allowed_tools,
        };
        call.finish("ok", 200)?;
        Ok(Json(me))
    }
}
