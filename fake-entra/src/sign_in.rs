//! The in-process sign-in on the handle: `/authorize` with `login_hint`, PKCE S256 and the
//! code redemption, run through the fake's router without a socket, as a test's stand-in for
//! an MCP client and a browser.

use axum::{body::Body, extract::ConnectInfo, http::Request};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{ErrorBody, FakeEntra, TokenResponse, listener::Conn, tokens};

impl FakeEntra {
    /// router, in-process, and returns the token response or Entra's error body. `scopes`
    /// are passed as given (e.g. `api://{connector}/access_as_user`, `offline_access`).
    pub async fn sign_in(
        &self,
        upn: &str,
        client_id: Uuid,
        scopes: &[&str],
    ) -> Result<TokenResponse, ErrorBody> {
        self.sign_in_with(upn, client_id, scopes, &[]).await
    }

    /// [`Self::sign_in`] with extra `/authorize` parameters (`fake_mfa`, `fake_ip`,
    /// `fake_device_compliant`, `claims`).
    pub async fn sign_in_with(
        &self,
        upn: &str,
        client_id: Uuid,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, ErrorBody> {
        let (tenant, redirect, public, secret) = {
            let inner = self.shared.lock();
            let tenant = inner
                .dir
                .user_by_upn(upn)
                .map(|(t, _)| t.id.to_string())
                .unwrap_or_else(|| "common".into());
            let app = inner.dir.app(&client_id.to_string());
            let redirect = app
                .and_then(|a| a.redirect_uris.first().cloned())
                .map(|r| loopback_with_port(&r))
                .unwrap_or_else(|| "http://localhost:8400/callback".into());
            let public = app.is_none_or(|a| a.public_client);
            let secret = app.and_then(|a| a.client_secrets.first().cloned());
            (tenant, redirect, public, secret)
        };
        let verifier = format!("{}{}", tokens::new_uti(), tokens::new_uti());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = tokens::new_uti();
        let scope = scopes.join(" ");
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &client_id.to_string())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", &scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", upn);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        let uri = format!("/{tenant}/oauth2/v2.0/authorize?{}", q.finish());
        let resp = self.call(Request::get(uri).body(Body::empty())).await;
        let status = resp.0;
        let location = resp.1.unwrap_or_default();
        let body = resp.2;
        if !status.is_redirection() {
            return Err(serde_json::from_slice(&body)
                .unwrap_or_else(|_| local_error("authorize did not redirect")));
        }
        let url = url::Url::parse(&location).map_err(|_| local_error("bad redirect location"))?;
        let params: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        if let Some(err) = params.get("error") {
            return Err(ErrorBody {
                error: err.clone(),
                error_description: params.get("error_description").cloned().unwrap_or_default(),
                error_codes: params
                    .get("error_codes")
                    .and_then(|c| c.parse().ok())
                    .map(|c| vec![c])
                    .unwrap_or_default(),
                timestamp: params.get("timestamp").cloned().unwrap_or_default(),
                trace_id: params.get("trace_id").cloned().unwrap_or_default(),
                correlation_id: params.get("correlation_id").cloned().unwrap_or_default(),
                error_uri: params.get("error_uri").cloned().unwrap_or_default(),
                suberror: params.get("suberror").cloned(),
                claims: params.get("claims").cloned(),
            });
        }
        if params.get("state") != Some(&state) {
            return Err(local_error("state mismatch"));
        }
        let code = params.get("code").cloned().ok_or_else(|| local_error("no code in redirect"))?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("client_id", &client_id.to_string())
            .append_pair("code", &code)
            .append_pair("redirect_uri", &redirect)
            .append_pair("code_verifier", &verifier)
            .append_pair("scope", &scope);
        if !public && let Some(sec) = &secret {
            form.append_pair("client_secret", sec);
        }
        let req = Request::post(format!("/{tenant}/oauth2/v2.0/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.finish()));
        let (status, _, body) = self.call(req).await;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|_| local_error("token response did not parse"))
        } else {
            Err(serde_json::from_slice(&body)
                .unwrap_or_else(|_| local_error("token error did not parse")))
        }
    }

    async fn call(
        &self,
        req: Result<Request<Body>, axum::http::Error>,
    ) -> (axum::http::StatusCode, Option<String>, Vec<u8>) {
        use tower::ServiceExt;
        let Ok(mut req) = req else { return (axum::http::StatusCode::BAD_REQUEST, None, vec![]) };
        let conn = Conn::in_process();
        req.extensions_mut().insert(ConnectInfo(conn.clone()));
        let Ok(resp) = self.router.clone().oneshot(req).await;
        if conn.drop.pulled() {
            // A `DropConnection` fault: a socket client would read no answer at all.
            let body = serde_json::to_vec(&local_error("connection dropped")).unwrap_or_default();
            return (axum::http::StatusCode::BAD_GATEWAY, None, body);
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get(axum::http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (status, location, body)
    }
}

/// A registered loopback redirect URI with a concrete port (Entra accepts any port).
fn loopback_with_port(r: &str) -> String {
    match url::Url::parse(r) {
        Ok(mut u)
            if matches!(u.host_str(), Some("localhost" | "127.0.0.1")) && u.port().is_none() =>
        {
            let _ = u.set_port(Some(8400));
            u.to_string()
        }
        _ => r.to_string(),
    }
}

fn local_error(msg: &str) -> ErrorBody {
    ErrorBody {
        error: "fake_entra_client_error".into(),
        error_description: msg.into(),
        error_codes: vec![],
        timestamp: String::new(),
        trace_id: String::new(),
        correlation_id: String::new(),
        error_uri: String::new(),
        suberror: None,
        claims: None,
    }
}
