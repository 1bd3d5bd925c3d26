//! The one tool-call pipeline every tool (and MCP `resources/read`) goes through.
//!
//! # Design
//! A tool is a [`Tool`] descriptor (name, Graph scope sets, the item kinds its policy switch
//! governs, title and description), an argument type ([`ToolArgs`]: parsed and validated before
//! anything else), a result type ([`Answer`]: one typed value, shaped once into text and
//! structured content) and a body. [`ToolContext::run`] does the rest, in this order:
//!
//! 1. open the call's audit record (a call dropped unfinished records itself as `cancelled` or
//!    `timeout`);
//! 2. validate the arguments ([`ToolArgs::validate`]) — no token, no Graph request yet;
//! 3. check the tenant policy for the tool;
//! 4. run the body with a [`Scope`]: sessions it opens ([`Scope::open`], [`Scope::session`])
//!    record their Graph request ids in the call's [`RequestLog`];
//! 5. map a failure once ([`ToolError::settle`]: audit outcome, status, client message, claims
//!    challenge), shape a success once ([`Answer::into_result`]);
//! 6. write the one audit record and answer.
//!
//! Tool bodies return `Result<R, ToolError>` and never write audit records, status codes or
//! client messages themselves, so every failure kind is audited and answered alike for every
//! tool.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rmcp::{
    ErrorData as McpError,
    handler::server::{
        common::FromContextPart, router::tool::ToolRoute, tool::ToolCallContext,
        wrapper::Parameters,
    },
    model::{CallToolResult, ContentBlock, ToolAnnotations},
};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

use super::{Authenticated, Connector, ToolContext, access, mailbox::MailboxZone};
use crate::{
    audit::{AuditEvent, OboUse, Outcome, RequestTrace},
    domain::uri::ResourceKind,
    domain::{Caller, ScopeSet},
    graph::{Download, GraphError, GraphFailure, GraphPath, GraphRequest, GraphResponse},
    metrics::names,
    obo::OboError,
};

use super::session::{RequestLog, Session, SessionError};

/// What the connector knows about one tool: the single source of its name, its Graph
/// permissions (`permissions::TOOL_NEEDS`, `tools/list` filtering), the kinds of item its policy
/// switch governs, and what `tools/list` shows.
#[derive(Debug)]
pub struct Tool {
    pub name: &'static str,
    /// The human-readable title (`annotations.title`).
    pub title: &'static str,
    pub description: &'static str,
    /// The OBO scope sets the tool calls Graph with. It is offered when one of them is granted.
    pub needs: &'static [&'static [&'static str]],
    /// Kinds of item `read_resource` reads that this tool's policy switch also governs (a
    /// tenant that switches off mail search cannot read mail either).
    pub governs: &'static [ResourceKind],
    /// The message for a Graph `Forbidden` (403), when the tool can say more than Graph's
    /// generic refusal (which permission, why a narrower grant cannot serve it).
    pub forbidden_message: Option<fn(&GraphFailure) -> String>,
}

/// A tool's arguments: parsed by serde (unknown fields refused), then validated into
/// `Valid` before any token or Graph work.
pub trait ToolArgs: Send + 'static {
    /// The arguments once every field is checked.
    type Valid: Send;
    /// Checks every field; a refusal names the field and what is valid.
    fn validate(self, checks: &Checks) -> Result<Self::Valid, McpError>;
    /// The free text of the call, written to the audit record when the deployment allows it.
    fn query_text(&self) -> Option<&str> {
        None
    }
    /// Whether `tools/list` shows the empty input schema (a tool without arguments).
    const NO_ARGUMENTS: bool = false;
}

/// What validation may depend on besides the arguments: the tenant's page-size cap, the time.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// The tenant policy's `max_results` (1 for a tenant the policy does not enable: step 3
    /// refuses it anyway).
    pub max_results: u32,
    pub now: DateTime<Utc>,
}

