//! The MCP tool surface: [`Connector`], the rmcp `ServerHandler`.
//!
//! Every tool is a [`pipeline::Tool`] descriptor in [`ALL`] plus a handler; [`Connector::new`]
//! builds the router from them ([`pipeline::route`]). Every call goes through
//! [`ToolContext::run`]: arguments validated before any token or Graph work, the tenant policy,
//! the body, one failure mapping, one audit record before answering (fail closed: no record, no
//! answer). The record is committed by [`Connector::call_tool`] inside the request's
//! [`RequestTrace`]; a call dropped unfinished records itself as `cancelled` or `timeout`.
//!
//! # Layout
//! * [`pipeline`] — the descriptor, the pipeline, `ToolError` and its one mapping.
//! * [`session`] — the caller's Graph session: OBO token plus Graph client, the CAE/401
//!   evict-and-retry rules, the call's request log.
//! * one file (or folder) per tool: [`me`], [`sharepoint`] (two tools), [`mail`],
//!   [`calendar`], [`availability`], [`chat`], [`read`] (also `resources/read`, through
//!   [`resources`]).
//! * [`args`] — argument checks the searches share; dates and people parsed once.
//! * [`permissions`] — the Graph permissions each tool needs, the admin-consent URL.
//! * [`access`] — which tools the granted permissions allow; each call's session and time zone.
//! * [`mailbox`] — the caller's mailbox settings (time zone, working hours), cached briefly.
//! * [`shaping`] — pages, filters, budgets, the untrusted-content fence; [`cursor`], [`schema`].

pub mod access;
pub mod args;
pub mod availability;
pub mod calendar;
pub mod chat;
pub mod cursor;
pub mod mail;
pub mod mailbox;
pub mod me;
pub mod permissions;
pub mod pipeline;
pub mod read;
pub mod resources;
pub mod schema;
pub mod session;
pub mod shaping;
pub mod sharepoint;
pub mod slots;

use std::sync::Arc;

use rmcp::{
    ErrorData as McpError, ServerHandler,
    handler::server::{
        common::{AsRequestContext, FromContextPart},
        router::tool::ToolRouter,
    },
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool_handler,
};

use crate::{
    audit::{AuditEvent, AuditLog, Outcome, RequestTrace, argument_shape},
    auth::ChallengeSlot,
    clock::Clock,
    domain::{Caller, ScopeSet},
    graph::GraphClient,
    metrics::Metrics,
    obo::TokenProvider,
    policy::PolicyStore,
};
use session::Session;

/// Every tool, in `tools/list` order of registration: the single list the router, the
/// permissions table and `tools/list` filtering are built from.
pub const ALL: &[&pipeline::Tool] = &[
    &me::GET_ME,
    &sharepoint::SHAREPOINT_SEARCH,
    &sharepoint::SHAREPOINT_FOLDER_SEARCH,
    &read::READ_RESOURCE,
    &mail::OUTLOOK_EMAIL_SEARCH,
    &calendar::OUTLOOK_CALENDAR_SEARCH,
    &availability::FIND_MEETING_AVAILABILITY,
    &chat::CHAT_MESSAGE_SEARCH,
];

/// What tools share: policy, audit, metrics, the clock.
pub struct ToolContext {
    /// On-Behalf-Of tokens for Graph.
    pub provider: TokenProvider,
    /// The read-only Graph client.
    pub graph: GraphClient,
    pub policy: Arc<PolicyStore>,
    pub audit: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Whether query text may be written to tool-call audit records.
    pub audit_query_text: bool,
    /// Seals paging cursors (`tools.cursor_key`, else random per process).
    pub cursor: cursor::CursorKey,
    /// Mailbox settings (time zone, working hours) per (tenant, user), briefly.
    pub settings: mailbox::SettingsCache,
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext").finish_non_exhaustive()
    }
}

/// The validated caller and the request's claims-challenge slot, read from the HTTP request
/// parts rmcp keeps in its context (mcp.md §4.6: rmcp's own `Extension<T>` cannot see them).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub caller: Caller,
    pub challenge: ChallengeSlot,
}

impl<C: AsRequestContext> FromContextPart<C> for Authenticated {
    fn from_context_part(context: &mut C) -> Result<Self, McpError> {
        let parts = context.as_request_context().extensions.get::<http::request::Parts>();
        let caller = parts.and_then(|p| p.extensions.get::<Caller>().cloned());
        let challenge =
            parts.and_then(|p| p.extensions.get::<ChallengeSlot>().cloned()).unwrap_or_default();
        caller.map(|caller| Self { caller, challenge }).ok_or_else(|| {
            McpError::internal_error("the request carries no authenticated caller", None)
        })
    }
}

/// Text of the tool error returned when the audit record cannot be written.
pub const AUDIT_FAILED: &str =
    "The audit log cannot be written, so the call was not completed. Try again later.";

impl ToolContext {
    /// A Graph session acting as `caller` with exactly `scopes` (short names).
    pub fn session(&self, caller: &Caller, scopes: &[&str]) -> Session {
        Session::new(
            self.provider.clone(),
            self.graph.clone(),
            caller.clone(),
            ScopeSet::from_iter(scopes.iter().copied()),
        )
    }
}

/// The audit trace the auth middleware attached to this MCP request.
fn request_trace(context: &rmcp::service::RequestContext<rmcp::RoleServer>) -> Arc<RequestTrace> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Arc<RequestTrace>>().cloned())
        .unwrap_or_else(|| Arc::new(RequestTrace::new(RequestTrace::new_request_id(), None, None)))
}

