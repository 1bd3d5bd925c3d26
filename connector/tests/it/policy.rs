//! Tenant policy reload: a change to the file acts on the next call.

use std::time::Duration;

use connector::{domain::TenantId, policy::Reload};

use crate::helpers::*;

#[tokio::test]
async fn disabling_a_tenant_in_the_file_refuses_its_next_call() {
    let app = spawn_app_with(Options { policy_file: true, ..Options::default() }).await;
    let token = app.token(CONTOSO, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 200);

    let purged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = purged.clone();
    app.policy.on_tenants_disabled(move |ids| sink.lock().unwrap().extend_from_slice(ids));
    // Make sure the new mtime differs on coarse file systems.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        &app.policy_path,
        default_policy().replacen("name = \"contoso\"", "name = \"contoso\"\nenabled = false", 1),
    )
    .unwrap();
    let outcome = app.policy.reload_if_changed().unwrap();
    let contoso = TenantId::parse(CONTOSO).unwrap();
    assert_eq!(outcome, Reload::Applied { disabled: vec![contoso] });
    assert_eq!(*purged.lock().unwrap(), vec![contoso]);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 403);
}

#[tokio::test]
async fn the_watcher_picks_up_a_changed_file() {
    let app = spawn_app_with(Options { policy_file: true, ..Options::default() }).await;
    let token = app.token(TAILSPIN, ADELE);
    assert_eq!(app.post_mcp(Some(&token)).await.status(), 403);
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&app.policy_path, default_policy().replace("enabled = false", "enabled = true"))
        .unwrap();
    // The watcher polls every 2 s.
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        status = app.post_mcp(Some(&token)).await.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_invalid_policy_file_keeps_the_previous_policy() {
    let app = spawn_app_with(Options { policy_file: true, ..Options::default() }).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&app.policy_path, "[[tenants]]\nid = \"not-a-guid\"").unwrap();
    assert!(app.policy.reload_if_changed().is_err());
    assert_eq!(app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await.status(), 200);
}
