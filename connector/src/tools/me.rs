//! `get_me`: who the connector is acting as: identity from the validated token, profile from
//! Graph `/me`, time zone and working hours from `/me/mailboxSettings` (best effort), and the
//! tools the tenant policy and the caller's granted permissions allow ([`super::access`]).

use futures::FutureExt;
use rmcp::schemars;
use serde::{Deserialize, Serialize};

use super::{
    Authenticated, Connector, access,
    mailbox::{MailboxSettings, MailboxZone, SETTINGS_SELECT},
    permissions::ZONE_SCOPE,
    pipeline::{Answer, ArgumentShape, Checks, Tool, ToolArgs, ToolError, route as tool_route},
};
use crate::{
    graph::{GraphPath, GraphRequest, model},
    obo::OboError,
};

/// `get_me`.
pub static GET_ME: Tool = Tool {
    name: "get_me",
    title: "Who am I",
    description: "Returns the signed-in user's identity (tenant id, user id, name, mail), mailbox time zone and working hours, and which tools the organization's policy and granted permissions allow.",
    needs: &[&["User.Read"]],
    governs: &[],
    forbidden_message: None,
};

/// `get_me` takes no arguments; one given anyway is refused, never ignored.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetMeArgs {}

impl ToolArgs for GetMeArgs {
    type Valid = ();
    fn validate(self, _: &Checks) -> Result<(), rmcp::ErrorData> {
        Ok(())
    }
    const NO_ARGUMENTS: bool = true;
}

/// The signed-in user as the connector sees them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct GetMeResult {
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
    /// The mailbox time zone as Exchange reports it (Windows or IANA name), when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The IANA zone the tools show local times in (UTC when the mailbox zone is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone_iana: Option<String>,
    /// The mailbox working hours, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_hours: Option<WorkingHours>,
    /// Tools the tenant policy allows for this user, or `["*"]` for all.
    pub allowed_tools: Vec<String>,
    /// Tools this user can use now: allowed by the policy and served by the Microsoft Graph
    /// permissions the organization granted. Absent when the grants could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_tools: Option<Vec<String>>,
    /// Why the time zone, working hours or available tools are missing, when they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Working hours from the mailbox settings.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WorkingHours {
    /// Working days, lower-case English names (`monday`, …).
    pub days_of_week: Vec<String>,
    /// Start of the working day, local time (`HH:MM:SS`).
    pub start_time: String,
    /// End of the working day, local time (`HH:MM:SS`).
    pub end_time: String,
    /// The zone the working hours are expressed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Graph's `workingHours` (`timeZone` is an object there) as [`WorkingHours`].
fn working_hours(v: &model::WorkingHours) -> Option<WorkingHours> {
    let trim = |t: &str| t.split('.').next().unwrap_or(t).to_owned();
    Some(WorkingHours {
        days_of_week: v.days_of_week.clone()?,
        start_time: trim(v.start_time.as_deref()?),
        end_time: trim(v.end_time.as_deref()?),
        time_zone: v.time_zone_name().map(str::to_owned),
    })
}

impl Answer for GetMeResult {
    const UNTRUSTED: bool = false;
    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The router entry of `get_me`.
pub fn route() -> rmcp::handler::server::router::tool::ToolRoute<Connector> {
    tool_route::<GetMeArgs, GetMeResult>(&GET_ME, |connector, auth, shape, args| {
        async move { get_me(&connector, &auth, shape, args).await }.boxed()
    })
}

async fn get_me(
    connector: &Connector,
    auth: &Authenticated,
    shape: ArgumentShape,
    args: GetMeArgs,
) -> Result<rmcp::model::CallToolResult, rmcp::ErrorData> {
    let ctx = connector.context();
    ctx.run(auth, &GET_ME, shape, args, |call, ()| async move {
        let caller = call.caller();
        let mut notes = Vec::new();
        // One exchange for the profile and the mailbox settings; a tenant that did not grant
        // MailboxSettings.Read still gets its profile (User.Read alone).
        let both = call.session(&["User.Read", ZONE_SCOPE]);
        let profile = match ctx.provider.graph_token(caller, both.scopes(), None).await {
            Err(OboError::ConsentRequired { .. }) => {
                notes.push(format!(
                    "the time zone and working hours need the {ZONE_SCOPE} permission, which your \
                     organization has not granted to the connector"
                ));
                None
            }
            _ => Some(both),
        };
        let session = match &profile {
            Some(s) => s.clone(),
            None => call.session(&["User.Read"]),
        };
        let req = GraphRequest::get(GraphPath::fixed("/me")).select(&[
            "displayName",
            "userPrincipalName",
            "mail",
        ]);
        let user = session.get_json::<model::User>(&req).await?.body;
        let mut time_zone = None;
        let mut hours = None;
        let key = crate::graph::MailboxKey::from(caller);
        let cached = match &profile {
            Some(_) => ctx.settings.get(key, ctx.clock.now()).await,
            None => None,
        };
        if let Some(hit) = cached {
            time_zone = hit.settings.time_zone.clone();
            hours = hit.settings.working_hours.as_ref().and_then(working_hours);
        } else if let Some(settings) = &profile {
            let req =
                GraphRequest::get(GraphPath::fixed("/me/mailboxSettings")).select(SETTINGS_SELECT);
            match settings.get_json::<MailboxSettings>(&req).await {
                Ok(r) => {
                    let entry = ctx.settings.insert(key, r.body, ctx.clock.now()).await;
                    time_zone = entry.settings.time_zone.clone();
                    hours = entry.settings.working_hours.as_ref().and_then(working_hours);
                }
                Err(e) if e.claims_challenge().is_some() => return Err(e),
                Err(e) => {
                    notes.push(format!("the mailbox settings could not be read ({})", e.code()))
                }
            }
        }
        let zone = time_zone.as_deref().map(|z| MailboxZone::resolve(Some(z)));
        notes.extend(zone.as_ref().and_then(|z| z.note.clone()));
        let policy = ctx.policy.current();
        let allowed_tools = match policy.enabled_tenant(&caller.tenant_id).map(|t| t.tools.clone())
        {
            Some(crate::policy::Allow::Only(set)) => set.into_iter().collect(),
            _ => vec![crate::policy::ANY.to_owned()],
        };
        let mut listed: Vec<&str> = super::ALL
            .iter()
            .map(|t| t.name)
            .filter(|n| policy.tool_allowed(&caller.tenant_id, n))
            .collect();
        drop(policy);
        listed.sort_unstable();
        let available_tools =
            access::granted_tools(ctx, caller, &listed).await.map(|s| s.into_iter().collect());
        if available_tools.is_none() {
            notes.push("the granted permissions could not be checked just now".into());
        }
        Ok::<_, ToolError>(GetMeResult {
            tenant_id: caller.tenant_id.to_string(),
            user_id: caller.object_id.to_string(),
            display_name: user.display_name.or_else(|| caller.display_name.clone()),
            user_principal_name: user.user_principal_name,
            mail: user.mail,
            time_zone,
            time_zone_iana: zone.map(|z| z.iana().to_owned()),
            working_hours: hours,
            allowed_tools,
            available_tools,
            notes,
        })
    })
    .await
}
