//! The read-only Microsoft Graph client.
//!
//! * Read-only by construction: requests exist only as [`GraphRequest`]s (GET, or POST to the
//!   query allow-list), and [`request::check_outbound`] re-checks method and URL before sending.
//! * One shared `reqwest::Client` ([`http_client`]): timeouts, no automatic redirects, no proxy,
//!   HTTPS only unless the configured base is loopback (tests).
//! * Retries only 429/503/504 and connect errors, honouring `Retry-After`, bounded by attempts
//!   and a total budget; a demanded wait beyond the budget gives up at once.
//! * At most `per_mailbox_concurrency` requests in flight per (tenant, user).
//! * `@odata.nextLink` is followed only below the configured base; downloads follow the one
//!   302 by hand, to allowed hosts only, without `Authorization`, with a byte cap.
//! * Every call sends a fresh `client-request-id`; Graph's `request-id` comes back with every
//!   response and failure for the audit log.
//!
//! # Layout
//! * [`request`]: [`GraphPath`], [`GraphRequest`], the allow-list.
//! * [`error`]: [`GraphError`], [`GraphFailure`], envelope and `WWW-Authenticate` parsing.
//! * [`query`]: the typed query builders (KQL, OData) and search answers.
//!
//! The client takes a plain [`BearerToken`]; it knows nothing of how the token was obtained.
//! Pairing it with the On-Behalf-Of exchange (and the CAE/401 evict-and-retry rules) is the
//! call layer's job: `tools::session`.

pub mod error;
pub mod model;
mod paths;
pub mod query;
pub mod request;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;
use uuid::Uuid;

pub use error::{GraphError, GraphFailure};
pub use request::{GraphPath, GraphRequest, QUERY_POST_ALLOWLIST};

use crate::{
    domain::{Caller, ObjectId, TenantId},
    metrics::{Metrics, names},
};
use request::{Method, check_outbound, relative_path};

/// Cap on error bodies read for their envelope.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Bound on pages followed by [`GraphClient::get_all_pages`], whatever the item limit.
const MAX_PAGES: usize = 100;
/// Mailboxes whose concurrency limit is remembered before idle ones are forgotten.
const MAX_TRACKED_MAILBOXES: usize = 10_000;

/// Settings of the Graph client; the config module builds them.
#[derive(Clone, Debug)]
pub struct GraphSettings {
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub base_url: Url,
    /// Hosts a pre-authenticated download URL may point at: exact names or `*.suffix`
    /// patterns. A loopback host must be listed too, and is allowed (over http as well) only
    /// when the base is loopback.
    pub download_hosts: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Total time a call may spend waiting between attempts.
    pub retry_budget: Duration,
    pub max_download_bytes: u64,
    /// Cap on JSON response bodies.
    pub max_json_bytes: u64,
    pub per_mailbox_concurrency: usize,
}

