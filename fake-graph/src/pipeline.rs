//! The request pipeline every `/v1.0` call goes through, in Graph's order: request ids,
//! authentication, CAE, `Retry-After` compliance, scripted faults, the read-only guard, Outlook's
//! concurrency limit, then the route handler; afterwards the error envelope gets the request's
//! ids, post-response faults (truncated body, reset) apply, and the journal records the request.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    CaeSync, Caller, Fault, GraphError, RetryAfter, Shared, ThrottleKind, control, faults, journal,
    routes,
};

/// Largest request body read (search and getSchedule bodies are small).
const MAX_BODY: usize = 1 << 20;

/// The whole HTTP surface: `/v1.0` through the pipeline, `/_fake`, and `/_download` unless a
/// separate download listener serves it ([`download_router`]).
pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new().nest("/_fake", control::router());
    if shared.download_base_url.get().is_none() {
        router = router.route("/_download/{token}", axum::routing::get(routes::files::download));
    }
    router.fallback(pipeline).with_state(shared)
}

/// The download host's surface: `/_download/…` only; anything else is 404, as a SharePoint
/// download host knows nothing of Graph's API.
pub fn download_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_download/{token}", axum::routing::get(routes::files::download))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .with_state(shared)
}

/// Whether Graph would treat this request as a write. The read-only query endpoints are
/// `POST /search/query`, `POST /me/calendar/getSchedule`, `POST /me/findMeetingTimes`
/// (also under `/users/{id}/…`).
pub fn is_mutating(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => {
            let p = path.trim_end_matches('/').to_ascii_lowercase();
            !(p.ends_with("/v1.0/search/query")
                || p.ends_with("/calendar/getschedule")
                || p.ends_with("/findmeetingtimes"))
        }
        _ => true,
    }
}

struct Outcome {
    response: Response,
    caller: Option<Arc<Caller>>,
    fault: Option<String>,
    violation: bool,
    post: Option<Fault>,
}

async fn pipeline(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let started = Instant::now();
    let now = shared.clock.now();
    let request_id = new_request_id();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned);
    let method = req.method().clone();
    // One owned copy of the URI serves the handlers (as `path`) and the journal.
    let path = req.uri().path();
    let (request_uri, own_path) = match req.uri().path_and_query().map(|p| p.as_str()) {
        Some(pq) if pq.starts_with(path) => (pq.to_owned(), None),
        Some(pq) => (pq.to_owned(), Some(path.to_owned())),
        None => (path.to_owned(), None),
    };
    let path = own_path.as_deref().unwrap_or(&request_uri[..path.len()]);
    let mutating = is_mutating(&method, path);

    let outcome = handle(&shared, req, now, &method, path, mutating).await;
    let Outcome { mut response, caller, fault, violation, post } = outcome;

    // Render parked errors with the request's ids.
    let mut id_buf = uuid::Uuid::encode_buffer();
    let request_id_str: &str = request_id.hyphenated().encode_lower(&mut id_buf);
    if let Some(err) = response.extensions_mut().remove::<GraphError>() {
        let client_id = client_request_id.as_deref().unwrap_or(request_id_str);
        let body = err.body(now, request_id_str, client_id);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        *response.body_mut() = Body::from(bytes);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id_str) {
        // Without a client id the request id is echoed: the same value, shared.
        let client = match &client_request_id {
            None => Some(v.clone()),
            Some(c) => HeaderValue::from_str(c).ok(),
        };
        headers.insert("request-id", v);
        if let Some(c) = client {
            headers.insert("client-request-id", c);
        }
    }
    headers.insert(
        "x-ms-ags-diagnostic",
        HeaderValue::from_static(r#"{"ServerInfo":{"DataCenter":"Fake","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"FAKE-GRAPH"}}"#),
    );
    headers.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000"));

    let status = response.status().as_u16();
    let response = match post {
        Some(Fault::TruncatedBody) => truncate(response).await,
        Some(Fault::ConnectionReset) => reset(response),
        _ => response,
    };
    shared.journal.push(journal::Record {
        time: now,
        method,
        request_uri,
        path: own_path,
        caller,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        request_id,
        client_request_id,
        mutating,
        retry_violation: violation,
        fault,
    });
    response
}

