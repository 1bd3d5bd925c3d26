//! Chats and channels.

use reqwest::StatusCode;

use crate::helpers::{ALL, TestWorld, seg};

#[tokio::test]
async fn chats_list_and_messages_with_paging_rules() {
    let w = TestWorld::start().await;
    let t = w.token("contoso", "adele", ALL);
    let r = w.get(&t, "/v1.0/me/chats").await;
    assert_eq!(r.status, StatusCode::OK);
    let chat = r.body["value"][0]["id"].as_str().expect("chat id").to_owned();
    let msgs = w.get(&t, &format!("/v1.0/chats/{}/messages?$top=2", seg(&chat))).await;
    assert_eq!(msgs.status, StatusCode::OK);
    let m = &msgs.body["value"][0];
    assert_eq!(m["from"]["user"]["@odata.type"], "#microsoft.graph.teamworkUserIdentity");
    let id = m["id"].as_str().expect("id");
    assert_eq!(
        w.get(&t, &format!("/v1.0/chats/{}/messages/{id}", seg(&chat))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.get(&t, &format!("/v1.0/chats/{}/messages?$top=51", seg(&chat))).await.status,
        StatusCode::BAD_REQUEST
    );
    let outsider = w.token("contoso", "diego", ALL);
    let r = w.get(&outsider, &format!("/v1.0/chats/{}/messages", seg(&chat))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn private_channels_are_hidden_from_non_members() {
    let w = TestWorld::start().await;
    let team = w.tenant("contoso").content.teams.first().expect("team");
    let t = w.token("contoso", "adele", ALL);
    let r = w.get(&t, &format!("/v1.0/teams/{}/channels", team.id)).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<&str> = r.body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|c| c["displayName"].as_str())
        .collect();
    assert!(names.contains(&"General") && !names.contains(&"Leadership"), "{names:?}");
    let general = team.channels.iter().find(|c| c.display_name == "General").expect("General");
    let r =
        w.get(&t, &format!("/v1.0/teams/{}/channels/{}/messages", team.id, seg(&general.id))).await;
    assert_eq!(r.status, StatusCode::OK);
    let no_scope = w.token("contoso", "adele", &["Chat.Read", "Channel.ReadBasic.All"]);
    let r = w
        .get(&no_scope, &format!("/v1.0/teams/{}/channels/{}/messages", team.id, seg(&general.id)))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "Forbidden"));
}