/// The MCP server handler. Cheap to clone; built per request by rmcp in stateless mode.
#[derive(Clone)]
pub struct Connector {
    ctx: Arc<ToolContext>,
    tool_router: Arc<ToolRouter<Self>>,
}

/// The tool router (routes, names, JSON schemas), built once per process: stateless mode makes
/// a [`Connector`] per request, and rebuilding the schemas each time was a measurable share of
/// a call's CPU. It holds no per-caller state; `tools/list` still filters per caller.
static TOOL_ROUTER: std::sync::OnceLock<Arc<ToolRouter<Connector>>> = std::sync::OnceLock::new();

impl Connector {
    pub fn new(ctx: Arc<ToolContext>) -> Self {
        let tool_router = TOOL_ROUTER
            .get_or_init(|| {
                let mut router = ToolRouter::new();
                for route in [
                    me::route(),
                    sharepoint::documents_route(),
                    sharepoint::folders_route(),
                    read::route(),
                    mail::route(),
                    calendar::route(),
                    availability::route(),
                    chat::route(),
                ] {
                    router.add_route(route);
                }
                for route in router.map.values_mut() {
                    schema::make_portable(Arc::make_mut(&mut route.attr.input_schema));
                    if let Some(output) = route.attr.output_schema.as_mut() {
                        schema::make_portable(Arc::make_mut(output));
                    }
                }
                Arc::new(router)
            })
            .clone();
        Self { ctx, tool_router }
    }

    pub fn context(&self) -> &ToolContext {
        &self.ctx
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Connector {
    /// Every call runs inside its request's audit trace and is answered only once its record
    /// is committed. A call the client abandons is cut off (its record says `cancelled`), and
    /// arguments refused before the tool ran are audited here.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        let trace = request_trace(&context);
        let cancelled = context.ct.clone();
        let known_tool = self.tool_router.has_route(request.name.as_ref());
        let tool = if known_tool { request.name.to_string() } else { "(unknown)".to_owned() };
        let arguments = argument_shape(request.arguments.as_ref());
        let caller = resources::authenticated(&context).ok().map(|a| a.caller);
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        let result = trace
            .clone()
            .scope(async {
                tokio::select! {
                    result = self.tool_router.call(tcc) => Some(result),
                    () = cancelled.cancelled() => None,
                }
            })
            .await;
        let Some(result) = result else {
            // Nobody waits for the answer, but what the call did before (an OBO exchange) is
            // still recorded.
            if let Err(e) = trace.commit(&self.ctx.audit).await {
                tracing::error!(error = %e, "Audit write failed for a cancelled call");
            }
            return Err(McpError::internal_error("the request was cancelled", None));
        };
        if trace.calls_begun() == 0
            && let Some(caller) = &caller
        {
            // Refused while parsing the arguments (rmcp answers those as tool errors, or as
            // protocol errors for unknown tools): the tool never began its call.
            let refused = match &result {
                Err(_) => true,
                Ok(rmcp::model::CallToolResponse::Complete(r)) => r.is_error == Some(true),
                Ok(_) => false,
            };
            let (outcome, status) =
                if refused { (Outcome::InvalidParams, 400) } else { (Outcome::Ok, 200) };
            let (obo, obo_error) = trace.obo();
            trace.push(AuditEvent::ToolCall {
                tenant_id: caller.tenant_id,
                user_id: caller.object_id,
                client_id: caller.client_id.to_string(),
                token_id: caller.token_id.clone(),
                request_id: trace.request_id.clone(),
                peer: trace.peer,
                tool,
                arguments,
                query_text: None,
                obo,
                obo_error,
                graph_request_ids: Vec::new(),
                outcome,
                status,
                latency_ms: 0,
            });
        }
        if let Err(e) = trace.commit(&self.ctx.audit).await {
            tracing::error!(error = %e, "Audit write failed; failing the call");
            return Ok(rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                AUDIT_FAILED,
            )])
            .into());
        }
        result
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("m365-connector", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Read-only Microsoft 365 tools acting as the signed-in user. Nothing is ever changed.",
            )
    }

    /// Only the tools the tenant policy allows and the caller's granted Graph permissions
    /// serve (R01–R05, R07, R08). The answer depends on who asks, so caches must keep it
    /// private (mcp.md §4.4).
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, McpError> {
        let auth = resources::authenticated(&context)?;
        let supports_cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let policy = self.ctx.policy.current();
        let mut tools: Vec<rmcp::model::Tool> = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| policy.tool_allowed(&auth.caller.tenant_id, &t.name))
            .collect();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        let trace = request_trace(&context);
        let granted =
            trace.clone().scope(access::granted_tools(&self.ctx, &auth.caller, &names)).await;
        // Checking the grants may have exchanged a token: its record goes down first.
        if let Err(e) = trace.commit(&self.ctx.audit).await {
            tracing::error!(error = %e, "Audit write failed; failing tools/list");
            return Err(McpError::internal_error(AUDIT_FAILED, None));
        }
        if let Some(granted) = granted {
            tools.retain(|t| granted.contains(t.name.as_ref()));
        }
        Ok(rmcp::model::ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: supports_cache_hints.then_some(0),
            cache_scope: supports_cache_hints.then_some(rmcp::model::CacheScope::Private),
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, McpError> {
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, McpError> {
        let auth = resources::authenticated(&context)?;
        let trace = request_trace(&context);
        let result = trace.clone().scope(resources::read(&self.ctx, &auth, &request.uri)).await;
        if let Err(e) = trace.commit(&self.ctx.audit).await {
            tracing::error!(error = %e, "Audit write failed; failing the read");
            return Err(McpError::internal_error(AUDIT_FAILED, None));
        }
        result.map(Into::into)
    }
}
