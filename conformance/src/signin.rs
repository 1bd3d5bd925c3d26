//! The discovery-driven OAuth client a real MCP client would be: it learns everything from the
//! connector's 401 and the metadata documents, never from configuration.
//!
//! 1. POST the MCP endpoint without a token: 401 with `WWW-Authenticate: Bearer
//!    resource_metadata="…"`.
//! 2. GET the Protected Resource Metadata: `resource`, `authorization_servers`, `scopes_supported`.
//! 3. Home-realm discovery: `{authority}/{upn domain}/v2.0/.well-known/openid-configuration`
//!    (Entra resolves verified domains), else the first advertised authorization server.
//! 4. `/authorize` with PKCE S256 and `login_hint` (the fake's non-interactive sign-in), read
//!    the code from the redirect `Location`.
//! 5. Redeem it at the token endpoint. Refresh and step-up (`claims`) reuse the same endpoints.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Where the client sends the browser back; Entra accepts any port on loopback redirect URIs.
pub const REDIRECT_URI: &str = "http://localhost:8400/callback";

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub resource: String,
    pub resource_metadata_url: String,
    pub authorization_servers: Vec<String>,
    pub scopes: Vec<String>,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

/// Tokens from the token endpoint.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: i64,
    #[serde(default)]
    pub scope: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An error Entra answered with (from a redirect or a token-endpoint body).
#[derive(Debug, Clone, Default)]
pub struct EntraError {
    pub status: u16,
    pub error: String,
    pub description: String,
    pub codes: Vec<u32>,
    pub claims: Option<String>,
}

impl std::fmt::Display for EntraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?}): {}", self.error, self.codes, self.description)
    }
}

impl std::error::Error for EntraError {}

impl EntraError {
    /// True when any AADSTS code of the error equals `code`.
    pub fn has_code(&self, code: u32) -> bool {
        self.codes.contains(&code) || self.description.contains(&format!("AADSTS{code}"))
    }
}

/// Why a sign-in failed.
#[derive(Debug)]
pub enum SignInError {
    /// Entra refused (consent, assignment, CA, disabled user, ...).
    Entra(EntraError),
    /// Discovery or the protocol went wrong.
    Protocol(anyhow::Error),
}

impl std::error::Error for SignInError {}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entra(e) => write!(f, "Entra refused the sign-in: {e}"),
            Self::Protocol(e) => write!(f, "sign-in protocol failure: {e:#}"),
        }
    }
}

impl SignInError {
    pub fn entra(&self) -> Option<&EntraError> {
        match self {
            Self::Entra(e) => Some(e),
            Self::Protocol(_) => None,
        }
    }
}

impl From<anyhow::Error> for SignInError {
    fn from(e: anyhow::Error) -> Self {
        Self::Protocol(e)
    }
}

/// Parses one parameter of a `WWW-Authenticate: Bearer a="b", c="d"` value.
pub fn challenge_param(header: &str, name: &str) -> Option<String> {
    let rest = header.trim().strip_prefix("Bearer")?.trim();
    let bytes = rest;
    let mut i = 0;
    while i < bytes.len() {
        let tail = &bytes[i..];
        let tail_trim = tail.trim_start_matches([' ', ',']);
        i += tail.len() - tail_trim.len();
        let Some(eq) = tail_trim.find('=') else { break };
        let key = tail_trim[..eq].trim();
        let after = &tail_trim[eq + 1..];
        let (value, used) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_owned(), 1 + end + 1)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), end)
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        i += eq + 1 + used.min(after.len());
    }
    None
}

/// PKCE S256: (verifier, challenge).
pub fn pkce_pair() -> (String, String) {
    let verifier = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The OAuth client of one MCP client registration.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub http: reqwest::Client,
    pub client_id: String,
}