impl GraphSettings {
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            download_hosts: [
                "*.sharepoint.com",
                "*.sharepoint-df.com",
                "*.files.1drv.com",
                "*.svc.ms",
            ]
            .map(str::to_owned)
            .to_vec(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_attempts: 4,
            retry_budget: Duration::from_secs(30),
            max_download_bytes: 20 * 1024 * 1024,
            max_json_bytes: 4 * 1024 * 1024,
            per_mailbox_concurrency: 4,
        }
    }

    pub(crate) fn base_is_loopback(&self) -> bool {
        self.base_url.host_str().is_some_and(is_loopback_host)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The shared client for Graph: timeouts, no redirects (downloads follow their one 302 by
/// hand), no proxy, HTTPS only unless the base is loopback.
pub fn http_client(settings: &GraphSettings) -> Result<reqwest::Client, reqwest::Error> {
    crate::http::install_crypto();
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!settings.base_is_loopback())
        .build()
}

/// A Graph access token as the client sends it (`Authorization: Bearer …`), whoever obtained
/// it. Never logged: `Debug` redacts it.
#[derive(Clone)]
pub struct BearerToken(SecretString);

impl BearerToken {
    pub fn new(token: SecretString) -> Self {
        Self(token)
    }

    /// # Security
    /// Goes only into the `Authorization` header of requests to the configured Graph base.
    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for BearerToken {
    fn from(token: SecretString) -> Self {
        Self::new(token)
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// Whose mailbox (or drive) a call touches: the key of the per-mailbox concurrency limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailboxKey {
    pub tenant: TenantId,
    pub user: ObjectId,
}

impl From<&Caller> for MailboxKey {
    fn from(caller: &Caller) -> Self {
        Self { tenant: caller.tenant_id, user: caller.object_id }
    }
}

/// A successful Graph response with the ids the audit log records.
#[derive(Clone, Debug)]
pub struct GraphResponse<T> {
    pub body: T,
    pub status: u16,
    pub client_request_id: Uuid,
    pub request_id: Option<String>,
}

/// A downloaded file.
#[derive(Clone, Debug)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

/// The read-only Graph client. Cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    settings: GraphSettings,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    mailboxes: Mutex<HashMap<MailboxKey, Arc<Semaphore>>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.inner.settings.base_url.as_str())
            .finish()
    }
}

/// One HTTP exchange that Graph answered successfully (2xx, or 3xx when allowed).
struct Raw {
    status: u16,
    body: Vec<u8>,
    location: Option<String>,
    content_type: Option<String>,
    client_request_id: Uuid,
    request_id: Option<String>,
}

impl GraphClient {
    pub fn new(settings: GraphSettings, http: reqwest::Client, metrics: Arc<Metrics>) -> Self {
        let inner = ClientInner { settings, http, metrics, mailboxes: Mutex::new(HashMap::new()) };
        Self { inner: Arc::new(inner) }
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.inner.settings
    }

    /// Sends `req` and decodes the JSON body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        token: &BearerToken,
        mailbox: MailboxKey,
        req: &GraphRequest,
    ) -> Result<GraphResponse<T>, GraphFailure> {
        let raw =
            self.execute(token, mailbox, req, self.inner.settings.max_json_bytes, false).await?;
        let body = serde_json::from_slice(&raw.body).map_err(|_| GraphFailure {
            error: GraphError::Decode,
            client_request_id: Some(raw.client_request_id),
            request_id: raw.request_id.clone(),
        })?;
        Ok(GraphResponse {
            body,
            status: raw.status,
            client_request_id: raw.client_request_id,
            request_id: raw.request_id,
        })
    }

    /// Sends `req` and follows `@odata.nextLink` (only below the base) until `max_items`
    /// items of `value` are collected or the last page. Ids are those of the last page.
    pub async fn get_all_pages(
        &self,
        token: &BearerToken,
        mailbox: MailboxKey,
        req: &GraphRequest,
        max_items: usize,
    ) -> Result<GraphResponse<Vec<serde_json::Value>>, GraphFailure> {
        let mut items = Vec::new();
        let mut current = req.clone();
        for _ in 0..MAX_PAGES {
            let page: GraphResponse<serde_json::Value> =
                self.send_json(token, mailbox, &current).await?;
            let ids = |error| GraphFailure {
                error,
                client_request_id: Some(page.client_request_id),
                request_id: page.request_id.clone(),
            };
            let values = page
                .body
                .get("value")
                .and_then(|v| v.as_array())
                .ok_or_else(|| ids(GraphError::Decode))?;
            items.extend(values.iter().take(max_items.saturating_sub(items.len())).cloned());
            let next = page.body.get("@odata.nextLink").and_then(|v| v.as_str());
            let done = GraphResponse {
                body: Vec::new(),
                status: page.status,
                client_request_id: page.client_request_id,
                request_id: page.request_id.clone(),
            };
            let Some(next) = next.filter(|_| items.len() < max_items) else {
                return Ok(GraphResponse { body: items, ..done });
            };
            let url = Url::parse(next).map_err(|_| ids(GraphError::Decode))?;
            if relative_path(&url, &self.inner.settings.base_url).is_none() {
                // Never send the bearer token to a link outside the base (`security.md` E14).
                tracing::warn!(request_id = ?page.request_id, "@odata.nextLink outside the Graph base refused");
                return Err(ids(GraphError::NotAllowed));
            }
            current = GraphRequest::next_link(url, req);
        }
        Err(GraphFailure::new(GraphError::TooLarge))
    }

    /// Downloads a drive item: `GET /drives/{d}/items/{i}/content` answers 302 to a
    /// pre-authenticated URL, followed here by hand — only to an allowed download host,
    /// without the `Authorization` header, and only once.
    pub async fn download(
        &self,
        token: &BearerToken,
        mailbox: MailboxKey,
        path: GraphPath,
    ) -> Result<GraphResponse<Download>, GraphFailure> {
        let cap = self.inner.settings.max_download_bytes;
        let first = self.execute(token, mailbox, &GraphRequest::get(path), cap, true).await?;
        let fail = |error| GraphFailure {
            error,
            client_request_id: Some(first.client_request_id),
            request_id: first.request_id.clone(),
        };
        let ok = |bytes, content_type| GraphResponse {
            body: Download { bytes, content_type },
            status: 200,
            client_request_id: first.client_request_id,
            request_id: first.request_id.clone(),
        };
        if !(300..400).contains(&first.status) {
            return Ok(ok(first.body.clone(), first.content_type.clone()));
        }
        let base_url = self.inner.settings.base_url.clone();
        let target = first
            .location
            .as_deref()
            .and_then(|l| base_url.join(l).ok())
            .ok_or_else(|| fail(GraphError::DisallowedRedirect))?;
        if !self.download_allowed(&target) {
            tracing::warn!(request_id = ?first.request_id, "download redirect to a host outside the allow-list refused");
            return Err(fail(GraphError::DisallowedRedirect));
        }
        // A fresh request on the shared client: it carries no default headers, so no
        // Authorization goes to the download host.
        let response =
            self.inner.http.get(target).send().await.map_err(|e| fail(transport_error(&e)))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(fail(GraphError::DisallowedRedirect));
        }
        let headers = response.headers().clone();
        if !(200..300).contains(&status) {
            let body = read_capped(response, MAX_ERROR_BODY as u64).await.unwrap_or_default();
            return Err(fail(map_status(status, &headers, &body)));
        }
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(fail(GraphError::TooLarge));
        }
        let content_type = header_string(&headers, reqwest::header::CONTENT_TYPE);
        let bytes = read_capped(response, cap).await.map_err(fail)?;
        Ok(ok(bytes, content_type))
    }

    fn download_allowed(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let listed =
            self.inner.settings.download_hosts.iter().any(|pattern| host_matches(pattern, host));
        if is_loopback_host(host) {
            // Tests only: plain HTTP is allowed, but the host must still be on the list, so a
            // test world whose downloads come from their own host exercises the list as
            // production does.
            return self.inner.settings.base_is_loopback()
                && matches!(url.scheme(), "http" | "https")
                && listed;
        }
        url.scheme() == "https" && listed
    }

    async fn mailbox_permit(
        &self,
        mailbox: MailboxKey,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = self.inner.mailboxes.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > MAX_TRACKED_MAILBOXES {
                // Forget idle mailboxes so the map stays bounded.
                map.retain(|_, s| Arc::strong_count(s) > 1);
            }
            map.entry(mailbox)
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(self.inner.settings.per_mailbox_concurrency.max(1)))
                })
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }

    /// One logical call: the allow-list check, then attempts with retries.
    async fn execute(
        &self,
        token: &BearerToken,
        mailbox: MailboxKey,
        req: &GraphRequest,
        cap: u64,
        allow_redirect: bool,
    ) -> Result<Raw, GraphFailure> {
        let settings = &self.inner.settings;
        let url = req.url(&settings.base_url)?;
        let method = if req.is_post() { http::Method::POST } else { http::Method::GET };
        check_outbound(&method, &url, &settings.base_url)?;
        let client_request_id = Uuid::new_v4();
        let started = tokio::time::Instant::now();
        let _permit = self.mailbox_permit(mailbox).await;
        let mut attempt: u32 = 1;
        loop {
            let mut builder = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose())
                .header("client-request-id", client_request_id.to_string())
                .header("return-client-request-id", "true");
            if attempt > 1 {
                builder = builder.header("retry-attempt", (attempt - 1).to_string());
            }
            if !req.prefer.is_empty() {
                builder = builder.header("Prefer", req.prefer.join(", "));
            }
            if req.eventual_consistency {
                builder = builder.header("ConsistencyLevel", "eventual");
            }
            if let Method::QueryPost(body) = &req.method {
                builder = builder.json(body);
            }
            let sent = tokio::time::Instant::now();
            let (error, request_id) = match builder.send().await {
                Err(e) => (transport_error(&e), None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let request_id = header_string(&headers, "request-id");
                    self.inner
                        .metrics
                        .inc(names::GRAPH_RESPONSES, &[("status", &status.to_string())]);
                    self.inner.metrics.observe(
                        names::GRAPH_LATENCY,
                        &[("method", method.as_str())],
                        sent.elapsed().as_secs_f64(),
                    );
                    let ids = |error| GraphFailure {
                        error,
                        client_request_id: Some(client_request_id),
                        request_id: request_id.clone(),
                    };
                    if (200..300).contains(&status)
                        || (allow_redirect && (300..400).contains(&status))
                    {
                        if response.content_length().is_some_and(|n| n > cap) {
                            return Err(ids(GraphError::TooLarge));
                        }
                        let body = read_capped(response, cap).await.map_err(ids)?;
                        return Ok(Raw {
                            status,
                            body,
                            // Not `header_string`: its 200-character cap would cut pre-authenticated
                            // download URLs (real ones are longer) and break their signature.
                            location: headers
                                .get(reqwest::header::LOCATION)
                                .and_then(|v| v.to_str().ok())
                                .filter(|l| l.len() <= 8192)
                                .map(str::to_owned),
                            content_type: header_string(&headers, reqwest::header::CONTENT_TYPE),
                            client_request_id,
                            request_id,
                        });
                    }
                    let body =
                        read_capped(response, MAX_ERROR_BODY as u64).await.unwrap_or_default();
                    let request_id =
                        request_id.clone().or_else(|| error::parse_envelope(&body).request_id);
                    (map_status(status, &headers, &body), request_id)
                }
            };
            let failure =
                GraphFailure { error, client_request_id: Some(client_request_id), request_id };
            let retryable = matches!(
                failure.error,
                GraphError::Throttled { .. }
                    | GraphError::Unavailable { .. }
                    | GraphError::Transport
            );
            if !retryable || attempt >= settings.max_attempts {
                return Err(failure);
            }
            if matches!(failure.error, GraphError::Throttled { .. }) {
                self.inner.metrics.inc(names::GRAPH_THROTTLED, &[]);
            }
            let wait =
                failure.error.retry_after().unwrap_or_else(|| crate::http::retry::backoff(attempt));
            let remaining = settings.retry_budget.saturating_sub(started.elapsed());
            if wait > remaining {
                // Waiting would overrun the budget: give up now and say how long Graph asked for.
                let error = match failure.error {
                    GraphError::Throttled { .. } => {
                        GraphError::Throttled { retry_after: Some(wait) }
                    }
                    GraphError::Unavailable { .. } => {
                        GraphError::Unavailable { retry_after: Some(wait) }
                    }
                    other => other,
                };
                return Err(GraphFailure { error, ..failure });
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

fn transport_error(e: &reqwest::Error) -> GraphError {
    if e.is_timeout() { GraphError::Timeout } else { GraphError::Transport }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

fn header_string(
    headers: &reqwest::header::HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(200).collect())
}

/// Reads a body, stopping with [`GraphError::TooLarge`] as soon as it passes `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: u64) -> Result<Vec<u8>, GraphError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > cap {
                    return Err(GraphError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transport_error(&e)),
        }
    }
}

/// Maps a non-success Graph answer (`graph.md` §3.1).
fn map_status(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> GraphError {
    let envelope = error::parse_envelope(body);
    if status == 401 || status == 403 {
        let challenges = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        if let Some(claims) = error::insufficient_claims(challenges) {
            return GraphError::ClaimsChallenge { claims };
        }
    }
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::http::retry::parse_retry_after(v, Utc::now()));
    let code = if envelope.code.is_empty() { format!("http{status}") } else { envelope.code };
    match status {
        401 => GraphError::Unauthorized,
        403 => GraphError::Forbidden { code, message: envelope.message },
        404 | 410 => GraphError::NotFound,
        429 => GraphError::Throttled { retry_after },
        300..=399 => GraphError::DisallowedRedirect,
        500..=599 => GraphError::Unavailable { retry_after },
        _ => GraphError::BadRequest { code, message: envelope.message },
    }
}

#[cfg(test)]
mod tests;