impl Checks {
    /// The page size a call asked for (`None`: `default`), capped by the tenant's
    /// `max_results`. Requests outside `1..=max` are passed through for the tool's own check to
    /// refuse with its message.
    pub fn capped_limit(&self, requested: Option<u32>, default: u32, max: u32) -> Option<u32> {
        match requested {
            Some(n) if (1..=max).contains(&n) => Some(n.min(self.max_results)),
            Some(n) => Some(n),
            None if default > self.max_results => Some(self.max_results),
            None => None,
        }
    }
}

/// A tool's successful result: one typed value, the source of both the structured content and
/// the text block.
pub trait Answer: Serialize + JsonSchema + Send + Sized + 'static {
    /// The concise text next to the structured content.
    fn text(&self) -> String;
    /// Whether the value carries Microsoft 365 content other people wrote (fenced and flagged
    /// as untrusted, `security.md` J2).
    const UNTRUSTED: bool = true;

    /// The MCP result: structured content and text, each produced once.
    fn into_result(self) -> CallToolResult {
        let text = self.text();
        let structured = serde_json::to_value(&self).unwrap_or_else(|_| serde_json::json!({}));
        if Self::UNTRUSTED {
            super::shaping::untrusted(text, structured)
        } else {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(structured);
            result
        }
    }
}

/// Why a tool call did not succeed. [`ToolError::settle`] is the one mapping to the audit
/// outcome, the status, the client's message and the claims challenge.
#[derive(Debug)]
pub enum ToolError {
    /// A refused argument: a JSON-RPC `invalid_params` error naming the field.
    InvalidArgs(McpError),
    /// The tenant policy does not allow this tool.
    PolicyRefused(String),
    /// The connector refuses this item (policy site/drive/kind, size, format), with the reason.
    Refused(String),
    /// Graph answered with an error (or could not be reached).
    Graph(GraphFailure),
    /// No Graph token for `scopes`: consent missing, Conditional Access, Entra unreachable.
    Token { error: OboError, scopes: ScopeSet },
}

impl From<McpError> for ToolError {
    fn from(e: McpError) -> Self {
        Self::InvalidArgs(e)
    }
}

/// A settled failure: what the audit record says and what the client is told.
#[derive(Debug)]
pub struct Settled {
    pub outcome: Outcome,
    pub status: u16,
    /// The error's short code (`notFound`, `consent_required`…), for protocol errors' data.
    pub code: String,
    pub reply: Reply,
}

/// What the client is told about a failure.
#[derive(Debug)]
pub enum Reply {
    /// A JSON-RPC error (refused arguments).
    Protocol(McpError),
    /// An `isError` tool result with this text.
    Message(String),
}

impl ToolError {
    /// The audit outcome and status of this failure, for every tool alike.
    pub fn outcome(&self) -> (Outcome, u16) {
        match self {
            Self::InvalidArgs(_) => (Outcome::InvalidParams, 400),
            Self::PolicyRefused(_) => (Outcome::PolicyRefused, 403),
            Self::Refused(_) => (Outcome::Refused, 403),
            Self::Token { error, .. } => token_outcome(error),
            Self::Graph(f) => match &f.error {
                GraphError::ClaimsChallenge { .. } => (Outcome::ClaimsChallenge, 401),
                GraphError::NotFound => (Outcome::NotFound, 404),
                GraphError::Forbidden { .. } => (Outcome::GraphError, 403),
                GraphError::Throttled { .. } => (Outcome::GraphError, 429),
                GraphError::TooLarge => (Outcome::GraphError, 413),
                GraphError::Timeout => (Outcome::GraphError, 504),
                _ => (Outcome::GraphError, 502),
            },
        }
    }

    /// The claims an MCP client must sign in again with, when this failure is a challenge.
    pub fn claims_challenge(&self) -> Option<String> {
        match self {
            Self::Graph(f) => f.claims_challenge(),
            Self::Token { error, .. } => error.claims_challenge(),
            _ => None,
        }
    }

