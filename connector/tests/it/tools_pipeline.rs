//! The tool-call pipeline, for every tool alike: each failure kind is audited with the same
//! outcome and status whichever tool meets it, and a refused argument costs no token exchange
//! and no Graph request.

use serde_json::{Value, json};
use wiremock::{Mock, ResponseTemplate, matchers::method};

use crate::helpers::*;

/// Every tool with arguments that are valid (so the call reaches Graph).
fn valid_calls() -> Vec<(&'static str, Value)> {
    vec![
        ("get_me", json!({})),
        ("sharepoint_search", json!({"query": "budget"})),
        ("sharepoint_folder_search", json!({"name": "specs"})),
        ("read_resource", json!({"uri": "m365://mail/AAMkAGI2TG93AAA"})),
        ("outlook_email_search", json!({"query": "budget"})),
        ("outlook_calendar_search", json!({"query": "review"})),
        (
            "find_meeting_availability",
            json!({"attendees": ["megan@contoso.com"], "duration_minutes": 30,
                   "start": "2030-01-07", "end": "2030-01-08"}),
        ),
        ("chat_message_search", json!({"query": "lunch"})),
    ]
}

/// Every tool that takes arguments, with one argument it refuses (and the field named).
fn bad_calls() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("sharepoint_search", json!({"query": "budget", "limit": 0}), "limit"),
        (
            "sharepoint_folder_search",
            json!({"name": "x", "site_url": "http://evil.example"}),
            "site_url",
        ),
        ("read_resource", json!({"uri": "https://evil.example/x"}), "uri"),
        ("outlook_email_search", json!({"folder": "../x"}), "folder"),
        ("outlook_calendar_search", json!({"start": "yesterday"}), "start"),
        (
            "find_meeting_availability",
            json!({"attendees": [], "duration_minutes": 30,
                   "start": "2030-01-07", "end": "2030-01-08"}),
            "attendees",
        ),
        ("chat_message_search", json!({"query": "lunch", "limit": 100}), "limit"),
    ]
}

async fn call(app: &TestApp, token: &str, name: &str, arguments: Value) -> Value {
    let response = app.call_tool_raw(token, name, arguments).await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| json!({"http_status": status}))
}

/// The last tool-call record of `tool`.
fn record(app: &TestApp, tool: &str) -> Value {
    app.audit_lines()
        .into_iter()
        .rev()
        .find(|l| l["event"] == "tool_call" && l["tool"] == tool)
        .unwrap_or_else(|| panic!("no audit record for {tool}"))
}

async fn token_requests(app: &TestApp) -> usize {
    let requests = app.entra.received_requests().await.unwrap_or_default();
    requests.iter().filter(|r| r.url.path().ends_with("/oauth2/v2.0/token")).count()
}

async fn graph_requests(app: &TestApp) -> usize {
    app.graph.received_requests().await.unwrap_or_default().len()
}

/// One way a call can fail, set up on a fresh app: what every Graph request (or every token
/// request) answers, and the audit outcome and status every tool must record.
struct FailureKind {
    name: &'static str,
    graph: Option<ResponseTemplate>,
    token: Option<ResponseTemplate>,
    outcome: &'static str,
    status: u64,
}

fn failure_kinds() -> Vec<FailureKind> {
    let graph_error = |status: u16, code: &str| {
        ResponseTemplate::new(status)
            .insert_header("request-id", "graph-req-failed")
            .set_body_json(json!({"error": {"code": code, "message": "no"}}))
    };
    let claims = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#,
    );
    vec![
        FailureKind {
            name: "forbidden",
            graph: Some(graph_error(403, "accessDenied")),
            token: None,
            outcome: "graph_error",
            status: 403,
        },
        FailureKind {
            name: "not found",
            graph: Some(graph_error(404, "itemNotFound")),
            token: None,
            outcome: "not_found",
            status: 404,
        },
        FailureKind {
            name: "throttled",
            graph: Some(graph_error(429, "TooManyRequests").insert_header("retry-after", "3600")),
            token: None,
            outcome: "graph_error",
            status: 429,
        },
        FailureKind {
            name: "unavailable",
            graph: Some(
                graph_error(503, "serviceNotAvailable").insert_header("retry-after", "3600"),
            ),
            token: None,
            outcome: "graph_error",
            status: 502,
        },
        FailureKind {
            name: "claims challenge",
            graph: Some(graph_error(401, "InvalidAuthenticationToken").insert_header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="{claims}""#
                )
                .as_str(),
            )),
            token: None,
            outcome: "claims_challenge",
            status: 401,
        },
        FailureKind {
            name: "consent missing",
            graph: None,
            token: Some(ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required",
                "error_description": "AADSTS65001: The user or administrator has not consented",
            }))),
            outcome: "graph_error",
            status: 403,
        },
    ]
}

