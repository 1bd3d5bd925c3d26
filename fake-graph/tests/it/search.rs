//! /search/query: validation, trimming before paging, entity types.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALL, TestWorld};

fn req(entity: &[&str], q: &str, from: u64, size: u64) -> Value {
    json!({"requests": [{"entityTypes": entity, "query": {"queryString": q}, "from": from, "size": size}]})
}

fn container(r: &crate::helpers::Resp) -> &Value {
    &r.body["value"][0]["hitsContainers"][0]
}

#[tokio::test]
async fn validation_errors_match_graphs_rules() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", ALL);
    for body in [
        req(&["message", "driveItem"], "budget", 0, 10),
        req(&["message"], "budget", 0, 26),
        req(&["message"], "budget", 25, 25),
        json!({"requests": [{"entityTypes": ["event"], "query": {"queryString": "sync"}, "sortProperties": [{"name": "start"}]}]}),
        json!({"requests": []}),
        req(&["driveItem"], "", 0, 10),
    ] {
        let r = w.post(&t, "/v1.0/search/query", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.code(), "BadRequest");
    }
}

#[tokio::test]
async fn message_search_pages_with_per_page_totals_and_highlights() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", ALL);
    let r = w.post(&t, "/v1.0/search/query", req(&["message"], "budget", 0, 1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = container(&r);
    assert_eq!(c["total"], 1);
    let hit = &c["hits"][0];
    assert!(hit["summary"].as_str().expect("summary").to_lowercase().contains("<c0>budget</c0>"));
    assert!(hit["resource"].get("id").is_none());
    assert!(hit["hitId"].is_string());
    let basic = w.token("contoso", "adele", &["Mail.ReadBasic"]);
    let r = w.post(&basic, "/v1.0/search/query", req(&["message"], "budget", 0, 1)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn drive_item_search_is_trimmed_before_paging() {
    let w = TestWorld::start().await;
    let q = "\"Master Services Agreement\" OR filename:Contract";
    let megan = w.token("contoso", "megan", ALL);
    let r = w.post(&megan, "/v1.0/search/query", req(&["driveItem"], q, 0, 25)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<&str> = container(&r)["hits"]
        .as_array()
        .map(|h| h.iter().filter_map(|h| h["resource"]["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&"Contract.pdf"), "{names:?}");
    let adele = w.token("contoso", "adele", ALL);
    let r = w
        .post(&adele, "/v1.0/search/query", req(&["driveItem"], "filename:Contract.pdf", 0, 25))
        .await;
    assert_eq!(container(&r)["total"], 0);
    assert_eq!(container(&r)["moreResultsAvailable"], false);
    let hit = w
        .post(&megan, "/v1.0/search/query", req(&["driveItem"], "filename:Contract.pdf", 0, 25))
        .await;
    let resource = &container(&hit)["hits"][0]["resource"];
    assert_eq!(resource["@odata.type"], "#microsoft.graph.driveItem");
    assert!(resource["parentReference"]["driveId"].is_string() && resource["id"].is_string());
}

#[tokio::test]
async fn folders_and_filetypes_and_sites() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "megan", ALL);
    let r = w.post(&t, "/v1.0/search/query", req(&["driveItem"], "IsContainer:true", 0, 100)).await;
    let hits = container(&r)["hits"].as_array().cloned().unwrap_or_default();
    assert!(!hits.is_empty() && hits.iter().all(|h| h["resource"]["folder"].is_object()));
    let r = w.post(&t, "/v1.0/search/query", req(&["driveItem"], "filetype:pptx", 0, 100)).await;
    let hits = container(&r)["hits"].as_array().cloned().unwrap_or_default();
    assert!(
        !hits.is_empty()
            && hits
                .iter()
                .all(|h| h["resource"]["name"].as_str().is_some_and(|n| n.ends_with(".pptx")))
    );
    let r = w.post(&t, "/v1.0/search/query", req(&["site"], "Finance", 0, 10)).await;
    let site = &container(&r)["hits"][0];
    assert_eq!(site["resource"]["@odata.type"], "#microsoft.graph.site");
    assert_eq!(site["hitId"], site["resource"]["id"]);
    let files_only = w.token("contoso", "megan", &["Files.Read.All"]);
    assert_eq!(
        w.post(&files_only, "/v1.0/search/query", req(&["site"], "Finance", 0, 10)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.post(&files_only, "/v1.0/search/query", req(&["driveItem"], "Finance", 0, 10))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn event_and_chat_hits_have_graphs_quirks() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", ALL);
    let r = w.post(&t, "/v1.0/search/query", req(&["event"], "sync", 0, 5)).await;
    let ev = &container(&r)["hits"][0]["resource"];
    assert_eq!(ev["@odata.type"], "#microsoft.graph.event");
    assert!(
        ev["sensitivity"]
            .as_str()
            .is_some_and(|s| s.chars().next().is_some_and(char::is_uppercase))
    );
    let r = w.post(&t, "/v1.0/search/query", req(&["chatMessage"], "budget", 0, 5)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let chat = &container(&r)["hits"][0]["resource"];
    assert_eq!(chat["@odata.type"], "microsoft.graph.chatMessage");
    assert!(chat["chatId"].is_string());
}

#[tokio::test]
async fn drive_item_search_follows_world_edits() {
    let w = TestWorld::start().await;
    let megan = w.token("contoso", "megan", ALL);
    let names = |r: &crate::helpers::Resp| -> Vec<String> {
        container(r)["hits"]
            .as_array()
            .map(|h| {
                h.iter().filter_map(|h| h["resource"]["name"].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    };
    // Rename the file, and drop an earlier leaf file of the same drive so positions shift.
    let renamed = w.graph.edit_world(|world| {
        let t = world.tenants.iter_mut().find(|t| t.name == "contoso").expect("contoso");
        for d in &mut t.content.drives {
            let Some(pos) = d.items.iter().position(|i| i.name == "Contract.pdf") else { continue };
            d.items[pos].name = "Zebrafish Terms.pdf".into();
            let parents: Vec<String> = d.items.iter().filter_map(|i| i.parent_id.clone()).collect();
            if let Some(earlier) =
                d.items[..pos].iter().position(|i| !i.is_folder && !parents.contains(&i.id))
            {
                d.items.remove(earlier);
            }
            return true;
        }
        false
    });
    assert!(renamed, "the standard world has Contract.pdf");
    let r = w.post(&megan, "/v1.0/search/query", req(&["driveItem"], "zebrafish", 0, 25)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(names(&r), ["Zebrafish Terms.pdf"]);
    assert_eq!(container(&r)["total"], 1);
    let r = w
        .post(&megan, "/v1.0/search/query", req(&["driveItem"], "filename:Contract.pdf", 0, 25))
        .await;
    assert_eq!(container(&r)["total"], 0, "{}", r.body);
}
