//! A caller's Graph session: OBO tokens plus the Graph client, with the CAE and 401 rules
//! (`entra.md` §9.4, `security.md` S-EXP-3). It lives in the call layer because it joins the
//! two lower layers: the Graph client takes a plain bearer token and knows nothing of OBO.
//!
//! * 401/403 with `insufficient_claims`: evict the cached token, exchange again with the
//!   challenge's claims, retry once. A second challenge, or an exchange that itself needs
//!   interaction, is returned carrying the claims, for the MCP client to resolve.
//! * 401 without claims: evict, exchange again, retry once; a second 401 is an error.
//!
//! Every request a session sends, answered or failed, leaves Graph's `request-id` in the
//! session's [`RequestLog`]: the audit record of the call lists them without any code passing
//! ids along by hand.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use serde::de::DeserializeOwned;

use crate::{
    domain::{Caller, ScopeSet},
    graph::{
        BearerToken, Download, GraphClient, GraphError, GraphFailure, GraphPath, GraphRequest,
        GraphResponse, MailboxKey,
    },
    obo::{OboError, TokenProvider},
};

/// Why a session call failed: Graph's answer, or no Graph token to send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Graph answered with an error (or could not be reached).
    #[error(transparent)]
    Graph(GraphFailure),
    /// No Graph token could be obtained.
    #[error("token exchange failed: {0}")]
    Token(OboError),
}

impl SessionError {
    /// The claims an MCP client must sign in again with, when this failure is a challenge.
    pub fn claims_challenge(&self) -> Option<String> {
        match self {
            Self::Graph(f) => f.claims_challenge(),
            Self::Token(e) => e.claims_challenge(),
        }
    }

    /// A short stable code for audit records and notes.
    pub fn code(&self) -> String {
        match self {
            Self::Graph(f) => f.error.code(),
            Self::Token(e) => format!("obo:{}", e.code()),
        }
    }

    /// A message safe to show the user.
    pub fn user_message(&self) -> String {
        match self {
            Self::Graph(f) => f.user_message(),
            Self::Token(e) => e.user_message(),
        }
    }
}

impl From<GraphFailure> for SessionError {
    fn from(failure: GraphFailure) -> Self {
        Self::Graph(failure)
    }
}

/// Graph `request-id`s of one tool call, in the order their answers arrived. Shared by every
/// session the call opens (clones share one list).
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, id: Option<&String>) {
        if let Some(id) = id
            && let Ok(mut ids) = self.0.lock()
        {
            ids.push(id.clone());
        }
    }

    /// The ids recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<String> {
        self.0.lock().map(|mut ids| std::mem::take(&mut *ids)).unwrap_or_default()
    }
}

/// Everything a tool needs to call Graph as the caller.
#[derive(Clone, Debug)]
pub struct Session {
    pub provider: TokenProvider,
    pub client: GraphClient,
    pub caller: Caller,
    /// The Graph scopes this tool needs (short names, e.g. `Mail.Read`).
    pub scopes: ScopeSet,
    /// Where the request ids of this session's requests go.
    pub requests: RequestLog,
}

impl Session {
    pub fn new(
        provider: TokenProvider,
        client: GraphClient,
        caller: Caller,
        scopes: ScopeSet,
    ) -> Self {
        Self { provider, client, caller, scopes, requests: RequestLog::new() }
    }

    /// The same session recording its request ids into `log` (the call's).
    pub fn recording(self, log: RequestLog) -> Self {
        Self { requests: log, ..self }
    }

    fn mailbox(&self) -> MailboxKey {
        MailboxKey::from(&self.caller)
    }