    /// The one mapping of a failure: the outcome and status ([`Self::outcome`]), the client's
    /// message (a missing permission is named, per scope), and the claims challenge handed to
    /// the middleware (HTTP 401 `insufficient_claims`, mcp.md §4.9).
    pub async fn settle(self, scope: &Scope<'_>) -> Settled {
        let (outcome, status) = self.outcome();
        let code = self.code();
        if let Some(claims) = self.claims_challenge() {
            scope.auth.challenge.request_claims(claims);
        }
        let reply = match self {
            Self::InvalidArgs(e) => Reply::Protocol(e),
            Self::PolicyRefused(message) | Self::Refused(message) => Reply::Message(message),
            Self::Token { error: OboError::ConsentRequired { consent_url, .. }, scopes } => {
                let missing = access::missing_scopes(scope.ctx, scope.caller(), &scopes).await;
                Reply::Message(access::missing_permission_message(
                    scope.tool.name,
                    &missing,
                    &consent_url,
                ))
            }
            Self::Token { error, .. } => Reply::Message(error.user_message()),
            Self::Graph(f) => match (&f.error, scope.tool.forbidden_message) {
                (GraphError::Forbidden { .. }, Some(message)) => Reply::Message(message(&f)),
                _ => Reply::Message(f.user_message()),
            },
        };
        Settled { outcome, status, code, reply }
    }
}

fn token_outcome(error: &OboError) -> (Outcome, u16) {
    match error {
        e if e.claims_challenge().is_some() => (Outcome::ClaimsChallenge, 401),
        OboError::ConsentRequired { .. } => (Outcome::GraphError, 403),
        _ => (Outcome::GraphError, 502),
    }
}

/// What a tool body sees of its call: the context, the caller, the tool, and the call's
/// request log (every session opened here records into it).
#[derive(Clone)]
pub struct Scope<'a> {
    pub ctx: &'a ToolContext,
    pub auth: &'a Authenticated,
    pub tool: &'static Tool,
    requests: RequestLog,
}

impl<'a> Scope<'a> {
    pub fn caller(&self) -> &'a Caller {
        &self.auth.caller
    }

    /// A Graph session acting as the caller with exactly `scopes`, recording into this call.
    pub fn session(&self, scopes: &[&str]) -> CallSession {
        CallSession(self.ctx.session(self.caller(), scopes).recording(self.requests.clone()))
    }

    /// Opens the tool's session with `scopes` and reads the mailbox time zone. The session's
    /// token is obtained first (a cache hit after the first call), so a token failure ends the
    /// call before any Graph request; the time zone never fails the call.
    pub async fn open(&self, scopes: &[&str]) -> Result<(CallSession, MailboxZone), ToolError> {
        access::open(self, scopes).await
    }

    /// The caller's mailbox time zone (cached per user; UTC with a note when unreadable).
    pub async fn zone(&self) -> MailboxZone {
        super::mailbox::mailbox_zone(self).await
    }
}

/// A Graph session of one call: failures come back as [`ToolError`] (a token failure names the
/// session's scopes, for the missing-permission message), request ids go to the call's log.
/// Its `fail` is the one place a [`SessionError`] becomes a [`ToolError`].
#[derive(Clone, Debug)]
pub struct CallSession(pub Session);

impl CallSession {
    pub fn scopes(&self) -> &ScopeSet {
        &self.0.scopes
    }

    fn fail(&self, error: SessionError) -> ToolError {
        match error {
            SessionError::Token(error) => ToolError::Token { error, scopes: self.0.scopes.clone() },
            SessionError::Graph(failure) => ToolError::Graph(failure),
        }
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        req: &GraphRequest,
    ) -> Result<GraphResponse<T>, ToolError> {
        self.0.get_json(req).await.map_err(|f| self.fail(f))
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        req: &GraphRequest,
    ) -> Result<GraphResponse<T>, ToolError> {
        self.0.post_json(req).await.map_err(|f| self.fail(f))
    }

    pub async fn download(&self, path: &GraphPath) -> Result<GraphResponse<Download>, ToolError> {
        self.0.download(path).await.map_err(|f| self.fail(f))
    }

