//! `read_resource` and MCP resources against fake-graph: hostile URIs, cross-tenant items, sharing
//! links, resource templates and the site/drive policy on every path (S07's outputs are
//! snapshotted by the conformance suite).

use serde_json::{Value, json};

use crate::tools_support::ToolsWorld;

async fn find(
    world: &ToolsWorld,
    who: &crate::tools_support::Persona,
    query: &str,
    name: &str,
) -> String {
    let content = world.structured(who, "sharepoint_search", json!({"query": query})).await;
    content["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .and_then(|i| i["uri"].as_str())
        .unwrap_or_else(|| panic!("{name} not found in {content:#}"))
        .to_owned()
}

#[tokio::test]
async fn f06_hostile_uris_are_refused_with_zero_egress() {
    let world = ToolsWorld::start().await;
    let adele = world.persona("adele@contoso.com");
    for uri in [
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "https://graph.microsoft.com/v1.0/users/x/messages",
        "https://graph.microsoft.com.evil.com/x",
        "m365://mail/../../users/x/messages/y",
        "m365://mail/%252e%252e%252f",
        "m365://drive/b!x/item/y?$expand=x",
        "\u{ff4d}365://mail/AAA",
        "m365://t/2dafe747-82eb-4139-95a6-9c4ded21e24c/mail/AAA",
    ] {
        let result = world.call_tool(&adele, "read_resource", json!({"uri": uri})).await;
        assert_eq!(result.pointer("/error/code"), Some(&json!(-32602)), "{uri}: {result:#}");
        assert_eq!(result.pointer("/error/data/field"), Some(&json!("uri")), "{uri}");
    }
    assert!(world.graph_calls(&adele).is_empty(), "{:?}", world.graph_calls(&adele));
}

#[tokio::test]
async fn i01_another_tenants_file_is_not_found() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let uri = find(&world, &alex, "Design", "Design.docx").await;
    let lee = world.persona("lee@fabrikam.com");
    let result = world.call_tool(&lee, "read_resource", json!({"uri": uri})).await;
    assert_eq!(result["isError"], json!(true), "{result:#}");
    assert_eq!(ToolsWorld::text(&result), "Not found, or you do not have access to it.");
}

#[tokio::test]
async fn sharing_links_resolve_through_shares_without_fetching_the_link() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let content = world.structured(&alex, "sharepoint_search", json!({"query": "Design"})).await;
    let hit = content["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "Design.docx")
        .unwrap()
        .clone();
    let link = hit["web_url"].as_str().unwrap();
    let read = world.structured(&alex, "read_resource", json!({"uri": link})).await;
    assert_eq!(read["uri"], hit["uri"]);
    assert!(world.graph_calls(&alex).iter().any(|c| c.contains("/shares/u!")));
}

#[tokio::test]
async fn mcp_resources_list_templates_and_read_m365_uris() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let templates = world.rpc(&alex, "resources/templates/list", json!({})).await;
    let list = templates
        .pointer("/result/resourceTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 7, "{templates:#}");
    let uri = find(&world, &alex, "Design", "Design.docx").await;
    let read = world.rpc(&alex, "resources/read", json!({"uri": uri})).await;
    let text = read.pointer("/result/contents/0/text").and_then(Value::as_str).unwrap_or_default();
    assert!(text.contains("Project Falcon"), "{read:#}");
    let missing =
        world.rpc(&alex, "resources/read", json!({"uri": "https://evil.example/x"})).await;
    // resource_not_found: -32602 for 2026-07-28 peers, the legacy -32002 for this 2025-06-18 one.
    let code = missing.pointer("/error/code").and_then(Value::as_i64);
    assert!(matches!(code, Some(-32602 | -32002)), "{missing:#}");
}

/// A URI, its site and its browser link, found by search in a world with an open policy (the
/// fixture ids are the same in every world).
async fn design_docx() -> (String, String, String, String) {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let content = world.structured(&alex, "sharepoint_search", json!({"query": "Design"})).await;
    let hit = content["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "Design.docx"))
        .cloned()
        .unwrap_or_else(|| panic!("{content:#}"));
    let mail = world.structured(&alex, "outlook_email_search", json!({})).await;
    let mail_uri = mail.pointer("/messages/0/uri").and_then(Value::as_str).unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&hit["uri"]), text(&hit["site_id"]), text(&hit["web_url"]), mail_uri.to_owned())
}

#[tokio::test]
async fn site_and_drive_policy_holds_on_every_path_to_content() {
    let (uri, site, link, _) = design_docx().await;
    assert!(!site.is_empty() && !link.is_empty());
    let host = site.split(',').next().unwrap_or_default().to_owned();
    // The file's own site allowed by host name: every path reads it.
    let world = ToolsWorld::start_with_policy(&format!("sites = [\"{host}\"]")).await;
    let alex = world.persona("alex@contoso.com");
    world.structured(&alex, "read_resource", json!({"uri": uri})).await;

    // Another site only: search withholds it, the URI and the pasted link are refused before
    // any content is read.
    let world = ToolsWorld::start_with_policy("sites = [\"elsewhere.sharepoint.com\"]").await;
    let alex = world.persona("alex@contoso.com");
    let found = world.structured(&alex, "sharepoint_search", json!({"query": "Design"})).await;
    assert_eq!(found["items"], json!([]), "{found:#}");
    for target in [&uri, &link] {
        let refused = world.call_tool(&alex, "read_resource", json!({"uri": target})).await;
        assert_eq!(refused["isError"], true, "{target}: {refused:#}");
        assert!(ToolsWorld::text(&refused).contains("this site"), "{refused:#}");
    }
    let calls = world.graph_calls(&alex);
    assert!(!calls.iter().any(|c| c.contains("/content") || c.contains("/children")), "{calls:#?}");

    // A drive list without this drive: refused before any Graph call for the item.
    let world = ToolsWorld::start_with_policy("drives = [\"b!some-other-drive\"]").await;
    let alex = world.persona("alex@contoso.com");
    let refused = world.call_tool(&alex, "read_resource", json!({"uri": uri})).await;
    assert!(ToolsWorld::text(&refused).contains("this drive"), "{refused:#}");
    assert!(world.graph_calls(&alex).iter().all(|c| !c.contains("/drives/")));
    let found = world.structured(&alex, "sharepoint_search", json!({"query": "Design"})).await;
    assert_eq!(found["items"], json!([]), "{found:#}");
}

#[tokio::test]
async fn switching_a_search_tool_off_stops_reading_its_items_by_uri() {
    let (_, _, _, mail_uri) = design_docx().await;
    assert!(mail_uri.starts_with("m365://mail/"), "{mail_uri}");
    let world = ToolsWorld::start_with_policy(
        "tools = [\"get_me\", \"read_resource\", \"sharepoint_search\"]",
    )
    .await;
    let alex = world.persona("alex@contoso.com");
    let refused = world.call_tool(&alex, "read_resource", json!({"uri": mail_uri})).await;
    assert_eq!(refused["isError"], true, "{refused:#}");
    let text = ToolsWorld::text(&refused);
    assert!(text.contains("outlook_email_search"), "names the tool that is off: {text}");
    assert!(world.graph_calls(&alex).is_empty(), "the refusal cost Graph calls");
}
