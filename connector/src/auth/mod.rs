//! The inbound side: Protected Resource Metadata, the signing-key store, token validation into
//! a [`Caller`](crate::domain::Caller), and the axum middleware that answers 401/403/503 with
//! the right `WWW-Authenticate` before anything reaches rmcp.
//!
//! # Layout
//! * [`challenge`] — `Authorization: Bearer` parsing and `WWW-Authenticate` rendering.
//! * [`jwks`] — the [`KeyStore`] trait and the JWKS-backed store (rate-limited refresh).
//! * [`validate`] — the claim rules, [`Rejection`] reasons and how each is answered.
//! * [`rate_limit`] — per-caller token buckets keyed by the validated `(tid, oid)`.
//! * [`prm`] — the RFC 9728 metadata document.
//!
//! Refusals are audited through [`crate::audit::refusals`]: aggregated per (peer, reason), and a
//! peer over its refusal budget gets 429 before its token is looked at. Every refusal is an
//! [`HttpRefusal`], answered (and logged, once) by its `IntoResponse`.

pub mod challenge;
pub mod jwks;
pub mod prm;
pub mod rate_limit;
pub mod validate;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

pub use challenge::{Challenge, parse_bearer};
pub use jwks::{JwksKeyStore, KeyError, KeyStore, SigningKey};
pub use validate::{Answer, CLOCK_SKEW_LEEWAY, Rejection, Validator};

use tokio_util::sync::CancellationToken;

use crate::{
    audit::{
        AuditEvent, AuditLog, RequestTrace,
        peer::{ConnectedPeer, TrustedProxies},
        refusals::{self, Refusals},
    },
    http::{CLAIMS_CHALLENGE_DESCRIPTION, HttpRefusal},
    metrics::{Metrics, names},
};
use rate_limit::RateLimiter;

/// A per-request slot through which a tool asks the middleware to turn the HTTP response into
/// `401 insufficient_claims` (CAE or a Conditional Access claims challenge; mcp.md §4.9).
/// Works when the response is produced after the tool finishes (`json_response(true)`).
#[derive(Clone, Default, Debug)]
pub struct ChallengeSlot(Arc<OnceLock<String>>);