    pub async fn get_all_pages(
        &self,
        req: &GraphRequest,
        max_items: usize,
    ) -> Result<GraphResponse<Vec<serde_json::Value>>, ToolError> {
        self.0.get_all_pages(req, max_items).await.map_err(|f| self.fail(f))
    }
}

impl ToolError {
    /// The message a user is shown for this failure where it does not end the call (a source
    /// that could not be read).
    pub fn user_message(&self) -> String {
        match self {
            Self::InvalidArgs(e) => e.message.to_string(),
            Self::PolicyRefused(m) | Self::Refused(m) => m.clone(),
            Self::Graph(f) => f.user_message(),
            Self::Token { error, .. } => error.user_message(),
        }
    }

    /// The short error code (for notes).
    pub fn code(&self) -> String {
        match self {
            Self::Graph(f) => f.error.code(),
            Self::Token { error, .. } => SessionError::Token(error.clone()).code(),
            Self::InvalidArgs(_) => "invalid_params".into(),
            Self::PolicyRefused(_) | Self::Refused(_) => "refused".into(),
        }
    }
}

/// The audit record of one call in progress. Dropped unfinished (client gone, request
/// timeout), it still writes its record: `cancelled` or `timeout`.
struct CallRecord<'a> {
    ctx: &'a ToolContext,
    caller: &'a Caller,
    tool: &'static str,
    arguments: BTreeMap<String, &'static str>,
    query_text: Option<String>,
    started: Instant,
    requests: RequestLog,
    trace: Option<Arc<RequestTrace>>,
    finished: bool,
}

impl CallRecord<'_> {
    /// Finishes the call: its audit record is committed before the answer leaves (by
    /// [`Connector::call_tool`] or `read_resource`, inside the request's trace).
    fn finish(mut self, outcome: Outcome, status: u16) {
        self.finished = true;
        let event = self.record(outcome, status);
        match &self.trace {
            Some(trace) => trace.push(event),
            // Outside a request scope (never from rmcp): nobody can wait for the commit.
            None => self.ctx.audit.record_detached(event),
        }
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
            graph_request_ids: self.requests.take(),
            outcome,
            status,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Drop for CallRecord<'_> {
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

/// The audit shape of a call's arguments (names and JSON types, never values), as the route
/// saw them before parsing.
#[derive(Debug, Clone, Default)]
pub struct ArgumentShape(pub BTreeMap<String, &'static str>);

impl ToolContext {
    /// Runs one tool call through the pipeline (see the module docs) and settles it: the
    /// success or the failure, with the call's audit record pushed to the request's trace.
    pub async fn execute<'a, A, R, F, Fut>(
        &'a self,
        auth: &'a Authenticated,
        tool: &'static Tool,
        shape: ArgumentShape,
        args: A,
        body: F,
    ) -> Result<R, Settled>
    where
        A: ToolArgs,
        F: FnOnce(Scope<'a>, A::Valid) -> Fut,
        Fut: Future<Output = Result<R, ToolError>>,
    {
        let trace = RequestTrace::current();
        if let Some(t) = &trace {
            t.call_begun();
        }
        let requests = RequestLog::new();
        let record = CallRecord {
            ctx: self,
            caller: &auth.caller,
            tool: tool.name,
            arguments: shape.0,
            query_text: args.query_text().filter(|_| self.audit_query_text).map(str::to_owned),
            started: Instant::now(),
            requests: requests.clone(),
            trace,
            finished: false,
        };
        let scope = Scope { ctx: self, auth, tool, requests };
        let policy = self.policy.current();
        let checks = Checks {
            max_results: policy.enabled_tenant(&auth.caller.tenant_id).map_or(1, |t| t.max_results),
            now: self.clock.now(),
        };
        let outcome = match args.validate(&checks) {
            Err(e) => Err(ToolError::InvalidArgs(e)),
            Ok(_) if !policy.tool_allowed(&auth.caller.tenant_id, tool.name) => {
                Err(ToolError::PolicyRefused(format!(
                    "The tool `{}` is not enabled for your organization. Ask your administrator \
                     to allow it.",
                    tool.name
                )))
            }
            Ok(valid) => {
                drop(policy);
                body(scope.clone(), valid).await
            }
        };
        match outcome {
            Ok(value) => {
                record.finish(Outcome::Ok, 200);
                Ok(value)
            }
            Err(error) => {
                let settled = error.settle(&scope).await;
                record.finish(settled.outcome, settled.status);
                Err(settled)
            }
        }
    }

    /// [`Self::execute`] answered as an MCP tool result.
    pub async fn run<'a, A, R, F, Fut>(
        &'a self,
        auth: &'a Authenticated,
        tool: &'static Tool,
        shape: ArgumentShape,
        args: A,
        body: F,
    ) -> Result<CallToolResult, McpError>
    where
        A: ToolArgs,
        R: Answer,
        F: FnOnce(Scope<'a>, A::Valid) -> Fut,
        Fut: Future<Output = Result<R, ToolError>>,
    {
        match self.execute(auth, tool, shape, args, body).await {
            Ok(value) => Ok(value.into_result()),
            Err(Settled { reply: Reply::Protocol(e), .. }) => Err(e),
            Err(Settled { reply: Reply::Message(text), .. }) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(text)]))
            }
        }
    }
}

