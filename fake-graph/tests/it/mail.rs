//! Mail: listing, filters, search, ordering rules, paging, bodies, ids, attachments, folders.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{MAIL, TestWorld, seg};

fn mailbox<'a>(w: &'a TestWorld, tenant: &str, local: &str) -> &'a fixtures::Mailbox {
    let (_, oid) = w.persona(tenant, local);
    w.tenant(tenant).content.mailboxes.iter().find(|m| m.owner == oid).expect("mailbox")
}

fn by_subject<'a>(mb: &'a fixtures::Mailbox, prefix: &str) -> &'a fixtures::Message {
    mb.messages.iter().find(|m| m.subject.starts_with(prefix)).expect("well-known message")
}

#[tokio::test]
async fn messages_come_newest_first_with_a_next_link_carrying_the_query() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get(&t, "/v1.0/me/messages?$top=2&$select=subject,receivedDateTime").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.body["value"].as_array().expect("value");
    assert_eq!(v.len(), 2);
    assert!(v[0]["receivedDateTime"].as_str() >= v[1]["receivedDateTime"].as_str());
    assert!(v[0].get("body").is_none(), "$select drops unselected properties");
    let next = r.body["@odata.nextLink"].as_str().expect("nextLink");
    assert!(next.starts_with(&format!("{}/v1.0/me/messages?", w.graph.uri())));
    assert!(next.contains("%24select=subject%2CreceivedDateTime") || next.contains("$select="));
    let page2 = w.get(&t, next).await;
    assert_eq!(page2.status, StatusCode::OK);
    assert_ne!(page2.body["value"][0]["id"], v[0]["id"]);
    let all = mailbox(&w, "contoso", "adele").messages.len();
    assert!(all > 2);
}

#[tokio::test]
async fn top_above_1000_is_refused() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    assert_eq!(w.get(&t, "/v1.0/me/messages?$top=1001").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn filter_by_sender_and_date_and_the_orderby_rule() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    let contract = by_subject(mailbox(&w, "contoso", "adele"), "Contract for review");
    let sender = contract.from.address.clone();
    let r = w
        .get(&t, &format!("/v1.0/me/messages?$filter=receivedDateTime ge 2000-01-01T00:00:00Z and from/emailAddress/address eq '{sender}'&$orderby=receivedDateTime desc"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.body["value"].as_array().expect("value");
    assert!(!v.is_empty());
    assert!(
        v.iter().all(|m| m["from"]["emailAddress"]["address"] == Value::String(sender.clone()))
    );
    let bad = w
        .get(&t, &format!("/v1.0/me/messages?$filter=from/emailAddress/address eq '{sender}'&$orderby=receivedDateTime desc"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "InefficientFilter");
    let unread =
        w.get(&t, "/v1.0/me/messages?$filter=isRead eq false and hasAttachments eq true").await;
    assert_eq!(unread.status, StatusCode::OK);
    assert!(
        unread.body["value"]
            .as_array()
            .expect("value")
            .iter()
            .all(|m| m["isRead"] == false && m["hasAttachments"] == true)
    );
}

#[tokio::test]
async fn search_finds_words_and_refuses_filter_or_orderby() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get(&t, "/v1.0/me/messages?$search=\"falcon\"").await;
    assert_eq!(r.status, StatusCode::OK);
    let subjects: Vec<&str> = r.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert!(subjects.iter().any(|s| s.contains("Project Falcon design notes")), "{subjects:?}");
    let bad =
        w.get(&t, "/v1.0/me/messages?$search=\"falcon\"&$orderby=receivedDateTime desc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.body["error"]["message"],
        "The query parameter '$orderBy' is not supported with '$search'."
    );
    let bad = w.get(&t, "/v1.0/me/messages?$search=\"falcon\"&$filter=isRead eq true").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mail_readbasic_gets_no_bodies_and_text_preference_converts_html() {
    let w = TestWorld::start().await;
    let mb = mailbox(&w, "contoso", "adele");
    let m = by_subject(mb, "Contoso Q3 budget review");
    let basic = w.token("contoso", "adele", &["Mail.ReadBasic"]);
    let r = w.get(&basic, &format!("/v1.0/me/messages/{}", seg(&m.id))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("body").is_none() && r.body.get("bodyPreview").is_none());
    let full = w.token("contoso", "adele", MAIL);
    let html = w.get(&full, &format!("/v1.0/me/messages/{}", seg(&m.id))).await;
    assert_eq!(html.body["body"]["contentType"], "html");
    let text = w
        .get_h(
            &full,
            &format!("/v1.0/me/messages/{}", seg(&m.id)),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(text.body["body"]["contentType"], "text");
    assert!(!text.body["body"]["content"].as_str().unwrap_or("<").contains('<'));
    assert_eq!(text.header("preference-applied"), "outlook.body-content-type=\"text\"");
}

#[tokio::test]
async fn immutable_ids_are_returned_and_accepted_only_with_the_preference() {
    let w = TestWorld::start().await;
    let m = by_subject(mailbox(&w, "contoso", "adele"), "Welcome to");
    let t = w.token("contoso", "adele", MAIL);
    let pref = [("Prefer", "IdType=\"ImmutableId\"")];
    let r = w.get_h(&t, &format!("/v1.0/me/messages/{}", seg(&m.immutable_id)), &pref).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], Value::String(m.immutable_id.clone()));
    if m.immutable_id != m.id {
        let r = w.get(&t, &format!("/v1.0/me/messages/{}", seg(&m.immutable_id))).await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "ErrorItemNotFound"));
    }
}

