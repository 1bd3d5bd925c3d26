//! Test harness: a running fake, an HTTP client that does not follow redirects, personas.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fake_entra::{FakeEntra, TokenResponse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const CONTOSO: &str = "2dafe747-82eb-4139-95a6-9c4ded21e24c";
pub const CONNECTOR_SECRET: &str = "TEST-ONLY-connector-secret-not-for-production-7Qm2~xV9";

pub struct TestEntra {
    pub entra: FakeEntra,
    pub http: reqwest::Client,
}

pub async fn spawn() -> TestEntra {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let entra = FakeEntra::builder().seed(7).start().await.expect("fake-entra starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    TestEntra { entra, http }
}

impl TestEntra {
    pub fn persona(&self, upn: &str) -> (Uuid, Uuid) {
        self.entra.persona(upn).unwrap_or_else(|| panic!("no persona {upn}"))
    }

    pub fn connector(&self) -> Uuid {
        self.entra.connector_id()
    }

    pub fn client(&self) -> Uuid {
        self.entra.mcp_client_id()
    }

    pub fn connector_scope(&self) -> String {
        format!("api://{}/access_as_user", self.connector())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.entra.uri())).send().await.expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a form to the token endpoint of `tenant`.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.entra.token_endpoint(tenant))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Signs a persona in for the connector scope (plus `offline_access` and `openid`).
    pub async fn sign_in(&self, upn: &str) -> TokenResponse {
        let scope = self.connector_scope();
        self.entra
            .sign_in(upn, self.client(), &[scope.as_str(), "offline_access", "openid"])
            .await
            .unwrap_or_else(|e| panic!("sign-in of {upn} failed: {}", e.error_description))
    }

    /// OBO for Graph scopes with the connector's secret, declaring cp1.
    pub async fn obo(&self, tenant: &str, assertion: &str, scopes: &str) -> (u16, Value) {
        let connector = self.connector().to_string();
        self.token(
            tenant,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("client_id", &connector),
                ("client_secret", CONNECTOR_SECRET),
                ("assertion", assertion),
                ("scope", scopes),
                ("requested_token_use", "on_behalf_of"),
                ("claims", r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#),
            ],
        )
        .await
    }

    /// `GET /authorize` without following the redirect: (status, Location query params).
    pub async fn authorize(
        &self,
        tenant: &str,
        params: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, String) {
        let r = self
            .http
            .get(format!("{}/{tenant}/oauth2/v2.0/authorize", self.entra.uri()))
            .query(params)
            .send()
            .await
            .expect("authorize");
        let status = r.status().as_u16();
        let loc =
            r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = r.text().await.unwrap_or_default();
        let params = url::Url::parse(&loc)
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        (status, params, body)
    }

    /// Validates a v2 token against the fake's own JWKS and the tenant's issuer (RS256).
    pub async fn validate_v2(&self, token: &str) -> Result<Value, String> {
        validate_with(self, token, Some(self.connector().to_string())).await
    }
}

pub async fn validate_with(
    t: &TestEntra,
    token: &str,
    aud: Option<String>,
) -> Result<Value, String> {
    let (_, jwks) = t.get_json("/common/discovery/v2.0/keys").await;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or("unknown kid")?;
    let dk = DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap_or(""),
        key["e"].as_str().unwrap_or(""),
    )
    .map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
    v.validate_nbf = true;
    match aud {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    let claims = jsonwebtoken::decode::<Value>(token, &dk, &v).map_err(|e| e.to_string())?.claims;
    let tid = claims["tid"].as_str().ok_or("no tid")?;
    let template = key["issuer"].as_str().ok_or("no key issuer")?;
    let expected = template.replace("{tenantid}", tid);
    if claims["iss"].as_str() != Some(expected.as_str()) {
        return Err(format!("issuer {} != {expected}", claims["iss"]));
    }
    Ok(claims)
}

/// Decodes a JWT segment without verification (tests only inspect what the fake produced).
pub fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap_or("");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap_or_default()).unwrap_or(Value::Null)
}

pub fn pkce() -> (String, String) {
    let verifier = "a".repeat(20) + &Uuid::new_v4().simple().to_string();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Insta redactions for an Entra error body: ids and times vary per response.
#[macro_export]
macro_rules! assert_entra_error {
    ($body:expr) => {
        let mut body = $body.clone();
        if let Some(d) = body.get("error_description").and_then(|d| d.as_str()) {
            let head = d.split("\r\nTrace ID:").next().unwrap_or("").to_string();
            body["error_description"] = serde_json::Value::String(format!("{head}\r\nTrace ID: [trace]\r\nCorrelation ID: [correlation]\r\nTimestamp: [timestamp]"));
        }
        insta::assert_json_snapshot!(body, {
            ".timestamp" => "[timestamp]",
            ".trace_id" => "[trace]",
            ".correlation_id" => "[correlation]",
        });
    };
}