#[tokio::test]
async fn every_failure_kind_is_audited_alike_for_every_tool() {
    let mut table = Vec::new();
    for kind in failure_kinds() {
        for (tool, arguments) in valid_calls() {
            let app = spawn_app().await;
            if let Some(answer) = &kind.graph {
                Mock::given(method("GET"))
                    .respond_with(answer.clone())
                    .with_priority(1)
                    .mount(&app.graph)
                    .await;
                Mock::given(method("POST"))
                    .respond_with(answer.clone())
                    .with_priority(1)
                    .mount(&app.graph)
                    .await;
            }
            if let Some(answer) = &kind.token {
                Mock::given(method("POST"))
                    .respond_with(answer.clone())
                    .with_priority(1)
                    .mount(&app.entra)
                    .await;
            }
            let answer = call(&app, &app.token(CONTOSO, ADELE), tool, arguments).await;
            let record = record(&app, tool);
            table.push((kind.name, tool, record["outcome"].clone(), record["status"].clone()));
            assert_eq!(
                (record["outcome"].as_str(), record["status"].as_u64()),
                (Some(kind.outcome), Some(kind.status)),
                "{} through {tool}: {record} (answer {answer})",
                kind.name
            );
            // A failure is an error the client sees, never an empty success.
            assert!(
                answer["result"]["isError"] == json!(true)
                    || answer.get("error").is_some()
                    || answer["http_status"] == json!(401),
                "{} through {tool}: {answer}",
                kind.name
            );
            if kind.graph.is_some() {
                assert_ne!(
                    record["graph_request_ids"],
                    json!([]),
                    "{} through {tool}: the failed request's id is recorded",
                    kind.name
                );
            }
        }
    }
    assert_eq!(table.len(), failure_kinds().len() * valid_calls().len());
}

#[tokio::test]
async fn a_tool_the_policy_switches_off_is_refused_alike_for_every_tool() {
    let app = spawn_app_with(Options {
        policy: format!(
            r#"
            [[tenants]]
            id = "{CONTOSO}"
            name = "contoso"
            tools = ["a_tool_that_does_not_exist"]
            "#
        ),
        ..Options::default()
    })
    .await;
    for (tool, arguments) in valid_calls() {
        let answer = call(&app, &app.token(CONTOSO, ADELE), tool, arguments).await;
        assert_eq!(answer["result"]["isError"], json!(true), "{tool}: {answer}");
        let record = record(&app, tool);
        assert_eq!(record["outcome"], "policy_refused", "{tool}");
        assert_eq!(record["status"], 403, "{tool}");
    }
    assert_eq!(token_requests(&app).await, 0, "a refused tool exchanges no token");
    assert_eq!(graph_requests(&app).await, 0, "a refused tool calls no Graph");
}

#[tokio::test]
async fn a_bad_argument_costs_no_token_exchange_and_no_graph_request() {
    let app = spawn_app().await;
    for (tool, arguments, field) in bad_calls() {
        let answer = call(&app, &app.token(CONTOSO, ADELE), tool, arguments).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(answer["error"]["code"], json!(-32602), "{tool}: {answer}");
        assert!(message.contains(field), "{tool}: the refusal names `{field}`: {message}");
        let record = record(&app, tool);
        assert_eq!(record["outcome"], "invalid_params", "{tool}");
        assert_eq!(record["status"], 400, "{tool}");
        assert_eq!(record["obo"], "none", "{tool}: {record}");
        assert_eq!(token_requests(&app).await, 0, "{tool} exchanged a token");
        assert_eq!(graph_requests(&app).await, 0, "{tool} called Graph");
    }
}