#[tokio::test]
async fn another_users_mailbox_is_access_denied_and_a_missing_message_is_not_found() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "diego", MAIL);
    let r = w.get(&t, "/v1.0/users/adele@contoso.com/messages").await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "ErrorAccessDenied"));
    let r = w.get(&t, "/v1.0/me/messages/AAMkAGNoSuchMessage").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "ErrorItemNotFound"));
    let r = w.get(&t, "/v1.0/me/messages/bad%3Fid").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "ErrorInvalidIdMalformed"));
}

#[tokio::test]
async fn attachments_carry_base64_bytes_and_need_mail_read() {
    let w = TestWorld::start().await;
    let m = by_subject(mailbox(&w, "contoso", "adele"), "Contract for review");
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get(&t, &format!("/v1.0/me/messages/{}/attachments", seg(&m.id))).await;
    assert_eq!(r.status, StatusCode::OK);
    let a = &r.body["value"][0];
    assert_eq!(a["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(a["name"], "Contract.pdf");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(a["contentBytes"].as_str().expect("bytes"))
        .expect("b64");
    assert_eq!(bytes, m.attachments[0].bytes);
    let basic = w.token("contoso", "adele", &["Mail.ReadBasic"]);
    assert_eq!(
        w.get(&basic, &format!("/v1.0/me/messages/{}/attachments", seg(&m.id))).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn folders_list_and_folder_messages_are_scoped() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", MAIL);
    let r = w.get(&t, "/v1.0/me/mailFolders").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["value"].as_array().expect("value").iter().any(|f| f["displayName"] == "Inbox"));
    let archive = w.get(&t, "/v1.0/me/mailFolders/archive/messages?$top=50").await;
    assert_eq!(archive.status, StatusCode::OK);
    let subjects: Vec<&str> = archive.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert!(subjects.iter().any(|s| s.starts_with("Welcome to")), "{subjects:?}");
}

#[tokio::test]
async fn users_filter_and_mailbox_settings() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", &["User.ReadBasic.All", "MailboxSettings.Read"]);
    let r = w
        .get(&t, "/v1.0/users?$filter=startswith(displayName,'Ale')&$select=id,displayName,mail")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.body["value"].as_array().expect("value");
    assert!(
        !v.is_empty()
            && v.iter().all(|u| u["displayName"].as_str().is_some_and(|n| n.starts_with("Ale")))
    );
    assert!(v[0].get("jobTitle").is_none());
    let s = w.get(&t, "/v1.0/me/mailboxSettings").await;
    assert_eq!(s.status, StatusCode::OK);
    assert!(s.body["timeZone"].is_string());
    assert!(s.body["workingHours"]["daysOfWeek"].is_array());
}
