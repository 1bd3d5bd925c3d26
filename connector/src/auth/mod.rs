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

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::Mutex,
        time::{Duration, Instant},
    };

    use axum::{Extension, Router, body::Body, middleware, routing::post};
    use serde_json::json;
    use tower::ServiceExt as _;

    use super::*;
    use crate::{
        auth::validate::tests::{claims, harness, harness_with, mint, with},
        clock::Clock,
        domain::Caller,
        http::CLAIMS_CHALLENGE_DESCRIPTION,
    };

    const METADATA: &str = "https://connector.example/.well-known/oauth-protected-resource";
    const SCOPE: &str = "api://connector/access_as_user";
    const CLAIMS: &str = "eyJhY2Nlc3NfdG9rZW4iOnt9fQ";

    /// What the audit log wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The middleware's state over the validator of `validate`'s tests (Contoso and Fabrikam
    /// enabled, tokens signed with fake-entra's test key).
    fn state_with(
        validator: Validator,
        audit: AuditLog,
        refusals_per_peer: u32,
        rate: RateLimiter,
    ) -> Arc<AuthState> {
        Arc::new(AuthState {
            validator,
            resource_metadata: METADATA.into(),
            scope: SCOPE.into(),
            metrics: Arc::new(Metrics::new()),
            audit: Arc::new(audit),
            rate_limiter: rate,
            retry_after: Duration::from_secs(7),
            refusals: Refusals::new(Duration::from_secs(3600), refusals_per_peer),
            trusted_proxies: TrustedProxies::new(vec![]),
            request_timeout: Duration::from_secs(30),
        })
    }

    fn state() -> Arc<AuthState> {
        let audit = AuditLog::to_writer(std::io::sink(), Clock::system());
        state_with(harness().validator, audit, 100, RateLimiter::new(600, 100))
    }

    /// The protected route: answers with the caller's object id after a pending await (so a
    /// request whose deadline has passed times out), and raises a claims challenge when the
    /// request says `x-claims`.
    fn app(auth: Arc<AuthState>) -> Router {
        async fn tool(
            Extension(caller): Extension<Caller>,
            Extension(slot): Extension<ChallengeSlot>,
            Extension(_trace): Extension<Arc<RequestTrace>>,
            headers: axum::http::HeaderMap,
        ) -> String {
            let delay_ms =
                headers.get("x-delay-ms").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if let Some(claims) = headers.get("x-claims") {
                slot.request_claims(claims.to_str().unwrap());
            }
            caller.object_id.to_string()
        }
        Router::new()
            .route("/mcp", post(tool))
            .layer(middleware::from_fn_with_state(auth, require_caller))
    }

    struct Answered {
        status: u16,
        challenge: String,
        retry_after: Option<String>,
        body: String,
    }

    async fn call(
        auth: &Arc<AuthState>,
        authorization: &[&str],
        extra: &[(&str, &str)],
    ) -> Answered {
        let mut req = Request::post("/mcp");
        for value in authorization {
            req = req.header(header::AUTHORIZATION, *value);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let response = app(auth.clone()).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert!(
            response.headers().contains_key(REQUEST_ID_HEADER),
            "every answer names its request"
        );
        let header_text = |name| {
            response.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let challenge = header_text(header::WWW_AUTHENTICATE).unwrap_or_default();
        let retry_after = header_text(header::RETRY_AFTER);
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Answered { status, challenge, retry_after, body: String::from_utf8_lossy(&body).into() }
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// A well-formed, unsigned-looking JWT naming the test key: decided only by the key store.
    fn structurally_valid() -> String {
        let token = mint(&claims());
        let (signed, _) = token.rsplit_once('.').unwrap();
        format!("{signed}.AAAA")
    }

    #[test]
    fn the_challenge_slot_keeps_the_first_claims() {
        let slot = ChallengeSlot::default();
        assert_eq!(slot.claims(), None);
        slot.request_claims("first");
        slot.clone().request_claims("second");
        assert_eq!(slot.claims(), Some("first"));
    }

    #[tokio::test]
    async fn a_valid_token_reaches_the_tool_with_its_caller() {
        let auth = state();
        let answer = call(&auth, &[&bearer(&mint(&claims()))], &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, claims()["oid"].as_str().unwrap());
    }

    #[tokio::test]
    async fn no_bearer_token_gets_the_bare_challenge_and_costs_no_budget() {
        let auth = state_with(
            harness().validator,
            AuditLog::to_writer(Broken, Clock::system()),
            1,
            RateLimiter::new(600, 100),
        );
        for authorization in [&[][..], &["Basic dXNlcjpwYXNz"][..]] {
            for _ in 0..3 {
                let answer = call(&auth, authorization, &[]).await;
                assert_eq!(answer.status, 401);
                assert_eq!(
                    answer.challenge,
                    format!(r#"Bearer resource_metadata="{METADATA}", scope="{SCOPE}""#)
                );
            }
        }
    }

    #[tokio::test]
    async fn each_validator_answer_has_its_refusal() {
        let auth = state();
        let invalid = call(&auth, &["Bearer not-a-jwt"], &[]).await;
        assert_eq!(invalid.status, 401);
        assert!(invalid.challenge.starts_with(&format!(
            r#"Bearer resource_metadata="{METADATA}", scope="{SCOPE}", error="invalid_token", error_description=""#
        )));
        let token = bearer(&mint(&claims()));
        let twice = call(&auth, &[&token, &token], &[]).await;
        assert_eq!(twice.status, 401);
        assert!(twice.challenge.contains(r#"error="invalid_token""#));
        let scope = call(&auth, &[&bearer(&mint(&with("scp", json!("User.Read"))))], &[]).await;
        assert_eq!(scope.status, 403);
        assert!(scope.challenge.contains(r#"error="insufficient_scope""#), "{}", scope.challenge);
        let app_only = call(&auth, &[&bearer(&mint(&with("idtyp", json!("app"))))], &[]).await;
        assert_eq!(app_only.status, 403);
        assert!(app_only.body.contains("access_denied"), "{}", app_only.body);
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_checked_is_503_and_never_charged_to_the_peer() {
        let unavailable = harness_with(None, true).validator;
        let audit = AuditLog::to_writer(std::io::sink(), Clock::system());
        let auth = state_with(unavailable, audit, 1, RateLimiter::new(600, 100));
        for _ in 0..3 {
            let answer = call(&auth, &[&bearer(&structurally_valid())], &[]).await;
            assert_eq!(answer.status, 503, "{}", answer.body);
            assert_eq!(answer.retry_after.as_deref(), Some("7"));
        }
    }

    #[tokio::test]
    async fn a_peer_over_its_refusal_budget_gets_429_unless_its_token_verified_before() {
        let validator = harness().validator;
        let known = mint(&claims());
        validator.validate(&known).await.expect("valid");
        let audit = AuditLog::to_writer(std::io::sink(), Clock::system());
        let auth = state_with(validator, audit, 2, RateLimiter::new(600, 100));
        for _ in 0..2 {
            assert_eq!(call(&auth, &["Bearer garbage"], &[]).await.status, 401);
        }
        let flooded = call(&auth, &[&bearer(&structurally_valid())], &[]).await;
        assert_eq!(flooded.status, 429);
        assert!(flooded.body.contains("too many refused tokens"), "{}", flooded.body);
        assert!(flooded.retry_after.is_some());
        assert_eq!(call(&auth, &[&bearer(&known)], &[]).await.status, 200);
    }

    #[tokio::test]
    async fn a_refusal_whose_audit_record_cannot_be_written_is_503() {
        let audit = AuditLog::to_writer(Broken, Clock::system());
        let auth = state_with(harness().validator, audit, 100, RateLimiter::new(600, 100));
        let answer = call(&auth, &["Bearer garbage"], &[]).await;
        assert_eq!(answer.status, 503);
        assert!(answer.body.contains("audit log"), "{}", answer.body);
    }

    #[tokio::test]
    async fn a_caller_over_its_rate_gets_429() {
        let audit = AuditLog::to_writer(std::io::sink(), Clock::system());
        let auth = state_with(harness().validator, audit, 100, RateLimiter::new(1, 1));
        let token = bearer(&mint(&claims()));
        assert_eq!(call(&auth, &[&token], &[]).await.status, 200);
        let limited = call(&auth, &[&token], &[]).await;
        assert_eq!(limited.status, 429);
        assert!(limited.body.contains("too many requests from this user"), "{}", limited.body);
    }

    #[tokio::test]
    async fn a_claims_challenge_from_the_tool_becomes_401_insufficient_claims() {
        let auth = state();
        let answer = call(&auth, &[&bearer(&mint(&claims()))], &[("x-claims", CLAIMS)]).await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.challenge,
            format!(
                r#"Bearer resource_metadata="{METADATA}", error="insufficient_claims", error_description="{CLAIMS_CHALLENGE_DESCRIPTION}", claims="{CLAIMS}""#
            )
        );
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_is_503() {
        let audit = AuditLog::to_writer(std::io::sink(), Clock::system());
        let mut auth = state_with(harness().validator, audit, 100, RateLimiter::new(600, 100));
        Arc::get_mut(&mut auth).unwrap().request_timeout = Duration::from_millis(20);
        // The tool takes far longer than the timeout, so the race cannot go the tool's way.
        let answer = call(&auth, &[&bearer(&mint(&claims()))], &[("x-delay-ms", "2000")]).await;
        assert_eq!(answer.status, 503);
    }

    /// Counts one suppressed refusal (the record of the window's first one is dropped here).
    fn suppressed_refusal(auth: &AuthState) {
        for _ in 0..2 {
            let _ = auth.refusals.token_refused(None, "malformed", "req", None, true);
        }
    }

    #[tokio::test]
    async fn closed_windows_are_flushed_within_a_quarter_interval_and_all_at_stop() {
        let written = Written::default();
        let audit = AuditLog::to_writer(written.clone(), Clock::system());
        let mut auth = state_with(harness().validator, audit, 100, RateLimiter::new(600, 100));
        Arc::get_mut(&mut auth).unwrap().refusals = Refusals::new(Duration::from_millis(1000), 100);
        suppressed_refusal(&auth);
        let stop = CancellationToken::new();
        let flusher = tokio::spawn(flush_refusals_periodically(auth.clone(), stop.clone()));
        // The window closes at 1 s and is flushed by 1.25 s; four intervals would be 4 s. The
        // margin is wide so a loaded machine cannot make it fail.
        let started = Instant::now();
        while !written.text().contains(r#""count":1"#) {
            assert!(started.elapsed() < Duration::from_millis(3000), "not flushed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        flusher.await.unwrap();

        let written = Written::default();
        let audit = AuditLog::to_writer(written.clone(), Clock::system());
        let auth = state_with(harness().validator, audit, 100, RateLimiter::new(600, 100));
        suppressed_refusal(&auth);
        let stop = CancellationToken::new();
        stop.cancel();
        flush_refusals_periodically(auth, stop).await;
        assert!(written.text().contains(r#""count":1"#), "{}", written.text());
    }
}
