use std::time::Duration;

use crate::helpers::*;

async fn refresh(t: &TestEntra, rt: &str) -> (u16, serde_json::Value) {
    let client = t.client().to_string();
    t.token(
        CONTOSO,
        &[("grant_type", "refresh_token"), ("client_id", &client), ("refresh_token", rt)],
    )
    .await
}

#[tokio::test]
async fn refresh_returns_a_new_token_and_the_old_one_keeps_working() {
    let t = spawn().await;
    let first = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    let (status, body) = refresh(&t, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["refresh_token"].as_str().expect("new rt").to_string();
    assert_ne!(second, first);
    t.validate_v2(body["access_token"].as_str().unwrap_or("")).await.expect("valid");
    assert_eq!(refresh(&t, &first).await.0, 200);
}

#[tokio::test]
async fn refresh_token_idle_past_90_days_gets_700082() {
    let t = spawn().await;
    let rt = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    t.entra.advance_clock(Duration::from_secs(89 * 86400));
    let (status, body) = refresh(&t, &rt).await;
    assert_eq!(status, 200);
    // Each use resets the inactivity window of the token used.
    t.entra.advance_clock(Duration::from_secs(89 * 86400));
    assert_eq!(refresh(&t, &rt).await.0, 200);
    t.entra.advance_clock(Duration::from_secs(91 * 86400));
    let (status, body2) = refresh(&t, &rt).await;
    assert_eq!((status, body2["error_codes"][0].as_u64()), (400, Some(700082)));
    assert_eq!(body2["error"], "invalid_grant");
    let _ = body;
}

#[tokio::test]
async fn revoked_sessions_refuse_refresh_with_50173() {
    let t = spawn().await;
    let rt = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    t.entra.revoke_sessions("contoso", "adele@contoso.com").expect("revoke");
    let (_, body) = refresh(&t, &rt).await;
    assert_eq!(body["error_codes"][0], 50173);
    // A fresh sign-in after the revocation works again.
    let rt2 = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    assert_eq!(refresh(&t, &rt2).await.0, 200);
}

#[tokio::test]
async fn disabled_user_refresh_gets_50057() {
    let t = spawn().await;
    let rt = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    t.entra.disable_user("contoso", "adele@contoso.com").expect("disable");
    assert_eq!(refresh(&t, &rt).await.1["error_codes"][0], 50057);
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client() {
    let t = spawn().await;
    let rt = t.sign_in("adele@contoso.com").await.refresh_token.expect("rt");
    let connector = t.connector().to_string();
    let (status, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &connector),
                ("client_secret", CONNECTOR_SECRET),
                ("refresh_token", &rt),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn token_lifetime_policy_sets_access_token_lifetime() {
    let t = spawn().await;
    t.entra
        .set_token_lifetime(
            "contoso",
            fixtures::TokenLifetimePolicy {
                access_token_minutes: Some(15),
                refresh_token_max_inactive_days: 2,
            },
        )
        .expect("policy");
    let resp = t.sign_in("adele@contoso.com").await;
    assert_eq!(resp.expires_in, 900);
    let rt = resp.refresh_token.expect("rt");
    t.entra.advance_clock(Duration::from_secs(3 * 86400));
    assert_eq!(refresh(&t, &rt).await.1["error_codes"][0], 700082);
}
