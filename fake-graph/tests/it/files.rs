//! Drives, items, trimming, download redirects, sites, sharing links, content edits.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::{TestWorld, seg};

const FILES: &[&str] = &["Files.Read.All", "Sites.Read.All"];

/// (drive id, item) of a well-known item by name.
fn item<'a>(
    w: &'a TestWorld,
    tenant: &str,
    name: &str,
) -> (&'a fixtures::Drive, &'a fixtures::DriveItem) {
    w.tenant(tenant)
        .content
        .drives
        .iter()
        .find_map(|d| d.items.iter().find(|i| i.name == name).map(|i| (d, i)))
        .expect("well-known item")
}

#[tokio::test]
async fn my_drive_root_children_show_the_private_note() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["Files.Read"]);
    let d = w.get(&t, "/v1.0/me/drive").await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["driveType"], "business");
    let kids = w.get(&t, "/v1.0/me/drive/root/children").await;
    assert_eq!(kids.status, StatusCode::OK);
    assert!(
        kids.body["value"]
            .as_array()
            .expect("value")
            .iter()
            .any(|i| i["name"] == "Adele private notes.txt")
    );
}

#[tokio::test]
async fn a_private_item_is_not_found_for_others_and_files_read_is_own_drive_only() {
    let w = TestWorld::start().await;
    let (d, it) = item(&w, "contoso", "Adele private notes.txt");
    let path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&it.id));
    let alex = w.token("contoso", "alex", FILES);
    let r = w.get(&alex, &path).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "itemNotFound"));
    let adele = w.token("contoso", "adele", FILES);
    assert_eq!(w.get(&adele, &path).await.status, StatusCode::OK);
    let own_only = w.token("contoso", "alex", &["Files.Read"]);
    let (ld, li) = item(&w, "contoso", "Design.docx");
    let r = w.get(&own_only, &format!("/v1.0/drives/{}/items/{}", seg(&ld.id), seg(&li.id))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "accessDenied"));
}

#[tokio::test]
async fn site_membership_and_sharing_decide_visibility() {
    let w = TestWorld::start().await;
    let (d, contract) = item(&w, "contoso", "Contract.pdf");
    let path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&contract.id));
    assert_eq!(w.get(&w.token("contoso", "megan", FILES), &path).await.status, StatusCode::OK);
    assert_eq!(
        w.get(&w.token("contoso", "adele", FILES), &path).await.status,
        StatusCode::NOT_FOUND
    );
    let (d, design) = item(&w, "contoso", "Design.docx");
    let path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&design.id));
    assert_eq!(w.get(&w.token("contoso", "diego", FILES), &path).await.status, StatusCode::OK);
}