    /// `GET` (or an allow-listed query POST) decoded as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        req: &GraphRequest,
    ) -> Result<GraphResponse<T>, SessionError> {
        let (client, mailbox) = (&self.client, self.mailbox());
        self.with_token(move |token| async move { client.send_json(&token, mailbox, req).await })
            .await
    }

    /// An allow-listed query POST (`/search/query`, `getSchedule`, `findMeetingTimes`).
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        req: &GraphRequest,
    ) -> Result<GraphResponse<T>, SessionError> {
        self.get_json(req).await
    }

    /// A drive item's bytes (see [`GraphClient::download`]).
    pub async fn download(
        &self,
        path: &GraphPath,
    ) -> Result<GraphResponse<Download>, SessionError> {
        let (client, mailbox) = (&self.client, self.mailbox());
        self.with_token(
            move |token| async move { client.download(&token, mailbox, path.clone()).await },
        )
        .await
    }

    /// Every item of a paged collection, up to `max_items`.
    pub async fn get_all_pages(
        &self,
        req: &GraphRequest,
        max_items: usize,
    ) -> Result<GraphResponse<Vec<serde_json::Value>>, SessionError> {
        let (client, mailbox) = (&self.client, self.mailbox());
        self.with_token(move |token| async move {
            client.get_all_pages(&token, mailbox, req, max_items).await
        })
        .await
    }

    async fn token(&self, claims: Option<&str>) -> Result<BearerToken, SessionError> {
        self.provider
            .graph_token(&self.caller, &self.scopes, claims)
            .await
            .map(|token| BearerToken::new(token.into_access_token()))
            .map_err(SessionError::Token)
    }

    async fn with_token<T: Recorded, F, Fut>(&self, call: F) -> Result<T, SessionError>
    where
        F: Fn(BearerToken) -> Fut,
        Fut: Future<Output = Result<T, GraphFailure>>,
    {
        let result = self.with_token_unrecorded(call).await;
        match &result {
            Ok(answer) => self.requests.push(Recorded::request_id(answer)),
            Err(SessionError::Graph(failure)) => self.requests.push(failure.request_id.as_ref()),
            Err(SessionError::Token(_)) => {}
        }
        result
    }

    async fn with_token_unrecorded<T, F, Fut>(&self, call: F) -> Result<T, SessionError>
    where
        F: Fn(BearerToken) -> Fut,
        Fut: Future<Output = Result<T, GraphFailure>>,
    {
        let first = call(self.token(None).await?).await;
        let failure = match first {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        match &failure.error {
            GraphError::ClaimsChallenge { claims } => {
                // Retrying with the same token would loop: drop it and satisfy the challenge.
                self.provider.evict(&self.caller, &self.scopes);
                let token = match self.token(Some(claims)).await {
                    Ok(token) => token,
                    // The user's own sign-in is no longer good enough (sessions revoked,
                    // account disabled): hand Graph's challenge to the client, whose fresh
                    // sign-in with these claims is the only way on (R06).
                    Err(e) if needs_fresh_sign_in(&e) => {
                        return Err(SessionError::Graph(GraphFailure {
                            error: GraphError::ClaimsChallenge { claims: claims.clone() },
                            ..failure
                        }));
                    }
                    Err(e) => return Err(e),
                };
                let second = call(token).await;
                if second.as_ref().is_err_and(|f| f.claims_challenge().is_some()) {
                    self.provider.evict(&self.caller, &self.scopes);
                }
                Ok(second?)
            }
            GraphError::Unauthorized => {
                self.provider.evict(&self.caller, &self.scopes);
                Ok(call(self.token(None).await?).await?)
            }
            _ => Err(failure.into()),
        }
    }
}

/// An answer that carries Graph's request id.
trait Recorded {
    fn request_id(&self) -> Option<&String>;
}

impl<T> Recorded for GraphResponse<T> {
    fn request_id(&self) -> Option<&String> {
        self.request_id.as_ref()
    }
}

/// A failed re-exchange that only a new interactive sign-in can fix and that brought no
/// claims of its own.
fn needs_fresh_sign_in(error: &SessionError) -> bool {
    matches!(
        error,
        SessionError::Token(
            OboError::SignInAgain { .. }
                | OboError::AssertionRejected { .. }
                | OboError::AccountDisabled
        )
    )
}
