//! The HTTP surface: PRM, health, metrics, Host/Origin allow-lists, limits, shedding, and one
//! end-to-end MCP session through the auth middleware with rmcp's own client.

use std::time::Duration;

use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientConfig},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_well_known_paths() {
    let app = spawn_app().await;
    for p in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
    {
        let response = app.http.get(app.url(p)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{p}");
        let doc: Value = response.json().await.unwrap();
        assert_eq!(doc["resource"], app.url("/mcp"));
        // The multi-tenant authority: an unauthenticated document must not enumerate the
        // enabled tenants (customers) by their issuers.
        assert_eq!(doc["authorization_servers"], json!([app.issuer("organizations")]));
        for tenant in [CONTOSO, FABRIKAM] {
            assert!(!doc.to_string().contains(tenant), "the PRM names tenant {tenant}: {doc}");
        }
        assert_eq!(doc["scopes_supported"], json!([format!("api://{CLIENT_ID}/access_as_user")]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc["resource_name"].is_string());
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let _ = app.post_mcp(None).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("m365_http_requests_total{route=\"mcp\",status=\"401\"} 1"), "{text}");
    assert!(text.contains("m365_tokens_rejected_total{reason=\"missing\"} 1"), "{text}");
    assert!(text.contains("# TYPE m365_http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn readiness_waits_for_the_signing_keys() {
    let app = spawn_app_with(Options { mount_entra: false, ..Options::default() }).await;
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    // With no keys ever loaded, a token cannot be decided: 503, not 401.
    let response = app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn a_foreign_host_is_refused_with_403() {
    let app = spawn_app().await;
    let response = app
        .post_mcp_with(Some(&app.token(CONTOSO, ADELE)), |r| r.header("host", "evil.example.com"))
        .await;
    assert_eq!(response.status(), 403);
    let prm = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource"))
        .header("host", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(prm.status(), 403);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_an_allowed_one_passes() {
    let app = spawn_app().await;
    let token = app.token(CONTOSO, ADELE);
    let evil =
        app.post_mcp_with(Some(&token), |r| r.header("origin", "http://evil.example.com")).await;
    assert_eq!(evil.status(), 403);
    let good = app.post_mcp_with(Some(&token), |r| r.header("origin", "https://claude.ai")).await;
    assert_eq!(good.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let app = spawn_app_with(Options { max_body_bytes: 1024, ..Options::default() }).await;
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x".repeat(4096)}});
    let response =
        app.post_mcp_with(Some(&app.token(CONTOSO, ADELE)), |r| r.body(big.to_string())).await;
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_shed_with_503() {
    // Arrange: a cap of 1, and a JWKS that answers slowly so the first request holds its slot
    // while it waits for an unknown kid's refresh.
    let app =
        spawn_app_with(Options { max_in_flight: 1, jwks_floor_secs: 1, ..Options::default() })
            .await;
    app.entra.reset().await;
    wiremock::Mock::given(wiremock::matchers::path(JWKS_PATH))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(jwks(&app.entra.uri(), &[&PRIMARY]))
                .set_delay(Duration::from_millis(800)),
        )
        .mount(&app.entra)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let slow_token = sign(&app.claims(CONTOSO, ADELE), &ROTATED, ROTATED.kid);
    let slow = app.post_mcp(Some(&slow_token));
    let fast = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await
    };
    // Act
    let (slow, fast) = tokio::join!(slow, fast);
    // Assert
    assert_eq!(slow.status(), 401);
    assert_eq!(fast.status(), 503);
    assert_eq!(fast.headers().get("retry-after").unwrap(), "1");
    assert_eq!(app.metrics.counter("m365_requests_shed_total", &[]), 1);
}

async fn rmcp_client(
    app: &TestApp,
    token: &str,
) -> Result<
    rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>,
    rmcp::service::ClientInitializeError,
> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"))
            .auth_header(token.to_owned()),
    );
    ClientConfig::default().serve(transport).await
}

#[tokio::test]
async fn an_mcp_client_lists_tools_and_calls_get_me_through_the_auth_middleware() {
    let app = spawn_app().await;
    let client = rmcp_client(&app, &app.token(CONTOSO, ADELE)).await.expect("client connects");

    let tools = client.list_all_tools().await.unwrap();
    let get_me = tools.iter().find(|t| t.name == "get_me").expect("get_me is listed");
    let annotations = get_me.annotations.as_ref().expect("annotations");
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.destructive_hint, Some(false));
    assert_eq!(annotations.idempotent_hint, Some(true));
    assert_eq!(annotations.open_world_hint, Some(true));

    let result = client.call_tool(CallToolRequestParams::new("get_me")).await.unwrap();
    assert_eq!(result.is_error, Some(false));
    let me = result.structured_content.expect("structured content");
    assert_eq!(me["tenant_id"], CONTOSO);
    assert_eq!(me["user_id"], ADELE);
    assert_eq!(me["display_name"], "Adele Vance");
    assert_eq!(me["time_zone"], "Pacific Standard Time");
    assert_eq!(me["allowed_tools"], json!(["*"]));
    client.cancel().await.unwrap();

    // The inbound token went only to Entra's token endpoint, never to Graph.
    let token = app.token(CONTOSO, ADELE);
    for r in app.graph.received_requests().await.unwrap() {
        let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
        assert_eq!(auth, "Bearer graph-access-token-for-adele");
        assert!(!auth.contains(&token));
    }

    let call = app
        .audit_lines()
        .into_iter()
        .find(|l| l["event"] == "tool_call")
        .expect("tool call audited");
    assert_eq!(call["tool"], "get_me");
    assert_eq!(call["outcome"], "ok");
    assert_eq!(call["user_id"], ADELE);
    assert_eq!(call["graph_request_ids"], json!(["graph-req-me"]));
    assert_eq!(call["token_id"], "AbCdEf123");
    assert_eq!(call["peer"], "127.0.0.1");
    assert!(app.audit_lines().iter().any(|l| l["event"] == "obo_exchange" && l["outcome"] == "ok"));
    match connector::audit::verify(&app.audit_path, None).unwrap() {
        connector::audit::Verdict::Ok(report) => {
            assert_eq!(report.records, app.audit_lines().len() as u64)
        }
        broken => panic!("{broken:?}"),
    }
}

#[tokio::test]
async fn a_tool_the_tenant_policy_does_not_allow_is_refused_as_a_tool_error() {
    let app = spawn_app().await;
    let client = rmcp_client(&app, &app.token(FABRIKAM, ADELE)).await.expect("client connects");
    let result = client.call_tool(CallToolRequestParams::new("get_me")).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    client.cancel().await.unwrap();
    let call = app.audit_lines().into_iter().find(|l| l["event"] == "tool_call").unwrap();
    assert_eq!(call["outcome"], "policy_refused");
}

#[tokio::test]
async fn an_mcp_client_with_a_bad_token_sees_the_challenge() {
    let app = spawn_app().await;
    let Err(err) = rmcp_client(&app, "not-a-jwt").await else {
        panic!("a bad token must not connect");
    };
    let text = format!("{err:?}");
    assert!(text.contains("resource_metadata"), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting() {
    let app = spawn_app().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());
}

/// A client that never finishes its request head (slowloris) is cut off after the header
/// timeout (1 s in the test settings) instead of holding the socket forever.
#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("write");
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await;
    assert!(closed.is_ok(), "the connection is still open after 10 s");
}

fn one_second_idle(s: &mut connector::config::RawSettings) {
    s.limits.idle_timeout_secs = 1;
}

fn one_connection(s: &mut connector::config::RawSettings) {
    s.limits.max_connections = 1;
}

/// Reads until the server closes the connection (bounded by 10 s).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await.is_ok()
}

/// An idle keep-alive HTTP/1 connection and an h2c connection that sends nothing after its
/// preface are both closed after the idle timeout (h2c has no header timer of its own).
#[tokio::test]
async fn idle_connections_of_both_protocols_are_closed() {
    use tokio::io::AsyncWriteExt as _;

    let app = spawn_app_with(Options { edit: one_second_idle, ..Options::default() }).await;
    let mut http1 = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    http1.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.expect("write");
    assert!(closed_by_server(&mut http1).await, "an idle HTTP/1 connection stays open");

    let mut h2c = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    // The client preface and an empty SETTINGS frame, then silence.
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("write");
    assert!(closed_by_server(&mut h2c).await, "an idle h2c connection stays open");
}

/// A request that takes longer than the idle timeout is not idleness: it completes.
#[tokio::test]
async fn a_slow_request_outlives_the_idle_timeout() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path},
    };
    let app = spawn_app_with(Options { edit: one_second_idle, ..Options::default() }).await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(
            json!({"id": ADELE, "displayName": "Adele Vance", "userPrincipalName": "adele@contoso.com"}),
        ))
        .with_priority(1)
        .mount(&app.graph)
        .await;
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "get_me", "arguments": {}}});
    let answer: Value = app
        .http
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .bearer_auth(app.token(CONTOSO, ADELE))
        .body(body.to_string())
        .send()
        .await
        .expect("the connection was not cut while the call ran")
        .json()
        .await
        .expect("JSON-RPC answer");
    assert_ne!(answer.pointer("/result/isError"), Some(&json!(true)), "{answer:#}");
}

/// Past `max_connections`, a new connection is not served until an open one goes away.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(Options { edit: one_connection, ..Options::default() }).await;
    let holder = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    // Give the accept loop a moment to take the first connection's slot.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let waiting = client.get(app.url("/healthz")).send();
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting).await.is_err(),
        "a connection past the cap was served while the slot was taken"
    );
    drop(holder);
    let served = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    assert_eq!(served.expect("served once the slot is free").expect("response").status(), 200);
}