impl ChallengeSlot {
    /// Records the base64 `claims` value of the challenge; the first one wins.
    pub fn request_claims(&self, claims: impl Into<String>) {
        let _ = self.0.set(claims.into());
    }
    pub fn claims(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// What the middleware needs; built once by the server.
pub struct AuthState {
    pub validator: Validator,
    pub resource_metadata: String,
    pub scope: String,
    pub metrics: Arc<Metrics>,
    pub audit: Arc<AuditLog>,
    pub rate_limiter: RateLimiter,
    /// `Retry-After` for 503 answers (the JWKS refresh floor).
    pub retry_after: Duration,
    /// Per-peer refusal budgets and aggregated refusal records.
    pub refusals: Refusals,
    /// Whose `Forwarded` / `X-Forwarded-For` headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Whole-request bound; a call still running then is cancelled and audited `timeout`.
    pub request_timeout: Duration,
}

impl AuthState {
    fn challenge(&self) -> Challenge {
        Challenge {
            resource_metadata: self.resource_metadata.clone(),
            scope: Some(self.scope.clone()),
            ..Challenge::default()
        }
    }

    /// The HTTP answer to a refused token.
    pub fn refuse(&self, rejection: &Rejection) -> HttpRefusal {
        let reason = rejection.reason();
        let description = rejection.description();
        match rejection.answer() {
            Answer::Unauthorized => {
                let mut c = self.challenge();
                if *rejection != Rejection::Missing {
                    c.error = Some("invalid_token".into());
                    c.error_description = Some(description.clone());
                }
                HttpRefusal::Unauthorized { reason, description, challenge: c.render() }
            }
            Answer::InsufficientScope => {
                let mut c = self.challenge();
                c.error = Some("insufficient_scope".into());
                c.error_description = Some(description.clone());
                HttpRefusal::InsufficientScope { reason, description, challenge: c.render() }
            }
            Answer::Forbidden => HttpRefusal::AccessDenied { reason, description },
            Answer::Unavailable => {
                HttpRefusal::TokenUndecided { reason, description, retry_after: self.retry_after }
            }
        }
    }

    fn claims_challenge(&self, claims: &str) -> HttpRefusal {
        let c = Challenge {
            resource_metadata: self.resource_metadata.clone(),
            scope: None,
            error: Some("insufficient_claims".into()),
            error_description: Some(CLAIMS_CHALLENGE_DESCRIPTION.into()),
            claims: Some(claims.to_owned()),
        };
        HttpRefusal::ClaimsChallenge { challenge: c.render() }
    }

    /// Writes the audit record a refusal opened, if any; a record that cannot be written
    /// refuses the request instead (fail closed).
    async fn audit_refusal(&self, opened: Option<AuditEvent>) -> Result<(), HttpRefusal> {
        match opened {
            Some(event) => self
                .audit
                .record(&event)
                .await
                .map(drop)
                .map_err(|e| HttpRefusal::AuditUnavailable { cause: e.to_string() }),
            None => Ok(()),
        }
    }
}

/// Response header carrying the id audit records of this request are filed under.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The axum middleware in front of `/mcp`: attributes the request to a peer and a request id,
/// answers floods of refused tokens with 429 before checking them, validates the bearer
/// token, applies the per-caller rate limit, audits refusals (aggregated), bounds the request
/// by the request timeout, and hands the [`Caller`](crate::domain::Caller), a
/// [`ChallengeSlot`] and the [`RequestTrace`] to rmcp through the request extensions.
pub async fn require_caller(
    State(auth): State<Arc<AuthState>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectedPeer>()
        .map(|p| auth.trusted_proxies.client_address(p.0.ip(), req.headers()));
    let deadline = tokio::time::Instant::now() + auth.request_timeout;
    let trace = Arc::new(RequestTrace::new(RequestTrace::new_request_id(), peer, Some(deadline)));
    let request_id = HeaderValue::from_str(&trace.request_id).ok();
    let answer = tokio::time::timeout_at(deadline, authorize_and_run(&auth, req, next, trace))
        .await
        // Dropping the inner future cancels the call; its audit record says `timeout`.
        .unwrap_or(Err(HttpRefusal::TimedOut));
    let mut response = answer.unwrap_or_else(IntoResponse::into_response);
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

async fn authorize_and_run(
    auth: &AuthState,
    mut req: Request,
    next: Next,
    trace: Arc<RequestTrace>,
) -> Result<Response, HttpRefusal> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let token = match (values.next(), values.next()) {
        (None, _) => Err(Rejection::Missing),
        (Some(_), Some(_)) => Err(Rejection::Malformed),
        (Some(v), None) => match v.to_str().map(parse_bearer) {
            Ok(Ok(t)) => Ok(t.to_owned()),
            Ok(Err(challenge::BearerError::NotBearer)) => Err(Rejection::Missing),
            _ => Err(Rejection::Malformed),
        },
    };
    // A client without a token is discovering how to sign in: answer, don't count.
    if matches!(token, Err(Rejection::Missing)) {
        auth.metrics.inc(names::TOKENS_REJECTED, &[("reason", Rejection::Missing.reason())]);
        return Err(auth.refuse(&Rejection::Missing));
    }
    // A peer over its refusal budget gets 429 before its token is checked, unless the token
    // verified before (a caller behind the same address as a flood keeps working).
    let known = token.as_ref().is_ok_and(|t| auth.validator.verified_before(t));
    if !known && let Some(wait) = auth.refusals.peer_over_budget(trace.peer) {
        auth.metrics.inc(names::TOKENS_REJECTED, &[("reason", refusals::PEER_OVER_BUDGET)]);
        let opened = auth.refusals.token_refused(
            trace.peer,
            refusals::PEER_OVER_BUDGET,
            &trace.request_id,
            None,
            false,
        );
        auth.audit_refusal(opened).await?;
        return Err(HttpRefusal::RateLimited {
            reason: refusals::PEER_OVER_BUDGET,
            description: "too many refused tokens from this address; retry later",
            retry_after: wait,
        });
    }
    let result = match token {
        Ok(t) => auth.validator.validate(&t).await,
        Err(r) => Err((r, None)),
    };
    let caller = match result {
        Ok(caller) => caller,
        Err((rejection, who)) => {
            auth.metrics.inc(names::TOKENS_REJECTED, &[("reason", rejection.reason())]);
            // The connector failing to check tokens is not the peer's fault.
            let charge = rejection.answer() != Answer::Unavailable;
            let opened = auth.refusals.token_refused(
                trace.peer,
                rejection.reason(),
                &trace.request_id,
                who,
                charge,
            );
            auth.audit_refusal(opened).await?;
            return Err(auth.refuse(&rejection));
        }
    };
    if let Err(wait) = auth.rate_limiter.check(caller.tenant_id, caller.object_id).await {
        auth.metrics.inc(names::TOKENS_REJECTED, &[("reason", "rate_limited")]);
        let opened = auth.refusals.rate_limited(
            caller.tenant_id,
            caller.object_id,
            trace.peer,
            &trace.request_id,
        );
        auth.audit_refusal(opened).await?;
        return Err(HttpRefusal::RateLimited {
            reason: "rate_limited",
            description: "too many requests from this user; retry later",
            retry_after: wait,
        });
    }
    let slot = ChallengeSlot::default();
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(trace);
    let response = next.run(req).await;
    match slot.claims() {
        Some(claims) => Err(auth.claims_challenge(claims)),
        None => Ok(response),
    }
}

/// Writes the aggregated refusal records of closed windows every quarter interval, and all
/// of them when `stop` fires (so a shutdown loses no count).
pub async fn flush_refusals_periodically(auth: Arc<AuthState>, stop: CancellationToken) {
    let period = (auth.refusals.interval() / 4).max(Duration::from_millis(10));
    loop {
        let all = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(period) => false,
        };
        for event in auth.refusals.flush(all) {
            if let Err(e) = auth.audit.record(&event).await {
                tracing::error!(error = %e, "Audit write failed for aggregated refusals");
            }
        }
        if all {
            return;
        }
    }
}
