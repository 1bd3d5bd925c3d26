//! The token request itself: the form (assertion, explicit scopes, `claims` with `cp1`), the
//! client secret or `private_key_jwt` assertion, and reading Entra's answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{ClientCredential, GRAPH_RESOURCE, GraphToken, Inner, OboError, TokenCacheKey, error};
use crate::domain::{Caller, ScopeSet};

/// The CAE capability every token request declares (`entra.md` §9.3).
const CP1_CLAIMS: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;
/// Bound on one token request (`security.md` §5 note 1).
const OBO_TIMEOUT: Duration = Duration::from_secs(10);
/// Token responses are a few KiB; anything far larger is not a token response.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Lifetime of a client assertion JWT.
const ASSERTION_LIFETIME_SECS: i64 = 600;

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    scope: Option<String>,
    expires_in: Seconds,
}

impl Inner {
    pub(super) async fn exchange(
        &self,
        key: &TokenCacheKey,
        caller: &Caller,
        claims: Option<&str>,
    ) -> Result<GraphToken, OboError> {
        let s = &self.settings;
        let endpoint = s.token_endpoint(key.tenant);
        let scope_param = key
            .scopes
            .iter()
            .map(|sc| format!("{GRAPH_RESOURCE}{sc}"))
            .collect::<Vec<_>>()
            .join(" ");
        let claims = merge_claims(claims)?;
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned().into()),
            ("client_id", s.client_id.to_string().into()),
            ("assertion", caller.assertion.expose().to_owned().into()),
            ("scope", scope_param.into()),
            ("requested_token_use", "on_behalf_of".to_owned().into()),
            ("claims", claims.into()),
        ];
        match &s.credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose_secret().to_owned().into()));
            }
            ClientCredential::Certificate { private_key_pem, x5t } => {
                let jwt = client_assertion(
                    private_key_pem.expose_secret(),
                    x5t,
                    s.client_id,
                    &endpoint,
                    self.clock.unix_seconds(),
                )?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned().into(),
                ));
                form.push(("client_assertion", jwt.into()));
            }
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request_id = Uuid::new_v4();
        // Never closed, so `acquire` cannot fail; without a permit the exchange still runs.
        let slot = self.exchanges.acquire().await.ok();
        let response = self
            .http
            .post(&endpoint)
            .header("client-request-id", request_id.to_string())
            .header("return-client-request-id", "true")
            .timeout(OBO_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|_| OboError::Unreachable)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::http::retry::parse_retry_after(v, Utc::now()));
        let body = read_capped(response).await?;
        drop(slot);
        if (200..300).contains(&status) {
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| OboError::Internal("unreadable token response"))?;
            let lifetime = match &parsed.expires_in {
                Seconds::Number(n) => *n,
                Seconds::Text(t) => {
                    t.trim().parse().map_err(|_| OboError::Internal("unreadable token lifetime"))?
                }
            };
            let expires_at =
                DateTime::from_timestamp(self.clock.unix_seconds().saturating_add(lifetime), 0)
                    .ok_or(OboError::Internal("unreadable token lifetime"))?;
            let scopes = match parsed.scope.as_deref() {
                Some(scope) => granted_scopes(scope),
                None => key.scopes.clone(),
            };
            return Ok(GraphToken {
                access_token: SecretString::from(parsed.access_token),
                scopes,
                expires_at,
            });
        }
        let body: error::EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        tracing::warn!(
            tenant = %key.tenant,
            status,
            error = %body.error.chars().take(64).collect::<String>(),
            error_codes = ?body.error_codes,
            suberror = ?body.suberror,
            trace_id = ?body.trace_id,
            correlation_id = ?body.correlation_id,
            client_request_id = %request_id,
            "on-behalf-of exchange refused"
        );
        let consent_url = s.admin_consent_url(key.tenant);
        let scopes = key.scopes.to_scope_param();
        let ctx = error::ErrorContext { consent_url: &consent_url, scopes: &scopes };
        Err(error::map_entra_error(status, retry_after, &body, &ctx))
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, OboError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| OboError::Unreachable)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(OboError::Internal("oversized token response"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Graph answers `scope` with or without the resource prefix; keep the short names.
fn granted_scopes(scope: &str) -> ScopeSet {
    ScopeSet::from_iter(scope.split(' ').filter(|s| !s.is_empty()).map(|s| {
        if s.len() > GRAPH_RESOURCE.len()
            && s[..GRAPH_RESOURCE.len()].eq_ignore_ascii_case(GRAPH_RESOURCE)
        {
            s[GRAPH_RESOURCE.len()..].to_owned()
        } else {
            s.to_owned()
        }
    }))
}

/// The `claims` parameter: `cp1` always, merged with a challenge's claims as siblings under
/// the same top-level objects (`entra.md` §9.3). The challenge may be base64 (standard or
/// url-safe, padded or not) as Graph sends it, or raw JSON as Entra sends it.
pub fn merge_claims(challenge: Option<&str>) -> Result<String, OboError> {
    let mut merged: serde_json::Value =
        serde_json::from_str(CP1_CLAIMS).map_err(|_| OboError::Internal("claims"))?;
    let Some(challenge) = challenge.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(merged.to_string());
    };
    let json = if challenge.starts_with('{') {
        challenge.as_bytes().to_vec()
    } else {
        crate::http::decode_base64_any(challenge)
            .ok_or(OboError::Internal("claims challenge is not base64"))?
    };
    let serde_json::Value::Object(extra) = serde_json::from_slice(&json)
        .map_err(|_| OboError::Internal("claims challenge is not JSON"))?
    else {
        return Err(OboError::Internal("claims challenge is not a JSON object"));
    };
    let Some(target) = merged.as_object_mut() else { return Err(OboError::Internal("claims")) };
    for (token_kind, requested) in extra {
        match (target.get_mut(&token_kind), requested) {
            (Some(serde_json::Value::Object(have)), serde_json::Value::Object(add)) => {
                for (claim, rule) in add {
                    if claim == "xms_cc" {
                        continue; // our capability declaration stays as is
                    }
                    have.insert(claim, rule);
                }
            }
            (_, requested) => {
                target.insert(token_kind, requested);
            }
        }
    }
    Ok(merged.to_string())
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// A `private_key_jwt` client assertion (RS256, `x5t` header, aud = the token endpoint).
fn client_assertion(
    pem: &str,
    x5t: &str,
    client_id: Uuid,
    endpoint: &str,
    now: i64,
) -> Result<String, OboError> {
    let misconfigured =
        || OboError::Misconfigured { error: "client_certificate".into(), code: None };
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| misconfigured())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(x5t.to_owned());
    let claims = AssertionClaims {
        aud: endpoint,
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        jti: Uuid::new_v4().to_string(),
        nbf: now,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &key).map_err(|_| misconfigured())
}
