//! `/authorize` (reference/entra.md §5.1): checks the client and redirect URI (errors shown,
//! not redirected), then the request (errors redirected per `response_mode`), signs the
//! `login_hint` persona in with the sign-in context Conditional Access evaluates, and issues a
//! code. Without `login_hint` it serves the persona picker, a page for a person at a browser.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use fixtures::TenantKind;
use uuid::Uuid;

use crate::{
    consent::{Resource, check_ca, check_consent, parse_claims, parse_scopes},
    error::{self, AadError},
    faults::{Endpoint, apply_fault},
    journal::JournalEntry,
    listener::{Peer, conn_of},
    state::{AppState, AuthCode, Directory, SignInContext},
    tenant::{TenantRef, resolve_tenant},
    tokens,
};

/// Does `given` match a registered redirect URI? Loopback URIs match on any port.
pub(crate) fn redirect_allowed(registered: &[String], given: &str) -> bool {
    let Ok(g) = url::Url::parse(given) else { return false };
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        let Ok(r) = url::Url::parse(r) else { return false };
        let loopback = matches!(r.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        loopback
            && r.scheme() == g.scheme()
            && r.host_str() == g.host_str()
            && r.path() == g.path()
            && r.query() == g.query()
    })
}

fn redirect_error(
    redirect_uri: &str,
    mode: &str,
    state: Option<&str>,
    err: &AadError,
    now: chrono::DateTime<chrono::Utc>,
    headers: &HeaderMap,
) -> Response {
    let trace = Uuid::new_v4().to_string();
    let corr = error::correlation_id(headers);
    let body = err.body(now, &trace, &corr);
    let mut params = vec![
        ("error", body.error.clone()),
        ("error_description", body.error_description.clone()),
        ("error_codes", err.code.to_string()),
        ("timestamp", body.timestamp.clone()),
        ("trace_id", trace),
        ("correlation_id", corr),
        ("error_uri", body.error_uri.clone()),
    ];
    if let Some(sub) = &err.suberror {
        params.push(("suberror", sub.clone()));
    }
    if let Some(c) = &err.claims {
        params.push(("claims", c.clone()));
    }
    if let Some(st) = state {
        params.push(("state", st.to_string()));
    }
    respond_to_redirect(redirect_uri, mode, &params)
}

fn respond_to_redirect(redirect_uri: &str, mode: &str, params: &[(&str, String)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    match mode {
        "fragment" => {
            let frag =
                url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
            url.set_fragment(Some(&frag));
            found(url.as_str())
        }
        "form_post" => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                        html_escape(k),
                        html_escape(v)
                    )
                })
                .collect();
            Html(format!(
                "<html><head><title>Working...</title></head><body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">{inputs}<noscript><input type=\"submit\" value=\"Continue\"/></noscript></form><script>document.forms[0].submit()</script></body></html>",
                html_escape(redirect_uri)
            ))
            .into_response()
        }
        _ => {
            url.query_pairs_mut().extend_pairs(params);
            found(url.as_str())
        }
    }
}