/// A tool's handler as the router calls it: the connector, the caller, the audit shape of the
/// arguments and the parsed arguments.
pub type Handler<A> = fn(
    Connector,
    Authenticated,
    ArgumentShape,
    A,
) -> BoxFuture<'static, Result<CallToolResult, McpError>>;

/// The router entry of a tool whose handler is the pipeline and `$body` alone:
/// `body_route!(TOOL, ArgsType, ResultType, body)`. The tool's descriptor is named once; the
/// closure captures nothing, so it is the plain function [`route`] takes.
macro_rules! body_route {
    ($tool:path, $args:ty, $result:ty, $body:path) => {
        $crate::tools::pipeline::route::<$args, $result>(&$tool, |connector, auth, shape, args| {
            futures::FutureExt::boxed(async move {
                connector.context().run(&auth, &$tool, shape, args, $body).await
            })
        })
    };
}
pub(crate) use body_route;

/// The router entry of `tool`: its `tools/list` definition (from the descriptor, the argument
/// type's schema and the answer type's output schema) and its handler.
pub fn route<A, R>(tool: &'static Tool, handler: Handler<A>) -> ToolRoute<Connector>
where
    A: ToolArgs + DeserializeOwned + JsonSchema,
    R: Answer,
{
    use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input};
    let input = match A::NO_ARGUMENTS {
        true => schema_for_empty_input(),
        false => schema_for_input::<A>().unwrap_or_else(|e| {
            // A schema that does not describe an object: a bug caught by every test run.
            tracing::error!(tool = tool.name, error = %e, "Tool input schema is not an object");
            schema_for_empty_input()
        }),
    };
    let attr = rmcp::model::Tool::new_with_raw(tool.name, Some(tool.description.into()), input)
        .with_raw_output_schema(rmcp::handler::server::tool::schema_for_output::<R>())
        .with_annotations(ToolAnnotations::from_raw(
            Some(tool.title.into()),
            Some(true),
            Some(false),
            Some(true),
            Some(true),
        ));
    ToolRoute::new_dyn(attr, move |mut tcc: ToolCallContext<'_, Connector>| {
        let connector = tcc.service.clone();
        let auth = Authenticated::from_context_part(&mut tcc);
        let shape = ArgumentShape(crate::audit::argument_shape(tcc.arguments.as_ref()));
        let args = Parameters::<A>::from_context_part(&mut tcc);
        Box::pin(async move {
            let auth = auth?;
            let Parameters(args) = args?;
            handler(connector, auth, shape, args).await.map(Into::into)
        })
    })
}
