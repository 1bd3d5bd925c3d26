use crate::helpers::*;

#[tokio::test]
async fn client_credentials_issue_app_only_tokens_without_scp() {
    let t = spawn().await;
    let connector = t.connector().to_string();
    let (status, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &connector),
                ("client_secret", CONNECTOR_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let c = segment(body["access_token"].as_str().unwrap_or(""), 1);
    assert_eq!(c["idtyp"], "app");
    assert!(c.get("scp").is_none());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["appid"], connector);
}

#[tokio::test]
async fn client_credentials_for_the_connector_audience_is_v2_and_validates() {
    let t = spawn().await;
    let connector = t.connector().to_string();
    let scope = format!("api://{connector}/.default");
    let (status, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &connector),
                ("client_secret", CONNECTOR_SECRET),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let claims = t.validate_v2(body["access_token"].as_str().unwrap_or("")).await.expect("valid");
    assert_eq!(claims["idtyp"], "app");
    assert!(claims.get("scp").is_none());
}

#[tokio::test]
async fn client_credentials_needs_default_scope_and_a_confidential_client() {
    let t = spawn().await;
    let connector = t.connector().to_string();
    let (_, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &connector),
                ("client_secret", CONNECTOR_SECRET),
                ("scope", "https://graph.microsoft.com/User.Read"),
            ],
        )
        .await;
    assert_eq!(body["error"], "invalid_scope");
    let client = t.client().to_string();
    let (status, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn unsupported_grant_and_unknown_client_are_refused() {
    let t = spawn().await;
    let client = t.client().to_string();
    let (_, body) = t.token(CONTOSO, &[("grant_type", "password"), ("client_id", &client)]).await;
    assert_eq!(body["error"], "unsupported_grant_type");
    let (_, body) = t
        .token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "11111111-1111-1111-1111-111111111111"),
            ],
        )
        .await;
    assert_eq!(
        (body["error"].as_str(), body["error_codes"][0].as_u64()),
        (Some("unauthorized_client"), Some(700016))
    );
}