/// A random (v4) request id. Drawn from the thread-local generator: `Uuid::new_v4` asks the
/// operating system for every id, a system call per request.
fn new_request_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid()
}

async fn handle(
    shared: &Arc<Shared>,
    req: Request,
    now: DateTime<Utc>,
    method: &Method,
    path: &str,
    mutating: bool,
) -> Outcome {
    let mut out = Outcome {
        response: StatusCode::OK.into_response(),
        caller: None,
        fault: None,
        violation: false,
        post: None,
    };
    let auth_header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match shared.auth.authenticate(auth_header, now).await {
        Ok(c) => c,
        Err(e) => {
            out.response = e.into_response();
            return out;
        }
    };
    out.caller = Some(caller.clone());
    if caller.cp1 && shared.cae_sync == CaeSync::PerRequest {
        shared.auth.sync_cae().await;
    }
    if let Err(e) = shared.auth.cae_check(&caller) {
        out.response = e.into_response();
        return out;
    }

    // The key owns three strings: build it only when some caller is being held off.
    let retry_key = || {
        (
            caller.tid,
            caller.oid,
            caller.app_id.clone(),
            method.to_string(),
            path.to_ascii_lowercase(),
        )
    };
    out.violation =
        shared.faults.holding_off() && shared.faults.violates_retry_after(&retry_key(), now);
    if out.violation && shared.rethrottle_early_retries {
        let (err, _) =
            faults::throttle_error(ThrottleKind::TooManyRequests, &RetryAfter::Seconds(1), now);
        out.response = err.into_response();
        return out;
    }

    let mut latency = None;
    if let Some((name, fault)) =
        shared.faults.pick(method.as_str(), path, Some(caller.tid), Some(caller.oid))
    {
        out.fault = Some(name);
        let answer = match &fault {
            Fault::Throttle { retry_after, throttle } => {
                Some(faults::throttle_error(*throttle, retry_after, now))
            }
            Fault::ServiceUnavailable { retry_after } => {
                Some(faults::unavailable_error(retry_after, now))
            }
            Fault::GatewayTimeout => Some((
                GraphError::new(StatusCode::GATEWAY_TIMEOUT, "UnknownError", ""),
                Duration::ZERO,
            )),
            Fault::Latency { millis } => {
                latency = Some(Duration::from_millis(*millis));
                None
            }
            Fault::TruncatedBody | Fault::ConnectionReset => {
                out.post = Some(fault.clone());
                None
            }
        };
        if let Some((err, delay)) = answer {
            if !delay.is_zero() {
                let until = now + chrono::Duration::milliseconds(delay.as_millis() as i64);
                shared.faults.record_throttle(retry_key(), until);
            }
            out.response = err.into_response();
            return out;
        }
    }

    if mutating {
        out.response = GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "notAllowed",
            format!("fake-graph is read-only: {method} {path} is refused."),
        )
        .into_response();
        return out;
    }

    let segs = routes::Segments::parse(path);
    let _slot = match routes::outlook_mailbox(&segs, &caller, &shared.read()) {
        Some(owner) => match shared.faults.enter_mailbox(&caller.app_id, owner) {
            Some(slot) => Some(slot),
            None => {
                let (err, _) = faults::throttle_error(
                    ThrottleKind::ApplicationThrottled,
                    &RetryAfter::Absent,
                    now,
                );
                out.response = err.into_response();
                return out;
            }
        },
        None => None,
    };
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }

    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            out.response = GraphError::bad_request(
                "BadRequest",
                "The request body is too large or unreadable.",
            )
            .into_response();
            return out;
        }
    };
    out.response = routes::dispatch(
        shared,
        &caller,
        &parts.method,
        &parts.uri,
        &segs,
        &parts.headers,
        &body,
        now,
    );
    out
}

async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = bytes.slice(0..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

fn reset(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let stream = futures::stream::iter([Err::<axum::body::Bytes, std::io::Error>(
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: connection reset"),
    )]);
    Response::from_parts(parts, Body::from_stream(stream))
}
