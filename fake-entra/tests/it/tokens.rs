use fake_entra::{BadToken, Keys, TokenSpec, keys::KeyRing, tokens};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn user_token_is_a_valid_v2_connector_token() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let token = t.entra.user_token(tid, oid);
    let claims = t.validate_v2(&token).await.expect("valid");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["scp"], "access_as_user");
    assert_eq!(claims["tid"], tid.to_string());
    assert_eq!(claims["oid"], oid.to_string());
    assert_eq!(claims["azp"], t.client().to_string());
    assert_eq!(claims["preferred_username"], "adele@contoso.com");
    for c in ["sub", "uti", "iat", "nbf", "exp", "name"] {
        assert!(claims.get(c).is_some(), "missing {c}");
    }
    let life = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert!((3600..=5400).contains(&life), "lifetime {life}");
    assert_eq!(segment(&token, 0)["typ"], "JWT");
}

#[tokio::test]
async fn graph_token_has_the_v1_graph_shape() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let token = t.entra.graph_token(tid, oid, &["Mail.Read", "User.Read"], true);
    let header = segment(&token, 0);
    assert!(header.get("nonce").is_some());
    assert_eq!(header["x5t"], header["kid"]);
    let c = segment(&token, 1);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{tid}/"));
    assert_eq!(c["scp"], "Mail.Read User.Read");
    assert_eq!(c["appid"], t.connector().to_string());
    assert_eq!(c["xms_cc"], serde_json::json!(["cp1"]));
    assert_eq!(c["ver"], "1.0");
    let life = c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0);
    assert!((20 * 3600..=28 * 3600).contains(&life), "cp1 lifetime {life}");
    let plain = segment(&t.entra.graph_token(tid, oid, &["User.Read"], false), 1);
    assert!(plain.get("xms_cc").is_none());
}

#[tokio::test]
async fn every_bad_token_fails_validation() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let (other, _) = t.persona("adele@fabrikam.com");
    let cases = [
        BadToken::WrongAudience,
        BadToken::UnknownKey,
        BadToken::ForeignKeyKnownKid,
        BadToken::UnpublishedKey,
        BadToken::Expired,
        BadToken::FutureNbf,
        BadToken::AlgNone,
        BadToken::Hs256WithPublicKey,
        BadToken::MismatchedIssuer { iss_tid: other },
        BadToken::TamperedPayload,
    ];
    for bad in cases {
        let token = t.entra.mint(&TokenSpec::user(tid, oid).bad(bad.clone()));
        assert!(t.validate_v2(&token).await.is_err(), "{bad:?} validated");
    }
}

#[tokio::test]
async fn app_only_missing_scp_and_id_tokens_have_no_scp() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    for bad in [BadToken::AppOnly, BadToken::MissingScp, BadToken::IdToken] {
        let token = t.entra.mint(&TokenSpec::user(tid, oid).bad(bad.clone()));
        let claims = t.validate_v2(&token).await.expect("signature is fine");
        assert!(claims.get("scp").is_none(), "{bad:?} has scp");
    }
    let app = segment(&t.entra.mint(&TokenSpec::user(tid, oid).bad(BadToken::AppOnly)), 1);
    assert_eq!(app["idtyp"], "app");
    assert!(app["roles"].is_array());
}

#[tokio::test]
async fn unpublished_key_token_validates_after_rotation() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let token = t.entra.mint(&TokenSpec::user(tid, oid).bad(BadToken::UnpublishedKey));
    assert!(t.validate_v2(&token).await.is_err());
    let pending = t.entra.pending_kid().expect("a pending key");
    let new = t.entra.rotate_keys().expect("rotate");
    assert_eq!(new, pending);
    t.validate_v2(&token).await.expect("valid after rotation");
    assert_eq!(t.entra.active_kid(), new);
}

/// The fake assembles its JWS itself and signs with `ring`; the result must be exactly what
/// jsonwebtoken's own encoder produces from the same PEM (RS256 is deterministic).
#[test]
fn signing_matches_jsonwebtoken_byte_for_byte() {
    let ring = KeyRing::load(&Keys::TestKeys).expect("test keys");
    let pems = [
        include_str!("../../src/test_keys/key1.pem"),
        include_str!("../../src/test_keys/key2.pem"),
        include_str!("../../src/test_keys/key3.pem"),
    ];
    let claims = json!({"aud": "api://x", "scp": "access_as_user", "n": 1, "é": "ünïcode"});
    for (key, pem) in ring.all().iter().zip(pems) {
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem");
        for v1 in [false, true] {
            let mut header = Header::new(Algorithm::RS256);
            header.typ = Some("JWT".into());
            header.kid = Some(key.kid.clone());
            header.x5t = v1.then(|| key.kid.clone());
            let expected = jsonwebtoken::encode(&header, &claims, &encoding).expect("encode");
            assert_eq!(tokens::sign(key, &claims, v1, false), expected, "kid {}", key.kid);
        }
    }
}

/// An OBO-shaped Graph token (v1 header with `x5t` and `nonce`) verifies with jsonwebtoken's
/// `decode` against the JWK the fake publishes, and carries exactly the expected header.
#[tokio::test]
async fn graph_token_verifies_against_the_published_jwk() {
    let t = spawn().await;
    let (tid, oid) = t.persona("adele@contoso.com");
    let token = t.entra.graph_token(tid, oid, &["Mail.Read", "User.Read"], true);
    let header = segment(&token, 0);
    let mut names: Vec<&str> =
        header.as_object().expect("header object").keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["alg", "kid", "nonce", "typ", "x5t"]);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("JWT")));

    let (_, jwks) = t.get_json("/common/discovery/v2.0/keys").await;
    let published = jwks["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == header["kid"]))
        .expect("the signing kid is published");
    let jwk: Jwk = serde_json::from_value(published.clone()).expect("a JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("an RSA JWK");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[tokens::GRAPH_AUDIENCE]);
    validation.set_issuer(&[format!("{}/{tid}/", tokens::V1_ISSUER_HOST)]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies").claims;
    assert_eq!(claims, segment(&token, 1));
    assert_eq!(claims["oid"], oid.to_string());
}
