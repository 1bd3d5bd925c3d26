//! `sharepoint_search` and `sharepoint_folder_search` against fake-graph (S01, S02, R08, I04).

use insta::assert_json_snapshot;
use serde_json::{Value, json};

use crate::tools_support::{ToolsWorld, redact};

#[tokio::test]
async fn s01_sharepoint_search_finds_the_budget_workbook_with_a_readable_uri() {
    // Arrange
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");

    // Act
    let result = world.call_tool(&alex, "sharepoint_search", json!({"query": "Q3 Budget"})).await;

    // Assert
    let content = result.get("structuredContent").cloned().unwrap_or_else(|| panic!("{result:#}"));
    let names: Vec<&str> =
        content["items"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert!(names.contains(&"Q3 Budget.xlsx"), "{names:?}");
    let uri = content["items"][0]["uri"].as_str().expect("every hit has a uri");
    assert!(uri.starts_with("m365://drive/b%21"), "{uri}");
    assert_json_snapshot!(
        "s01_q3_budget",
        json!({"text": ToolsWorld::text(&result), "structured": redact(&content)})
    );
}

#[tokio::test]
async fn s01_filters_are_applied_by_graph_and_listed() {
    let world = ToolsWorld::start().await;
    let megan = world.persona("megan@contoso.com");
    let content = world
        .structured(
            &megan,
            "sharepoint_search",
            json!({"query": "Contoso", "file_types": ["pdf"], "site_url": "https://contoso.sharepoint.com/sites/Finance", "modified_after": "2020-01-01"}),
        )
        .await;
    for item in content["items"].as_array().unwrap() {
        assert!(item["name"].as_str().unwrap().ends_with(".pdf"), "{item}");
    }
    assert_json_snapshot!("s01_filters", redact(&content));
}

#[tokio::test]
async fn s01_paging_walks_to_the_end_and_cursors_are_bound_to_the_caller() {
    let world = ToolsWorld::start().await;
    let megan = world.persona("megan@contoso.com");
    let adele = world.persona("adele@contoso.com");
    let args = json!({"query": "Contoso", "limit": 2});
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut a = args.clone();
        if let Some(c) = &cursor {
            a["cursor"] = json!(c);
        }
        let content = world.structured(&megan, "sharepoint_search", a).await;
        pages += 1;
        for item in content["items"].as_array().unwrap() {
            seen.push(item["uri"].clone());
        }
        assert_eq!(
            content["page"]["returned"].as_u64().unwrap() as usize,
            content["items"].as_array().unwrap().len()
        );
        match content["page"]["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(content["page"]["has_more"], json!(true));
                if pages == 1 {
                    // I04: another user presenting this cursor is refused with invalid_params.
                    let mut stolen = args.clone();
                    stolen["cursor"] = json!(c);
                    let refused = world.call_tool(&adele, "sharepoint_search", stolen).await;
                    assert_eq!(refused.pointer("/error/code"), Some(&json!(-32602)), "{refused:#}");
                    // A changed query is refused too.
                    let changed = json!({"query": "Budget", "cursor": c});
                    let refused = world.call_tool(&megan, "sharepoint_search", changed).await;
                    assert_eq!(refused.pointer("/error/code"), Some(&json!(-32602)), "{refused:#}");
                }
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(content["page"]["has_more"], json!(false));
                break;
            }
        }
        assert!(pages < 50, "paging never ends");
    }
    assert!(pages >= 2, "expected several pages, got {pages}");
    let unique: std::collections::BTreeSet<String> = seen.iter().map(Value::to_string).collect();
    assert_eq!(unique.len(), seen.len(), "no hit appears twice across pages");
}

#[tokio::test]
async fn s02_folder_search_returns_folders_with_their_path() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let result = world.call_tool(&alex, "sharepoint_folder_search", json!({"name": "Specs"})).await;
    let content = result.get("structuredContent").cloned().unwrap_or_else(|| panic!("{result:#}"));
    let items = content["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["kind"] == "folder"));
    assert!(items.iter().any(|i| i["path"] == "Project Falcon"), "{items:?}");
    assert_json_snapshot!(
        "s02_specs",
        json!({"text": ToolsWorld::text(&result), "structured": redact(&content)})
    );
}

#[tokio::test]
async fn injection_and_bad_filters_are_refused_naming_the_field() {
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    for (args, field) in [
        (json!({"query": ""}), "query"),
        (json!({"query": "x", "site_url": "https://evil.example/sites/x"}), "site_url"),
        (json!({"query": "x", "file_types": ["pdf OR filetype:docx"]}), "file_types"),
        (json!({"query": "x", "modified_after": "last week"}), "modified_after"),
        (json!({"query": "x", "cursor": "forged.cursor"}), "cursor"),
    ] {
        let result = world.call_tool(&alex, "sharepoint_search", args.clone()).await;
        assert_eq!(result.pointer("/error/code"), Some(&json!(-32602)), "{args}: {result:#}");
        assert_eq!(result.pointer("/error/data/field"), Some(&json!(field)), "{args}: {result:#}");
    }
    assert!(world.graph_calls(&alex).iter().all(|c| !c.contains("/search/query")));
}

#[tokio::test]
async fn r08_only_sites_selected_explains_that_sites_read_all_is_needed() {
    // Arrange: the tenant's consent loses Sites.Read.All and keeps only Sites.Selected.
    let world = ToolsWorld::start().await;
    let alex = world.persona("alex@contoso.com");
    let connector = world.entra.connector_id();
    world
        .entra
        .revoke_consent(
            "contoso",
            connector,
            fake_entra::GrantResource::Graph,
            &["Sites.Read.All", "Files.Read.All"],
        )
        .expect("revoked");
    world
        .entra
        .grant_consent("contoso", connector, fake_entra::GrantResource::Graph, &["Sites.Selected"])
        .expect("granted");

    // Act
    let result = world.call_tool(&alex, "sharepoint_search", json!({"query": "budget"})).await;

    // Assert
    assert_eq!(result["isError"], json!(true), "{result:#}");
    let text = ToolsWorld::text(&result);
    assert!(text.contains("Sites.Read.All") && text.contains("Sites.Selected"), "{text}");
    assert!(world.graph_calls(&alex).iter().all(|c| !c.contains("/search/query")));
}

#[tokio::test]
async fn cursors_expire_on_the_shared_clock() {
    let world = ToolsWorld::start().await;
    let megan = world.persona("megan@contoso.com");
    let first = world
        .structured(&megan, "sharepoint_search", json!({"query": "Contoso", "limit": 1}))
        .await;
    let cursor = first["page"]["next_cursor"].as_str().expect("a second page").to_owned();
    world.clock.advance(std::time::Duration::from_secs(2 * 3600));
    let megan = world.persona("megan@contoso.com");
    let result = world
        .call_tool(
            &megan,
            "sharepoint_search",
            json!({"query": "Contoso", "limit": 1, "cursor": cursor}),
        )
        .await;
    assert_eq!(result.pointer("/error/code"), Some(&json!(-32602)), "{result:#}");
    assert!(
        result
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .contains("expired")
    );
}