impl OAuthClient {
    /// Steps 1–3: from the MCP URL to the user's authorization server.
    pub async fn discover(&self, mcp_url: &str, upn: &str) -> Result<Discovery> {
        let probe = self
            .http
            .post(mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(initialize_body().to_string())
            .send()
            .await
            .context("POST to the MCP endpoint without a token")?;
        if probe.status().as_u16() != 401 {
            bail!("the MCP endpoint answered {} without a token, expected 401", probe.status());
        }
        let header = probe
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("the 401 carries no WWW-Authenticate header"))?
            .to_owned();
        let prm_url = challenge_param(&header, "resource_metadata")
            .ok_or_else(|| anyhow!("WWW-Authenticate has no resource_metadata: {header}"))?;
        let prm: serde_json::Value =
            self.get_json(&prm_url).await.context("Protected Resource Metadata")?;
        let resource = prm["resource"].as_str().unwrap_or_default().to_owned();
        if resource != mcp_url {
            bail!("PRM resource `{resource}` is not the MCP URL `{mcp_url}` (RFC 9728 §3.3)");
        }
        let servers: Vec<String> = prm["authorization_servers"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let scopes: Vec<String> = prm["scopes_supported"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let first = servers.first().ok_or_else(|| anyhow!("PRM names no authorization server"))?;
        // `{authority}/{tenant}/v2.0` → `{authority}`.
        let authority = first
            .trim_end_matches('/')
            .strip_suffix("/v2.0")
            .and_then(|s| s.rsplit_once('/').map(|(a, _)| a.to_owned()))
            .ok_or_else(|| {
                anyhow!("authorization server `{first}` is not an Entra v2 authority")
            })?;
        let domain = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or(upn);
        let home = format!("{authority}/{domain}/v2.0/.well-known/openid-configuration");
        let meta = match self.get_json(&home).await {
            Ok(m) => m,
            Err(_) => self
                .get_json(&format!(
                    "{}/.well-known/openid-configuration",
                    first.trim_end_matches('/')
                ))
                .await
                .context("authorization server metadata")?,
        };
        let field = |k: &str| {
            meta[k].as_str().map(str::to_owned).ok_or_else(|| anyhow!("AS metadata lacks {k}"))
        };
        Ok(Discovery {
            resource,
            resource_metadata_url: prm_url,
            authorization_servers: servers,
            scopes,
            issuer: field("issuer")?,
            authorization_endpoint: field("authorization_endpoint")?,
            token_endpoint: field("token_endpoint")?,
        })
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value> {
        let r = self.http.get(url).send().await.with_context(|| format!("GET {url}"))?;
        if !r.status().is_success() {
            bail!("GET {url} answered {}", r.status());
        }
        r.json().await.with_context(|| format!("GET {url}: not JSON"))
    }

    /// Steps 4–5: authorize (PKCE, `login_hint`, extra parameters such as `claims`) and redeem.
    pub async fn authorize(
        &self,
        d: &Discovery,
        upn: &str,
        extra: &[(&str, &str)],
    ) -> Result<Tokens, SignInError> {
        let (verifier, challenge) = pkce_pair();
        let state = uuid::Uuid::new_v4().simple().to_string();
        let mut scopes = d.scopes.clone();
        scopes.push("offline_access".into());
        let scope = scopes.join(" ");
        let mut url =
            url::Url::parse(&d.authorization_endpoint).context("authorization endpoint URL")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("scope", &scope)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("login_hint", upn);
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        let r = self.http.get(url).send().await.context("GET /authorize")?;
        let status = r.status().as_u16();
        if !r.status().is_redirection() {
            let text = r.text().await.unwrap_or_default();
            return Err(SignInError::Entra(parse_error_body(status, &text)));
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("authorize redirect without Location"))?;
        let back = url::Url::parse(location).context("redirect Location")?;
        let params: HashMap<String, String> = back.query_pairs().into_owned().collect();
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").cloned().unwrap_or_default();
            let mut codes: Vec<u32> =
                params.get("error_codes").map(|c| parse_codes(c)).unwrap_or_default();
            if codes.is_empty() {
                codes = aadsts_in(&description);
            }
            return Err(SignInError::Entra(EntraError {
                status,
                error: error.clone(),
                description,
                codes,
                claims: params.get("claims").cloned(),
            }));
        }
        if params.get("state") != Some(&state) {
            return Err(anyhow!("state mismatch in the authorize redirect").into());
        }
        let code =
            params.get("code").ok_or_else(|| anyhow!("no code in the authorize redirect"))?;
        self.token(
            &d.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
                ("scope", &scope),
            ],
        )
        .await
    }

    /// The refresh-token grant.
    pub async fn refresh(&self, d: &Discovery, refresh_token: &str) -> Result<Tokens, SignInError> {
        let mut scopes = d.scopes.clone();
        scopes.push("offline_access".into());
        self.token(
            &d.token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("refresh_token", refresh_token),
                ("scope", &scopes.join(" ")),
            ],
        )
        .await
    }

    async fn token(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<Tokens, SignInError> {
        let r = self.http.post(endpoint).form(form).send().await.context("POST /token")?;
        let status = r.status().as_u16();
        let text = r.text().await.context("token response body")?;
        if !(200..300).contains(&status) {
            return Err(SignInError::Entra(parse_error_body(status, &text)));
        }
        serde_json::from_str(&text)
            .map_err(|e| SignInError::Protocol(anyhow!("token response: {e}")))
    }
}

fn parse_codes(text: &str) -> Vec<u32> {
    text.trim_matches(['[', ']']).split(',').filter_map(|c| c.trim().parse().ok()).collect()
}

fn aadsts_in(text: &str) -> Vec<u32> {
    text.split("AADSTS")
        .skip(1)
        .filter_map(|t| t.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
        .collect()
}

fn parse_error_body(status: u16, text: &str) -> EntraError {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let description = v["error_description"].as_str().unwrap_or(text).to_owned();
    let mut codes: Vec<u32> = v["error_codes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_u64().and_then(|c| u32::try_from(c).ok())).collect())
        .unwrap_or_default();
    if codes.is_empty() {
        codes = aadsts_in(&description);
    }
    EntraError {
        status,
        error: v["error"].as_str().unwrap_or("unknown").to_owned(),
        description,
        codes,
        claims: v["claims"].as_str().map(str::to_owned),
    }
}

/// The protocol revision the raw requests (this module's discovery probe included) speak (legacy era: no `Mcp-Method` headers needed).
pub const RAW_PROTOCOL_VERSION: &str = "2025-11-25";

/// The JSON-RPC `initialize` request of a legacy-era client.
pub fn initialize_body() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": RAW_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "m365-conformance", "version": "0"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters_are_read_in_any_order() {
        let h = r#"Bearer resource_metadata="http://x/.well-known/oauth-protected-resource/mcp", scope="api://a/b", error="invalid_token""#;
        assert_eq!(challenge_param(h, "scope").as_deref(), Some("api://a/b"));
        assert_eq!(challenge_param(h, "error").as_deref(), Some("invalid_token"));
        assert!(challenge_param(h, "resource_metadata").unwrap().ends_with("/mcp"));
        assert_eq!(challenge_param(h, "claims"), None);
    }

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (v, c) = pkce_pair();
        assert!(v.len() >= 43);
        assert_eq!(c, URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
    }
}