/// Entra answers `/authorize` with 302 Found.
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(super) async fn authorize(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let mut p: HashMap<String, String> = HashMap::new();
    for (k, v) in &q {
        p.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let now = s.now();
    let resolved = resolve_tenant(&s.lock().dir, &tenant);
    let t = match resolved {
        Ok(t) => t,
        Err(e) => return e.render(now, &headers),
    };
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let conn = conn_of(peer);
    if let Some(r) =
        apply_fault(s.as_ref(), Endpoint::Authorize, t.id(), Some(&client_id), &conn, &headers)
            .await
    {
        return r;
    }
    // Errors before the redirect URI is trusted are shown to the user, not redirected.
    let (app, dir_snapshot) = {
        let inner = s.lock();
        (inner.dir.app(&client_id).cloned(), inner.dir.clone())
    };
    let Some(app) = app else {
        return if client_id.is_empty() {
            error::missing_param("client_id").render(now, &headers)
        } else {
            error::app_not_found(&client_id, &tenant).render(now, &headers)
        };
    };
    let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
        return error::missing_param("redirect_uri").render(now, &headers);
    };
    if !redirect_allowed(&app.redirect_uris, &redirect_uri) {
        return AadError::new(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
                app.app_id
            ),
        )
        .render(now, &headers);
    }
    let mode = p.get("response_mode").cloned().unwrap_or_else(|| "query".into());
    let state = p.get("state").cloned();
    let fail =
        |e: AadError| redirect_error(&redirect_uri, &mode, state.as_deref(), &e, now, &headers);

    if p.get("response_type").map(String::as_str) != Some("code") {
        return fail(AadError::new(
            "unsupported_response_type",
            700054,
            "response_type must be 'code' for this application.",
        ));
    }
    let method = p.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into());
    let challenge = p.get("code_challenge").cloned();
    if !matches!(method.as_str(), "S256" | "plain") {
        return fail(error::invalid_request(
            501491,
            format!("Unsupported code_challenge_method '{method}'. Supported: S256, plain."),
        ));
    }
    if let Some(c) = &challenge
        && !(43..=128).contains(&c.len())
    {
        return fail(error::invalid_request(501491, "Invalid size of Code_Challenge parameter."));
    }
    let scopes = match parse_scopes(&dir_snapshot, p.get("scope").map(String::as_str).unwrap_or(""))
    {
        Ok(sc) if sc.resource.is_none() && sc.oidc.is_empty() => {
            return fail(error::invalid_scope(p.get("scope").map(String::as_str).unwrap_or("")));
        }
        Ok(sc) => sc,
        Err(e) => return fail(e),
    };
    let (cp1, claims_mfa) = parse_claims(p.get("claims").map(String::as_str));

    // No login_hint: the persona picker, for a person with a browser.
    let Some(hint) = p.get("login_hint").cloned() else {
        return persona_page(&dir_snapshot, t, &tenant, &q);
    };
    let Some((tdir, user)) = dir_snapshot.user_by_upn(&hint) else {
        return fail(AadError::new(
            "invalid_request",
            50034,
            format!(
                "The user account {hint} does not exist in the '{tenant}' directory. To sign into this application, the account must be added to the directory."
            ),
        ));
    };
    let journal_scopes = scopes.all(&dir_snapshot);
    let record = |code: Option<u32>, err: Option<String>| {
        let mut inner = s.lock();
        let seq = inner.journal.len() as u64 + 1;
        inner.journal.push(JournalEntry {
            seq,
            time: now,
            endpoint: "authorize".into(),
            grant: "authorize".into(),
            client_id: Some(client_id.clone()),
            tenant_id: Some(tdir.id),
            user_id: Some(user.oid),
            scopes: journal_scopes.clone(),
            uti: None,
            error_code: code,
            error: err,
            cp1,
        });
    };
    let refuse = |e: AadError, redirect_err: &str| {
        record(Some(e.code), Some(e.error.clone()));
        let mut e = e;
        e.error = redirect_err.into();
        fail(e)
    };
    if !t.admits(tdir) {
        return refuse(error::user_not_in_tenant(&user.upn, &tenant), "access_denied");
    }
    if !user.enabled {
        return refuse(error::user_disabled(), "access_denied");
    }
    // The sign-in context Conditional Access evaluates.
    let want_mfa = p.get("fake_mfa").is_some_and(|v| v == "true") || claims_mfa;
    let mut ctx = SignInContext::for_user(user, now);
    ctx.mfa = want_mfa && user.mfa_registered;
    if let Some(c) = p.get("fake_device_compliant") {
        ctx.compliant = c == "true";
    }
    ctx.ip = p
        .get("fake_ip")
        .cloned()
        .or_else(|| user.device.ip.clone())
        .unwrap_or_else(|| conn.peer.ip().to_string());

    if tdir.kind == TenantKind::Organization {
        if let Some(resource) = scopes.resource
            && let Err(e) = check_consent(tdir, &app, resource, &scopes.names)
        {
            return refuse(e, "consent_required");
        }
        if scopes.resource == Some(Resource::Connector) && !tdir.is_assigned(user) {
            let c = &dir_snapshot.apps.connector;
            return refuse(
                error::not_assigned(&user.upn, c.app_id, &c.display_name),
                "access_denied",
            );
        }
        let resource_name = match scopes.resource {
            Some(Resource::Graph) => tokens::GRAPH_AUDIENCE.to_string(),
            _ => dir_snapshot.apps.connector.app_id.to_string(),
        };
        if let Err(e) = check_ca(tdir, user, &ctx, &resource_name) {
            let redirect_err = if matches!(e.code, 50076 | 50079) {
                "interaction_required"
            } else {
                "access_denied"
            };
            return refuse(e, redirect_err);
        }
    }
    let code = format!("1.A{}", tokens::new_uti() + &tokens::new_uti());
    {
        let mut inner = s.lock();
        inner.codes.insert(
            code.clone(),
            AuthCode {
                client_id: app.app_id,
                redirect_uri: redirect_uri.clone(),
                code_challenge: challenge,
                code_challenge_method: method,
                scopes: journal_scopes.clone(),
                tid: tdir.id,
                oid: user.oid,
                ctx,
                cp1,
                nonce: p.get("nonce").cloned(),
                issued: now,
                redeemed: false,
            },
        );
    }
    record(None, None);
    let mut params = vec![("code", code)];
    if let Some(st) = &state {
        params.push(("state", st.clone()));
    }
    params.push(("session_state", Uuid::new_v5(&tdir.id, user.oid.as_bytes()).to_string()));
    respond_to_redirect(&redirect_uri, &mode, &params)
}

/// The HTML persona picker: one link per persona that completes the flow.
fn persona_page(
    dir: &Directory,
    t: TenantRef,
    tenant_seg: &str,
    q: &[(String, String)],
) -> Response {
    let mut rows = String::new();
    for tenant in dir.tenants.iter().filter(|td| t.admits(td)) {
        rows.push_str(&format!("<h2>{}</h2><ul>", html_escape(&tenant.display_name)));
        for u in &tenant.users {
            let link = |mfa: bool| {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in q.iter().filter(|(k, _)| k != "login_hint" && k != "fake_mfa") {
                    ser.append_pair(k, v);
                }
                ser.append_pair("login_hint", &u.upn);
                if mfa {
                    ser.append_pair("fake_mfa", "true");
                }
                format!("/{}/oauth2/v2.0/authorize?{}", tenant_seg, ser.finish())
            };
            rows.push_str(&format!(
                "<li><a href=\"{}\">{}</a> ({}){} — <a href=\"{}\">with MFA</a></li>",
                html_escape(&link(false)),
                html_escape(&u.display_name),
                html_escape(&u.upn),
                if u.enabled { "" } else { " [disabled]" },
                html_escape(&link(true)),
            ));
        }
        rows.push_str("</ul>");
    }
    Html(format!(
        "<!doctype html><html><head><title>Sign in to your account (fake-entra)</title></head><body><h1>Pick an account</h1><p>fake-entra: a test identity provider. Choose a persona.</p>{rows}</body></html>"
    ))
    .into_response()
}
