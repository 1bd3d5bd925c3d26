//! The MCP tool surface: [`Connector`], the rmcp `ServerHandler`.
//!
//! Each tool module contributes its own `#[tool_router(router = …)]`; [`Connector::new`] adds
//! them together with `+`. Every tool reads the validated caller through [`Authenticated`]
//! (the auth middleware put it in the HTTP request extensions), checks the tenant policy, and
//! writes one audit record before answering (fail closed: no record, no answer). The record is
//! committed by [`Connector::call_tool`] inside the request's [`RequestTrace`]; a call dropped
//! unfinished records itself as `cancelled` or `timeout`.
//!
//! # Layout
//! * [`me`] — `get_me`.
//! * [`permissions`] — the Graph permissions each tool needs, the admin-consent URL.
//! * [`access`] — which tools the granted permissions allow; each call's session and time zone.

pub mod access;
pub mod availability;
pub mod calendar;
pub mod chat;
pub mod cursor;
pub mod kql;
pub mod mail;
pub mod me;
pub mod odata;
pub mod permissions;
pub mod read;
pub mod resources;
pub mod schema;
pub mod shaping;
pub mod sharepoint;
pub mod timezone;
pub mod uri;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

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
    audit::{AuditEvent, AuditLog, OboUse, Outcome, RequestTrace, argument_shape},
    auth::ChallengeSlot,
    clock::Clock,
    domain::{Caller, ScopeSet},
    graph::{GraphClient, GraphFailure, Session},
    metrics::{Metrics, names},
    obo::TokenProvider,
    policy::PolicyStore,
};

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
    pub settings: timezone::SettingsCache,
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

/// An in-progress tool call: admitted by policy, finished by an audit record. Dropped
/// unfinished (client gone, request timeout), it still writes its record: `cancelled` or
/// `timeout`.
pub struct Call<'a> {
    ctx: &'a ToolContext,
    caller: &'a Caller,
    tool: &'static str,
    arguments: BTreeMap<String, &'static str>,
    query_text: Option<String>,
    started: Instant,
    pub graph_request_ids: Vec<String>,
    /// The HTTP request this call serves (request id, peer, Graph token use).
    trace: Option<Arc<RequestTrace>>,
    finished: bool,
}

/// Text of the tool error returned when the audit record cannot be written.
pub const AUDIT_FAILED: &str =
    "The audit log cannot be written, so the call was not completed. Try again later.";

impl ToolContext {
    /// Starts a call: refuses it (a tool error, audited) when the tenant policy does not allow
    /// this tool for the caller's tenant now.
    pub fn begin<'a>(
        &'a self,
        caller: &'a Caller,
        tool: &'static str,
        arguments: BTreeMap<String, &'static str>,
        query_text: Option<&str>,
    ) -> Result<Call<'a>, String> {
        let trace = RequestTrace::current();
        if let Some(t) = &trace {
            t.call_begun();
        }
        let call = Call {
            ctx: self,
            caller,
            tool,
            arguments,
            query_text: query_text.filter(|_| self.audit_query_text).map(str::to_owned),
            started: Instant::now(),
            graph_request_ids: Vec::new(),
            trace,
            finished: false,
        };
        if !self.policy.current().tool_allowed(&caller.tenant_id, tool) {
            call.finish("policy_refused", 403)?;
            return Err(format!(
                "The tool `{tool}` is not enabled for your organization. Ask your administrator to allow it."
            ));
        }
        Ok(call)
    }
}

impl ToolContext {
    /// The page size a call asked for (`None`: the tool's `default`), capped by the tenant's
    /// `max_results`. Requests outside `1..=max` are passed through for the tool's own check to
    /// refuse with its message; `None` stays `None` when the default is within the cap.
    pub fn capped_limit(
        &self,
        caller: &Caller,
        requested: Option<u32>,
        default: u32,
        max: u32,
    ) -> Option<u32> {
        // A tenant the policy does not enable gets the smallest page; `begin` refuses it anyway.
        let cap =
            self.policy.current().enabled_tenant(&caller.tenant_id).map_or(1, |t| t.max_results);
        match requested {
            Some(n) if (1..=max).contains(&n) => Some(n.min(cap)),
            Some(n) => Some(n),
            None if default > cap => Some(cap),
            None => None,
        }
    }

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

/// Turns a Graph or OBO failure into the tool's error text; a claims challenge is also handed
/// to the middleware, which answers HTTP 401 `insufficient_claims` (mcp.md §4.9).
pub fn failure_message(failure: &GraphFailure, slot: &ChallengeSlot) -> String {
    if let Some(claims) = failure.claims_challenge() {
        slot.request_claims(claims);
    }
    failure.user_message()
}

impl Call<'_> {
    /// Finishes the call: its audit record is committed before the answer leaves (by
    /// [`Connector::call_tool`]; a failed commit turns the answer into [`AUDIT_FAILED`]).
    pub fn finish(mut self, outcome: impl Into<Outcome>, status: u16) -> Result<(), String> {
        self.finished = true;
        let outcome = outcome.into();
        let event = self.record(outcome, status);
        match &self.trace {
            Some(trace) => trace.push(event),
            // Outside a request scope (never from rmcp): nobody can wait for the commit.
            None => self.ctx.audit.record_detached(event),
        }
        Ok(())
    }

    fn record(&mut self, outcome: Outcome, status: u16) -> AuditEvent {
        let latency = self.started.elapsed();
        let label = outcome.as_str();
        self.ctx.metrics.inc(names::TOOL_CALLS, &[("tool", self.tool), ("outcome", label)]);
        self.ctx.metrics.observe(
            names::TOOL_LATENCY,
            &[("tool", self.tool)],
            latency.as_secs_f64(),
        );
        let (obo, obo_error) = self.trace.as_ref().map_or((OboUse::None, None), |t| t.obo());
        AuditEvent::ToolCall {
            tenant_id: self.caller.tenant_id,
            user_id: self.caller.object_id,
            client_id: self.caller.client_id.to_string(),
            token_id: self.caller.token_id.clone(),
            request_id: self.trace.as_ref().map(|t| t.request_id.clone()).unwrap_or_default(),
            peer: self.trace.as_ref().and_then(|t| t.peer),
            tool: self.tool.to_owned(),
            arguments: std::mem::take(&mut self.arguments),
            query_text: self.query_text.take(),
            obo,
            obo_error,
            graph_request_ids: std::mem::take(&mut self.graph_request_ids),
            outcome,
            status,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let outcome = self.trace.as_ref().map_or(Outcome::Cancelled, |t| t.abandoned_outcome());
        let status = if outcome == Outcome::Timeout { 504 } else { 499 };
        let event = self.record(outcome, status);
        self.ctx.audit.record_detached(event);
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
                let mut router = Self::me_router()
                    + Self::sharepoint_router()
                    + Self::read_router()
                    + Self::mail_router()
                    + Self::calendar_router()
                    + Self::availability_router()
                    + Self::chat_router();
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
