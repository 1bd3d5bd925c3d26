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
    std::fs::write(
        &app.policy_path,
        default_policy().replacen("name = \"contoso\"", "name = \"contoso\"\nenabled = false", 1),
    )
    .unwrap();
    // New content is applied once two polls read it unchanged.
    assert_eq!(app.policy.reload_if_changed().unwrap(), Reload::Unchanged);
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
    // The first poll sees new content and waits for it to settle; the second parses it.
    assert!(matches!(app.policy.reload_if_changed(), Ok(Reload::Unchanged)));
    assert!(app.policy.reload_if_changed().is_err());
    assert_eq!(app.post_mcp(Some(&app.token(CONTOSO, ADELE))).await.status(), 200);
}

#[tokio::test]
async fn a_file_caught_half_written_is_never_applied() {
    let app = spawn_app_with(Options { policy_file: true, ..Options::default() }).await;
    let full = default_policy().replace("enabled = false", "enabled = true");
    // Cut before the second tenant: still valid TOML, but Fabrikam is missing from it.
    let first = full.find("[[tenants]]").expect("a tenant");
    let second = first + 1 + full[first + 1..].find("[[tenants]]").expect("two tenants");
    let half = &full[..second];
    assert!(connector::policy::Policy::parse(half, &app.policy_path).is_ok(), "the cut parses");
    let fabrikam_status =
        || async { app.post_mcp(Some(&app.token(FABRIKAM, ADELE))).await.status() };
    assert_eq!(fabrikam_status().await, 200);

    std::fs::write(&app.policy_path, half).unwrap();
    assert!(matches!(app.policy.reload_if_changed(), Ok(Reload::Unchanged)));
    assert_eq!(fabrikam_status().await, 200, "the half-written file took effect");
    // The writer finishes before the next poll; the complete file applies once it settled.
    std::fs::write(&app.policy_path, &full).unwrap();
    assert!(matches!(app.policy.reload_if_changed(), Ok(Reload::Unchanged)));
    assert_eq!(fabrikam_status().await, 200, "the half-written file took effect");
    assert!(matches!(app.policy.reload_if_changed(), Ok(Reload::Applied { .. })));
    assert_eq!(app.post_mcp(Some(&app.token(TAILSPIN, ADELE))).await.status(), 200);
    assert_eq!(fabrikam_status().await, 200);
}