#[tokio::test]
async fn content_redirects_to_a_preauthenticated_url_that_serves_ranges_and_expires() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", FILES);
    let (d, it) = item(&w, "contoso", "Adele private notes.txt");
    let r = w.get(&t, &format!("/v1.0/drives/{}/items/{}/content", seg(&d.id), seg(&it.id))).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let location = r.header("location").to_owned();
    assert!(location.starts_with(&format!("{}/_download/", w.graph.uri())), "{location}");
    let bytes = w.http.get(&location).send().await.expect("download").bytes().await.expect("bytes");
    assert_eq!(bytes.as_ref(), it.bytes.as_deref().expect("file bytes"));
    let part = w.http.get(&location).header("Range", "bytes=0-3").send().await.expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("bytes").len(), 4);
    let downloads = w.graph.downloads();
    assert!(downloads.iter().all(|d| !d.had_authorization));
    let mut tampered = location.clone();
    tampered.push('x');
    assert_eq!(
        w.http.get(&tampered).send().await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
    w.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        w.http.get(&location).send().await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_separate_download_host_serves_downloads_and_nothing_else() {
    let w =
        TestWorld::start_with(|b| b.download_host(fake_graph::DownloadHost::separate_loopback()))
            .await;
    let t = w.token("contoso", "adele", FILES);
    let (d, it) = item(&w, "contoso", "Adele private notes.txt");
    let item_path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&it.id));
    let r = w.get(&t, &item_path).await;
    let url = r.body["@microsoft.graph.downloadUrl"].as_str().unwrap_or_default().to_owned();
    let download = w.graph.download_uri();
    assert_ne!(download, w.graph.uri(), "another origin than Graph's");
    assert!(download.starts_with("http://127.0.0."), "{download}");
    assert!(url.starts_with(&format!("{download}/_download/")), "{url}");
    let r = w.get(&t, &format!("{item_path}/content")).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::FOUND, url.as_str()));
    let bytes = w.http.get(&url).send().await.expect("download").bytes().await.expect("bytes");
    assert_eq!(bytes.as_ref(), it.bytes.as_deref().expect("file bytes"));
    // The bearer sent to the download host is recorded (a client must not send it).
    let with_bearer = w.http.get(&url).bearer_auth(&t).send().await.expect("download");
    assert_eq!(with_bearer.status(), StatusCode::OK);
    let flags: Vec<bool> = w.graph.downloads().iter().map(|d| d.had_authorization).collect();
    assert_eq!(flags, vec![false, true]);
    // Graph's listener no longer serves downloads, the download host serves no Graph API.
    let moved = url.replacen(&download, &w.graph.uri(), 1);
    assert_ne!(w.http.get(&moved).send().await.expect("sent").status(), StatusCode::OK);
    let api = format!("{download}/v1.0/me");
    let r = w.http.get(&api).bearer_auth(&t).send().await.expect("sent");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sites_are_trimmed_to_membership() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", FILES);
    let r = w.get(&t, "/v1.0/sites?search=*").await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<&str> = r.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"AllCompany"), "{names:?}");
    assert!(!names.contains(&"Finance"), "{names:?}");
    let finance =
        w.tenant("contoso").content.sites.iter().find(|s| s.name == "Finance").expect("site");
    let r = w.get(&t, &format!("/v1.0/sites/{}", seg(&finance.id))).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "itemNotFound"));
    let megan = w.token("contoso", "megan", FILES);
    let r = w.get(&megan, &format!("/v1.0/sites/{}/drives", seg(&finance.id))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["value"][0]["driveType"], "documentLibrary");
}

#[tokio::test]
async fn drive_search_needs_sites_scopes_and_is_trimmed() {
    let w = TestWorld::start().await;
    let (d, _) = item(&w, "contoso", "Design.docx");
    let path = format!("/v1.0/drives/{}/root/search(q='Design')", seg(&d.id));
    let files_only = w.token("contoso", "diego", &["Files.Read.All"]);
    assert_eq!(w.get(&files_only, &path).await.status, StatusCode::FORBIDDEN);
    let t = w.token("contoso", "diego", &["Sites.Read.All"]);
    let r = w.get(&t, &path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["value"].as_array().expect("value").iter().any(|i| i["name"] == "Design.docx"));
}

#[tokio::test]
async fn a_sharing_link_resolves_through_shares() {
    let w = TestWorld::start().await;
    let (_, design) = item(&w, "contoso", "Design.docx");
    use base64::Engine;
    let key =
        format!("u!{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&design.web_url));
    let t = w.token("contoso", "diego", FILES);
    let r = w.get(&t, &format!("/v1.0/shares/{key}/driveItem")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], serde_json::Value::String(design.id.clone()));
}

#[tokio::test]
async fn unsharing_and_deleting_take_effect_on_the_next_request() {
    let w = TestWorld::start().await;
    let (tid, _) = w.persona("contoso", "diego");
    let (d, design) = item(&w, "contoso", "Design.docx");
    let path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&design.id));
    let t = w.token("contoso", "diego", FILES);
    assert_eq!(w.get(&t, &path).await.status, StatusCode::OK);
    assert!(w.graph.unshare(tid, &d.id, &design.id, None));
    assert_eq!(w.get(&t, &path).await.status, StatusCode::NOT_FOUND);
    let (d, note) = item(&w, "contoso", "Adele private notes.txt");
    let adele = w.token("contoso", "adele", FILES);
    let path = format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&note.id));
    assert_eq!(w.get(&adele, &path).await.status, StatusCode::OK);
    let r = w
        .send(
            Method::POST,
            None,
            "/_fake/content/drive-items/delete",
            Some(serde_json::json!({"tenantId": tid, "driveId": d.id, "itemId": note.id})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(w.get(&adele, &path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenants_drive_is_not_found() {
    let w = TestWorld::start().await;
    let (d, it) = item(&w, "fabrikam", "Design.docx");
    let t = w.token("contoso", "megan", FILES);
    let r = w.get(&t, &format!("/v1.0/drives/{}/items/{}", seg(&d.id), seg(&it.id))).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "itemNotFound"));
}
