//! /search/query for `drive` and `list`: document libraries and OneDrives, trimmed to what the
//! caller can open before paging.
//!
//! Contoso's sites: Finance (members: Megan), Engineering (Alex, Megan), AllCompany (everyone);
//! each has one library, `Documents` (`Shared Documents` in its URL). Every user has a
//! OneDrive named `OneDrive`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALL, Resp, TestWorld};

fn req(entity: &[&str], q: &str) -> Value {
    json!({"requests": [{"entityTypes": entity, "query": {"queryString": q}, "from": 0, "size": 50}]})
}

fn hits(r: &Resp) -> Vec<Value> {
    r.body["value"][0]["hitsContainers"][0]["hits"].as_array().cloned().unwrap_or_default()
}

fn urls(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = hits(r)
        .iter()
        .filter_map(|h| h["resource"]["webUrl"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn drive_search_finds_the_libraries_and_the_onedrive_the_caller_can_open() {
    // Arrange
    let w = TestWorld::start().await;
    let megan = w.token("contoso", "megan", ALL);
    let adele = w.token("contoso", "adele", ALL);
    let files_only = w.token("contoso", "adele", &["Files.Read.All"]);

    // Act
    let all_libraries = w.post(&megan, "/v1.0/search/query", req(&["drive"], "Documents")).await;
    let adeles = w.post(&adele, "/v1.0/search/query", req(&["drive"], "Documents")).await;
    let own_onedrive = w.post(&adele, "/v1.0/search/query", req(&["drive"], "OneDrive")).await;
    let star = w.post(&megan, "/v1.0/search/query", req(&["drive"], "*")).await;
    let with_files_scope =
        w.post(&files_only, "/v1.0/search/query", req(&["drive"], "Documents")).await;

    // Assert
    assert_eq!(all_libraries.status, StatusCode::OK, "{}", all_libraries.body);
    assert_eq!(
        urls(&all_libraries),
        [
            "https://contoso.sharepoint.com/sites/AllCompany/Shared%20Documents",
            "https://contoso.sharepoint.com/sites/Engineering/Shared%20Documents",
            "https://contoso.sharepoint.com/sites/Finance/Shared%20Documents",
        ]
    );
    assert_eq!(all_libraries.body["value"][0]["hitsContainers"][0]["total"], 3);
    for h in hits(&all_libraries) {
        let r = &h["resource"];
        assert_eq!(r["@odata.type"], "#microsoft.graph.drive");
        assert_eq!(r["driveType"], "documentLibrary");
        assert_eq!(r["name"], "Documents");
        assert_eq!(h["hitId"], r["id"]);
        assert!(r["id"].as_str().is_some_and(|id| id.starts_with("b!")));
        assert!(r["createdDateTime"].is_string() && r["lastModifiedDateTime"].is_string());
    }
    // Adele is a member of AllCompany only.
    assert_eq!(
        urls(&adeles),
        ["https://contoso.sharepoint.com/sites/AllCompany/Shared%20Documents"]
    );
    // Every user has a OneDrive; only her own is hers to see.
    let own = hits(&own_onedrive);
    assert_eq!(own.len(), 1, "{}", own_onedrive.body);
    assert_eq!(own[0]["resource"]["driveType"], "business");
    assert!(own[0]["resource"]["webUrl"].as_str().is_some_and(|u| u.contains("adele")));
    // `*` does not list drives (Graph: a term of the library name is needed).
    assert_eq!(star.status, StatusCode::OK);
    assert_eq!(star.body["value"][0]["hitsContainers"][0]["total"], 0);
    // Files.Read.All is enough for drives.
    assert_eq!(with_files_scope.status, StatusCode::OK, "{}", with_files_scope.body);
}

#[tokio::test]
async fn list_search_returns_site_document_libraries_trimmed_to_membership() {
    // Arrange
    let w = TestWorld::start().await;
    let megan = w.token("contoso", "megan", ALL);
    let alex = w.token("contoso", "alex", ALL);
    let files_only = w.token("contoso", "alex", &["Files.Read.All"]);
    let sites = w.tenant("contoso").content.sites.clone();
    let site_id = |name: &str| sites.iter().find(|s| s.name == name).map(|s| s.id.clone());

    // Act
    let megans = w.post(&megan, "/v1.0/search/query", req(&["list"], "Documents")).await;
    let alexs = w.post(&alex, "/v1.0/search/query", req(&["list"], "\"Shared Documents\"")).await;
    let mixed = w
        .post(
            &alex,
            "/v1.0/search/query",
            req(&["driveItem", "listItem", "list"], "Documents OR Falcon"),
        )
        .await;
    let denied = w.post(&files_only, "/v1.0/search/query", req(&["list"], "Documents")).await;

    // Assert
    assert_eq!(megans.status, StatusCode::OK, "{}", megans.body);
    assert_eq!(hits(&megans).len(), 3);
    for h in hits(&megans) {
        let r = &h["resource"];
        assert_eq!(r["@odata.type"], "#microsoft.graph.list");
        assert_eq!(r["displayName"], "Documents");
        assert_eq!(r["name"], "Shared Documents");
        assert_eq!(r["list"]["template"], "documentLibrary");
        assert_eq!(h["hitId"], r["id"]);
        assert!(uuid::Uuid::parse_str(r["id"].as_str().unwrap_or("")).is_ok(), "{r}");
        assert!(
            r["webUrl"]
                .as_str()
                .is_some_and(|u| u.ends_with("/Shared%20Documents/Forms/AllItems.aspx"))
        );
        assert!(sites.iter().any(|s| r["parentReference"]["siteId"] == s.id.as_str()), "{r}");
    }
    // Alex belongs to Engineering and AllCompany, not Finance: Finance's library is hidden.
    let alex_sites: Vec<Value> =
        hits(&alexs).iter().map(|h| h["resource"]["parentReference"]["siteId"].clone()).collect();
    assert_eq!(alex_sites.len(), 2, "{}", alexs.body);
    assert!(alex_sites.contains(&json!(site_id("Engineering"))));
    assert!(alex_sites.contains(&json!(site_id("AllCompany"))));
    assert!(!alex_sites.contains(&json!(site_id("Finance"))));
    assert_eq!(alexs.body["value"][0]["hitsContainers"][0]["total"], 2);
    // Files as driveItem, libraries as list, in one answer.
    let types: Vec<String> = hits(&mixed)
        .iter()
        .filter_map(|h| h["resource"]["@odata.type"].as_str().map(str::to_owned))
        .collect();
    assert!(types.iter().any(|t| t == "#microsoft.graph.driveItem"), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "#microsoft.graph.list").count(), 2, "{types:?}");
    // Lists need Sites.Read.All.
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}
