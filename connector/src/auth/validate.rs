//! Inbound token validation into a [`Caller`] (reference/security.md §2, entra.md §4).
//!
//! `jsonwebtoken` only checks the RS256 signature here; every claim rule is checked by this
//! module against the connector's [`Clock`], because the library's `exp`/`nbf` checks use the
//! system time and its `aud`/`iss` checks are skipped when the claim is absent.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::jwks::{KeyError, KeyStore};
use crate::{
    clock::Clock,
    config::EntraSettings,
    domain::{Caller, ObjectId, ScopeSet, TenantId, UserAssertion},
    policy::PolicyStore,
};

/// Tolerated clock skew between Entra and the connector for `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::from_secs(60);
/// The placeholder in Entra's tenant-independent issuer template.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// A refused token, with a reason label (metrics, audit) and a fixed description (never echoes
/// token content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("not an access token (typ)")]
    TokenType,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signing keys unavailable")]
    KeysUnavailable,
    #[error("bad signature")]
    Signature,
    #[error("v1 token")]
    V1Token,
    #[error("missing claim")]
    MissingClaim(&'static str),
    #[error("bad tenant id")]
    BadTenantId,
    #[error("issuer mismatch")]
    Issuer,
    #[error("signing key issuer mismatch")]
    KeyIssuer,
    #[error("wrong audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("implausible iat")]
    IssuedAt,
    #[error("app-only token")]
    AppOnly,
    #[error("missing scope")]
    MissingScope,
    #[error("consumer tenant")]
    ConsumerTenant,
    #[error("tenant not enabled")]
    TenantNotEnabled,
}

/// How a rejection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401, `error="invalid_token"` (or no error code when no token was sent).
    Unauthorized,
    /// 403 `error="insufficient_scope"`.
    InsufficientScope,
    /// 403 with a plain refusal (tenant or token kind not allowed).
    Forbidden,
    /// 503 + `Retry-After`: the token cannot be decided now.
    Unavailable,
}

impl Rejection {
    /// Label for metrics and audit (bounded vocabulary).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::TokenType => "typ",
            Self::UnknownKey => "unknown_kid",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Signature => "signature",
            Self::V1Token => "v1_token",
            Self::MissingClaim(_) => "missing_claim",
            Self::BadTenantId => "bad_tid",
            Self::Issuer => "issuer",
            Self::KeyIssuer => "key_issuer",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedAt => "iat",
            Self::AppOnly => "app_only",
            Self::MissingScope => "insufficient_scope",
            Self::ConsumerTenant => "consumer_tenant",
            Self::TenantNotEnabled => "tenant_not_enabled",
        }
    }

    pub fn answer(&self) -> Answer {
        match self {
            Self::KeysUnavailable => Answer::Unavailable,
            Self::MissingScope => Answer::InsufficientScope,
            Self::AppOnly | Self::ConsumerTenant | Self::TenantNotEnabled => Answer::Forbidden,
            _ => Answer::Unauthorized,
        }
    }

    /// The fixed, safe text sent to the client.
    pub fn description(&self) -> String {
        match self {
            Self::Missing => "a bearer token is required".into(),
            Self::Malformed => "the token is not a well-formed JWT".into(),
            Self::Algorithm => "the token must be signed with RS256".into(),
            Self::TokenType => "the token's `typ` header is not JWT: it is not an access token".into(),
            Self::UnknownKey => "the token is signed with an unknown key".into(),
            Self::KeysUnavailable => "the signing keys cannot be fetched right now; retry later".into(),
            Self::Signature => "the token signature is invalid".into(),
            Self::V1Token => "v1.0 access tokens are not accepted; the connector requires v2.0 tokens".into(),
            Self::MissingClaim(c) => format!("the token lacks the required `{c}` claim"),
            Self::BadTenantId => "the token's tenant id is not a GUID".into(),
            Self::Issuer => "the token issuer does not match its tenant".into(),
            Self::KeyIssuer => "the signing key is not valid for the token issuer".into(),
            Self::Audience => "the token was not issued for this connector".into(),
            Self::Expired => "the token has expired".into(),
            Self::NotYetValid => "the token is not valid yet".into(),
            Self::IssuedAt => "the token's issue time is not plausible".into(),
            Self::AppOnly => {
                "app-only tokens are not accepted: the connector acts on behalf of a signed-in user".into()
            }
            Self::MissingScope => "the token lacks the scope this connector requires".into(),
            Self::ConsumerTenant => {
                "personal Microsoft accounts are not supported; sign in with a work or school account".into()
            }
            Self::TenantNotEnabled => {
                "your organization has not enabled this connector; ask your administrator".into()
            }
        }
    }
}

/// The claims the connector reads. A strict struct (no `flatten`): duplicate keys fail, and a
/// string where a number belongs fails.
#[derive(Debug, Clone, Deserialize)]
struct EntraClaims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    tid: Option<String>,
    oid: Option<String>,
    scp: Option<String>,
    roles: Option<Vec<String>>,
    idtyp: Option<String>,
    azp: Option<String>,
    ver: Option<String>,
    uti: Option<String>,
    name: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
}

/// How many verified signatures are remembered, and for how long at most. An MCP client sends
/// the same bearer token on every call until it expires, and the RSA verification is ~90% of
/// a validation (about 100 µs); remembering that a signature checked out (never the token
/// itself: the key is its SHA-256) skips it. Every other rule is still checked on every call.
const VERIFIED_CAPACITY: u64 = 100_000;
const VERIFIED_TTL: Duration = Duration::from_secs(10 * 60);

/// A token whose signature verified: the key it verified with and its claims.
#[derive(Clone)]
struct Verified {
    kid: String,
    claims: Arc<EntraClaims>,
}

/// Validates inbound tokens.
pub struct Validator {
    entra: EntraSettings,
    keys: Arc<dyn KeyStore>,
    clock: Clock,
    policy: Arc<PolicyStore>,
    verified: moka::future::Cache<[u8; 32], Verified>,
}

impl Validator {
    pub fn new(
        entra: EntraSettings,
        keys: Arc<dyn KeyStore>,
        clock: Clock,
        policy: Arc<PolicyStore>,
    ) -> Self {
        let verified = moka::future::Cache::builder()
            .max_capacity(VERIFIED_CAPACITY)
            .time_to_live(VERIFIED_TTL)
            .build();
        Self { entra, keys, clock, policy, verified }
    }

    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// Whether this exact token's signature verified recently: a hash lookup, no JWT work.
    /// Lets known callers through while their address is over its refusal budget.
    pub fn verified_before(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.verified.contains_key(&digest)
    }

    /// Checks every rule; on success the caller identity is `(tid, oid)`.
    /// The error carries the tenant and user when they were read from a verified token.
    pub async fn validate(
        &self,
        token: &str,
    ) -> Result<Caller, (Rejection, Option<(TenantId, Option<ObjectId>)>)> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let (key, c) = match self.verified.get(&digest).await {
            // Seen and verified before: the signing key must still be published (a retired
            // key's tokens stop working at once), then every claim rule runs as usual.
            Some(seen) => {
                let key = self.key(&seen.kid).await?;
                (key, seen.claims)
            }
            None => {
                let (kid, key, claims) = self.verify_signature(token).await?;
                let claims = Arc::new(claims);
                self.verified.insert(digest, Verified { kid, claims: claims.clone() }).await;
                (key, claims)
            }
        };
        let c = (*c).clone();

        // Version first: a v1 token (including a Graph token) has other issuer rules.
        if c.ver.as_deref() != Some("2.0") {
            return Err((Rejection::V1Token, None));
        }
        let tid_text = c.tid.as_deref().ok_or((Rejection::MissingClaim("tid"), None))?;
        let tid = TenantId::parse(tid_text).map_err(|_| (Rejection::BadTenantId, None))?;
        let who = |oid: Option<ObjectId>| Some((tid, oid));
        let iss = c.iss.as_deref().ok_or((Rejection::MissingClaim("iss"), who(None)))?;
        // Exact equality with the template for the token's own tid: a token from tenant A
        // claiming tenant B's tid fails here.
        if iss != self.entra.issuer_for(tid_text) {
            return Err((Rejection::Issuer, who(None)));
        }
        if let Some(key_issuer) = key.issuer.as_deref()
            && !key_issuer_matches(key_issuer, iss, tid_text)
        {
            return Err((Rejection::KeyIssuer, who(None)));
        }
        let oid = c
            .oid
            .as_deref()
            .map(ObjectId::parse)
            .transpose()
            .map_err(|_| (Rejection::MissingClaim("oid"), who(None)))?;
        match &c.aud {
            Some(serde_json::Value::String(aud))
                if self.entra.audiences.iter().any(|a| a == aud) => {}
            Some(_) => return Err((Rejection::Audience, who(oid))),
            None => return Err((Rejection::MissingClaim("aud"), who(oid))),
        }
        let now = self.clock.unix_seconds();
        let leeway = CLOCK_SKEW_LEEWAY.as_secs() as i64;
        let exp = c.exp.ok_or((Rejection::MissingClaim("exp"), who(oid)))?;
        let nbf = c.nbf.ok_or((Rejection::MissingClaim("nbf"), who(oid)))?;
        let iat = c.iat.ok_or((Rejection::MissingClaim("iat"), who(oid)))?;
        if now > exp.saturating_add(leeway) {
            return Err((Rejection::Expired, who(oid)));
        }
        if nbf > now.saturating_add(leeway) {
            return Err((Rejection::NotYetValid, who(oid)));
        }
        if iat > now.saturating_add(leeway) || iat > exp {
            return Err((Rejection::IssuedAt, who(oid)));
        }
        // App-only tokens: declared as such, or roles without scp.
        if c.idtyp.as_deref() == Some("app") || (c.scp.is_none() && c.roles.is_some()) {
            return Err((Rejection::AppOnly, who(oid)));
        }
        let oid = oid.ok_or((Rejection::MissingClaim("oid"), who(None)))?;
        let scp = c.scp.as_deref().ok_or((Rejection::MissingScope, who(Some(oid))))?;
        // Exact, case-sensitive token match in the space-separated list.
        if !scp.split(' ').any(|s| s == self.entra.required_scope) {
            return Err((Rejection::MissingScope, who(Some(oid))));
        }
        if tid.is_consumer() {
            return Err((Rejection::ConsumerTenant, who(Some(oid))));
        }
        if !self.policy.current().is_enabled(&tid) {
            return Err((Rejection::TenantNotEnabled, who(Some(oid))));
        }
        let client_id = c.azp.as_deref().and_then(|a| Uuid::try_parse(a).ok()).unwrap_or_default();
        Ok(Caller {
            tenant_id: tid,
            object_id: oid,
            client_id,
            scopes: ScopeSet::from_scp(scp),
            token_id: c.uti.filter(|u| u.len() <= 64),
            display_name: c.name,
            assertion: UserAssertion::new(token.to_owned()),
        })
    }

    async fn key(
        &self,
        kid: &str,
    ) -> Result<super::jwks::SigningKey, (Rejection, Option<(TenantId, Option<ObjectId>)>)> {
        self.keys.key(kid).await.map_err(|e| match e {
            KeyError::UnknownKid => (Rejection::UnknownKey, None),
            KeyError::Unavailable => (Rejection::KeysUnavailable, None),
        })
    }

    /// Checks the header (RS256, `kid`) and the signature against the published key.
    async fn verify_signature(
        &self,
        token: &str,
    ) -> Result<
        (String, super::jwks::SigningKey, EntraClaims),
        (Rejection, Option<(TenantId, Option<ObjectId>)>),
    > {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| (Rejection::Malformed, None))?;
        if header.alg != Algorithm::RS256 {
            return Err((Rejection::Algorithm, None));
        }
        // Entra access tokens say `typ: JWT` (or nothing). Another type (`logout+jwt`,
        // `JWE`, …) is a different kind of token signed by the same key: refusing it keeps one
        // kind of Entra-signed JWT from being replayed as another (RFC 8725 §3.11).
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err((Rejection::TokenType, None));
        }
        let kid = header.kid.ok_or((Rejection::MissingClaim("kid"), None))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked by `validate` against the injected clock; the library checks only
        // the signature and algorithm.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<EntraClaims>(token, &key.key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => (Rejection::Signature, None),
                    K::InvalidAlgorithm => (Rejection::Algorithm, None),
                    _ => (Rejection::Malformed, None),
                }
            })?;
        Ok((kid, key, data.claims))
    }
}

/// Entra's signing-key issuer rule (Microsoft.IdentityModel IDX40004/IDX40005): the token's
/// `iss` contains its `tid`, and the key's issuer, with `{tenantid}` replaced by `tid`, equals
/// `iss` exactly. A concrete key issuer therefore matches only its own tenant.
pub fn key_issuer_matches(key_issuer: &str, iss: &str, tid: &str) -> bool {
    iss.contains(tid) && substitute_tenant(key_issuer, tid) == iss
}

/// Replaces the `{tenantid}` placeholder of an issuer template with `tid`.
pub fn substitute_tenant(template: &str, tid: &str) -> String {
    template.replace(TENANT_PLACEHOLDER, tid)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const AUTHORITY: &str = "https://login.microsoftonline.com";

    proptest! {
        #[test]
        fn a_templated_key_issuer_accepts_exactly_its_own_tenant(a in any::<u128>(), b in any::<u128>()) {
            let ta = Uuid::from_u128(a).to_string();
            let tb = Uuid::from_u128(b).to_string();
            let template = format!("{AUTHORITY}/{{tenantid}}/v2.0");
            let iss_a = format!("{AUTHORITY}/{ta}/v2.0");
            prop_assert!(key_issuer_matches(&template, &iss_a, &ta));
            // Another tenant's tid never validates tenant A's issuer.
            prop_assert_eq!(key_issuer_matches(&template, &iss_a, &tb), ta == tb);
        }

        #[test]
        fn a_concrete_key_issuer_matches_only_its_tenant(a in any::<u128>(), b in any::<u128>()) {
            let ta = Uuid::from_u128(a).to_string();
            let tb = Uuid::from_u128(b).to_string();
            let concrete = format!("{AUTHORITY}/{ta}/v2.0");
            let iss_b = format!("{AUTHORITY}/{tb}/v2.0");
            prop_assert_eq!(key_issuer_matches(&concrete, &iss_b, &tb), ta == tb);
        }

        #[test]
        fn substitution_never_leaves_the_placeholder(prefix in "[a-z:/.]{0,20}", tid in "[0-9a-f-]{36}") {
            let out = substitute_tenant(&format!("{prefix}{{tenantid}}/v2.0"), &tid);
            prop_assert!(!out.contains(TENANT_PLACEHOLDER));
            let suffix = format!("{tid}/v2.0");
            prop_assert!(out.ends_with(&suffix));
        }
    }

    // ---- the rules of `Validator::validate`, one token breaking one rule each ----

    use std::{
        collections::HashMap,
        path::Path,
        sync::{
            Mutex,
            atomic::{AtomicI64, Ordering},
        },
    };

    use base64::Engine as _;
    use futures::future::BoxFuture;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use rsa::{pkcs8::DecodePrivateKey, traits::PublicKeyParts};
    use serde_json::{Value, json};

    use super::super::jwks::SigningKey;
    use crate::{config::Credential, policy::Policy};

    const KEY_PEM: &str = include_str!("../../../fake-entra/src/test_keys/key1.pem");
    const OTHER_KEY_PEM: &str = include_str!("../../../fake-entra/src/test_keys/attacker.pem");
    const KID: &str = "key-1";
    const CONTOSO: &str = "2dafe747-82eb-4139-95a6-9c4ded21e24c";
    const FABRIKAM: &str = "f7d61373-35a1-4c8c-b5a5-0b9ba1e9945d";
    const DISABLED: &str = "0b6a4a7e-3c5e-4f6b-9d8c-1a2b3c4d5e6f";
    const CONSUMER: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
    const ADELE: &str = "5f2b4c3d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
    const CLIENT: &str = "6a3f2b1c-0d9e-4f8a-b7c6-5d4e3f2a1b0c";
    const AZP: &str = "11111111-2222-4333-8444-555555555555";
    const NOW: i64 = 1_800_000_000;

    /// Keys served from a map the test can change (a key retired between two calls), or none
    /// at all (the JWKS endpoint unreachable).
    struct FixedKeys {
        keys: Mutex<HashMap<String, SigningKey>>,
        unavailable: bool,
    }

    impl KeyStore for FixedKeys {
        fn key<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, Result<SigningKey, KeyError>> {
            Box::pin(async move {
                if self.unavailable {
                    return Err(KeyError::Unavailable);
                }
                self.keys.lock().unwrap().get(kid).cloned().ok_or(KeyError::UnknownKid)
            })
        }
        fn refresh(&self) -> BoxFuture<'_, Result<usize, String>> {
            Box::pin(async move { Ok(self.keys.lock().unwrap().len()) })
        }
        fn is_ready(&self) -> bool {
            true
        }
    }

    fn signing_key(issuer: Option<String>) -> SigningKey {
        let private = rsa::PrivateKey::from_pkcs8_pem(KEY_PEM).expect("test key");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let key =
            DecodingKey::from_rsa_components(&b64(&private.n_bytes()), &b64(&private.e_bytes()))
                .expect("public key");
        SigningKey { kid: KID.into(), key, issuer }
    }

    pub(crate) struct Harness {
        pub(crate) validator: Validator,
        keys: Arc<FixedKeys>,
        now: Arc<AtomicI64>,
    }

    pub(crate) fn harness_with(key_issuer: Option<String>, unavailable: bool) -> Harness {
        let keys = Arc::new(FixedKeys {
            keys: Mutex::new(HashMap::from([(KID.to_owned(), signing_key(key_issuer))])),
            unavailable,
        });
        let now = Arc::new(AtomicI64::new(NOW));
        let clock_now = now.clone();
        let clock = Clock::from_fn(move || {
            chrono::DateTime::from_timestamp(clock_now.load(Ordering::SeqCst), 0).expect("time")
        });
        let policy = Policy::parse(
            &format!(
                "[[tenants]]\nid = \"{CONTOSO}\"\n[[tenants]]\nid = \"{FABRIKAM}\"\n\
                 [[tenants]]\nid = \"{DISABLED}\"\nenabled = false\n"
            ),
            Path::new("policy.toml"),
        )
        .expect("policy");
        let entra = EntraSettings {
            authority: AUTHORITY.parse().expect("authority"),
            client_id: Uuid::parse_str(CLIENT).expect("client id"),
            audiences: vec![format!("api://{CLIENT}"), CLIENT.to_owned()],
            required_scope: "access_as_user".into(),
            credential: Credential::Secret("not-used".to_owned().into()),
            jwks_refresh_floor: Duration::from_secs(300),
            jwks_refresh_interval: Duration::from_secs(3600),
            jwks_max_stale: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
        };
        let validator =
            Validator::new(entra, keys.clone(), clock, Arc::new(PolicyStore::fixed(policy)));
        Harness { validator, keys, now }
    }

    pub(crate) fn harness() -> Harness {
        harness_with(Some(format!("{AUTHORITY}/{{tenantid}}/v2.0")), false)
    }

    /// The claims of a valid delegated v2 token for Adele at Contoso.
    pub(crate) fn claims() -> Value {
        claims_for(CONTOSO)
    }

    fn claims_for(tid: &str) -> Value {
        json!({
            "iss": format!("{AUTHORITY}/{tid}/v2.0"), "aud": format!("api://{CLIENT}"),
            "tid": tid, "oid": ADELE, "scp": "access_as_user", "azp": AZP, "ver": "2.0",
            "uti": "AbCdEfGh", "name": "Adele Vance",
            "iat": NOW - 300, "nbf": NOW - 300, "exp": NOW + 3600,
        })
    }

    fn header() -> Header {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.into());
        header
    }

    fn sign(header: &Header, claims: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).expect("signing key");
        jsonwebtoken::encode(header, claims, &key).expect("signed")
    }

    pub(crate) fn mint(claims: &Value) -> String {
        sign(&header(), claims)
    }

    /// `claims()` with `field` set to `value` (`Value::Null` removes it).
    pub(crate) fn with(field: &str, value: Value) -> Value {
        let mut c = claims();
        if value.is_null() {
            c.as_object_mut().expect("object").remove(field);
        } else {
            c[field] = value;
        }
        c
    }

    async fn refusal(h: &Harness, token: &str) -> Rejection {
        match h.validator.validate(token).await {
            Ok(caller) => panic!("accepted: {caller:?}"),
            Err((rejection, _)) => rejection,
        }
    }

    async fn accepted(h: &Harness, token: &str) -> Caller {
        match h.validator.validate(token).await {
            Ok(caller) => caller,
            Err((rejection, _)) => panic!("refused: {rejection:?}"),
        }
    }

    #[tokio::test]
    async fn a_valid_token_becomes_the_caller_it_names() {
        let h = harness();
        let token = mint(&claims());
        let caller = accepted(&h, &token).await;
        assert_eq!(caller.tenant_id, TenantId::parse(CONTOSO).unwrap());
        assert_eq!(caller.object_id, ObjectId::parse(ADELE).unwrap());
        assert_eq!(caller.client_id, Uuid::parse_str(AZP).unwrap());
        assert!(caller.scopes.contains("access_as_user"));
        assert_eq!(caller.token_id.as_deref(), Some("AbCdEfGh"));
        assert_eq!(caller.display_name.as_deref(), Some("Adele Vance"));
        assert_eq!(caller.assertion.expose(), token);
        // The second call takes the verified-signature path and reaches the same caller.
        assert!(h.validator.verified_before(&token));
        assert_eq!(accepted(&h, &token).await.object_id, caller.object_id);
        // The other configured audience form (the bare client id) is as good.
        accepted(&h, &mint(&with("aud", json!(CLIENT)))).await;
        // A scope list that holds the required scope among others.
        accepted(&h, &mint(&with("scp", json!("User.Read access_as_user")))).await;
        // A delegated token may carry app roles too.
        accepted(&h, &mint(&with("roles", json!(["Reader"])))).await;
        // Without an `issuer` on the key, the issuer-per-tid rule alone decides.
        let h = harness_with(None, false);
        accepted(&h, &mint(&claims())).await;
    }

    #[tokio::test]
    async fn only_a_verified_token_is_remembered() {
        let h = harness();
        let token = mint(&claims());
        assert!(!h.validator.verified_before(&token));
        accepted(&h, &token).await;
        assert!(h.validator.verified_before(&token));
        assert!(!h.validator.verified_before(&mint(&with("uti", json!("other")))));
    }

    #[tokio::test]
    async fn an_over_long_token_id_is_dropped_not_recorded() {
        let h = harness();
        let exactly = "u".repeat(64);
        let caller = accepted(&h, &mint(&with("uti", json!(exactly)))).await;
        assert_eq!(caller.token_id.as_deref(), Some(exactly.as_str()));
        let caller = accepted(&h, &mint(&with("uti", json!("u".repeat(65))))).await;
        assert_eq!(caller.token_id, None);
    }

    #[tokio::test]
    async fn header_and_signature_rules_refuse_before_any_claim_is_read() {
        let h = harness();
        assert_eq!(refusal(&h, "not a jwt").await, Rejection::Malformed);
        let hs256 = jsonwebtoken::encode(
            &Header { kid: Some(KID.into()), ..Header::new(Algorithm::HS256) },
            &claims(),
            &EncodingKey::from_secret(b"a shared secret").expect("hmac key"),
        )
        .expect("signed");
        assert_eq!(refusal(&h, &hs256).await, Rejection::Algorithm);
        let logout = Header { typ: Some("logout+jwt".into()), ..header() };
        assert_eq!(refusal(&h, &sign(&logout, &claims())).await, Rejection::TokenType);
        // `typ` is compared case-insensitively, and may be absent.
        accepted(&h, &sign(&Header { typ: Some("jwt".into()), ..header() }, &claims())).await;
        accepted(&h, &sign(&Header { typ: None, ..header() }, &claims())).await;
        let no_kid = Header { kid: None, ..header() };
        assert_eq!(refusal(&h, &sign(&no_kid, &claims())).await, Rejection::MissingClaim("kid"));
        let unknown_kid = Header { kid: Some("key-9".into()), ..header() };
        assert_eq!(refusal(&h, &sign(&unknown_kid, &claims())).await, Rejection::UnknownKey);
        // Signed by another key under the published kid.
        let forged = jsonwebtoken::encode(
            &header(),
            &claims(),
            &EncodingKey::from_rsa_pem(OTHER_KEY_PEM.as_bytes()).expect("attacker key"),
        )
        .expect("signed");
        assert_eq!(refusal(&h, &forged).await, Rejection::Signature);
        // Claims edited after signing.
        let genuine = mint(&claims());
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let edited = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims_for(FABRIKAM)).expect("json"));
        parts[1] = &edited;
        assert_eq!(refusal(&h, &parts.join(".")).await, Rejection::Signature);
        // No keys at all: undecidable, not invalid.
        let down = harness_with(None, true);
        assert_eq!(refusal(&down, &genuine).await, Rejection::KeysUnavailable);
    }

    #[tokio::test]
    async fn a_retired_key_stops_a_remembered_token_at_once() {
        let h = harness();
        let token = mint(&claims());
        accepted(&h, &token).await;
        h.keys.keys.lock().unwrap().clear();
        assert_eq!(refusal(&h, &token).await, Rejection::UnknownKey);
    }

    #[tokio::test]
    async fn each_claim_rule_refuses_the_token_that_breaks_only_it() {
        let h = harness();
        let cases = [
            (with("ver", json!("1.0")), Rejection::V1Token),
            (with("ver", Value::Null), Rejection::V1Token),
            (with("tid", Value::Null), Rejection::MissingClaim("tid")),
            (with("tid", json!("contoso.onmicrosoft.com")), Rejection::BadTenantId),
            (with("iss", Value::Null), Rejection::MissingClaim("iss")),
            // A Contoso token claiming Fabrikam's issuer, and the v1 issuer form.
            (with("iss", json!(format!("{AUTHORITY}/{FABRIKAM}/v2.0"))), Rejection::Issuer),
            (with("iss", json!(format!("https://sts.windows.net/{CONTOSO}/"))), Rejection::Issuer),
            (with("oid", json!("not-a-guid")), Rejection::MissingClaim("oid")),
            (with("oid", Value::Null), Rejection::MissingClaim("oid")),
            (with("aud", json!("api://someone-else")), Rejection::Audience),
            (with("aud", json!([format!("api://{CLIENT}")])), Rejection::Audience),
            (with("aud", Value::Null), Rejection::MissingClaim("aud")),
            (with("exp", Value::Null), Rejection::MissingClaim("exp")),
            (with("nbf", Value::Null), Rejection::MissingClaim("nbf")),
            (with("iat", Value::Null), Rejection::MissingClaim("iat")),
            (with("idtyp", json!("app")), Rejection::AppOnly),
            (
                {
                    let mut c = with("scp", Value::Null);
                    c["roles"] = json!(["Mail.Read.All"]);
                    c
                },
                Rejection::AppOnly,
            ),
            (with("scp", Value::Null), Rejection::MissingScope),
            (with("scp", json!("User.Read")), Rejection::MissingScope),
            (with("scp", json!("Access_As_User")), Rejection::MissingScope),
            (with("scp", json!("access_as_user.all")), Rejection::MissingScope),
            (claims_for(DISABLED), Rejection::TenantNotEnabled),
            (claims_for("0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"), Rejection::TenantNotEnabled),
            (claims_for(CONSUMER), Rejection::ConsumerTenant),
        ];
        for (claims, expected) in cases {
            assert_eq!(refusal(&h, &mint(&claims)).await, expected, "{claims}");
        }
    }

    #[tokio::test]
    async fn a_key_bound_to_another_tenant_cannot_sign_for_this_one() {
        // The key is Fabrikam's; the token, correctly issued in form, says Contoso.
        let h = harness_with(Some(format!("{AUTHORITY}/{FABRIKAM}/v2.0")), false);
        assert_eq!(refusal(&h, &mint(&claims())).await, Rejection::KeyIssuer);
        accepted(&h, &mint(&claims_for(FABRIKAM))).await;
    }

    #[tokio::test]
    async fn the_time_rules_hold_exactly_at_their_one_minute_leeway() {
        let h = harness();
        let leeway = CLOCK_SKEW_LEEWAY.as_secs() as i64;
        // Expired up to the leeway ago: still accepted; one second more: refused.
        let times = |iat: i64, nbf: i64, exp: i64| {
            let mut c = claims();
            c["iat"] = json!(iat);
            c["nbf"] = json!(nbf);
            c["exp"] = json!(exp);
            mint(&c)
        };
        accepted(&h, &times(NOW - 3600, NOW - 3600, NOW - leeway)).await;
        assert_eq!(
            refusal(&h, &times(NOW - 3600, NOW - 3600, NOW - leeway - 1)).await,
            Rejection::Expired
        );
        // Not valid before up to the leeway ahead: accepted; one second more: refused, with
        // `iat` still plausible so only the `nbf` rule stands.
        accepted(&h, &times(NOW - 60, NOW + leeway, NOW + 3600)).await;
        assert_eq!(
            refusal(&h, &times(NOW - 60, NOW + leeway + 1, NOW + 3600)).await,
            Rejection::NotYetValid
        );
        // Issued up to the leeway in the future: accepted; beyond: refused, `nbf` in the past.
        accepted(&h, &times(NOW + leeway, NOW - 60, NOW + 3600)).await;
        assert_eq!(
            refusal(&h, &times(NOW + leeway + 1, NOW - 60, NOW + 3600)).await,
            Rejection::IssuedAt
        );
        // Issued after it expires: refused, even with both inside the window; issued at the
        // very second it expires: accepted.
        accepted(&h, &times(NOW + 30, NOW - 60, NOW + 30)).await;
        assert_eq!(refusal(&h, &times(NOW + 31, NOW - 60, NOW + 30)).await, Rejection::IssuedAt);
        // The same token, accepted now, is refused once the clock passes exp + leeway.
        let token = times(NOW - 60, NOW - 60, NOW + 100);
        accepted(&h, &token).await;
        h.now.store(NOW + 100 + leeway + 1, Ordering::SeqCst);
        assert_eq!(refusal(&h, &token).await, Rejection::Expired);
    }

    #[test]
    fn reasons_and_descriptions_are_fixed_and_distinct() {
        let all = [
            Rejection::Missing,
            Rejection::Malformed,
            Rejection::Algorithm,
            Rejection::TokenType,
            Rejection::UnknownKey,
            Rejection::KeysUnavailable,
            Rejection::Signature,
            Rejection::V1Token,
            Rejection::MissingClaim("exp"),
            Rejection::BadTenantId,
            Rejection::Issuer,
            Rejection::KeyIssuer,
            Rejection::Audience,
            Rejection::Expired,
            Rejection::NotYetValid,
            Rejection::IssuedAt,
            Rejection::AppOnly,
            Rejection::MissingScope,
            Rejection::ConsumerTenant,
            Rejection::TenantNotEnabled,
        ];
        let reasons: std::collections::BTreeSet<_> = all.iter().map(Rejection::reason).collect();
        let descriptions: std::collections::BTreeSet<_> =
            all.iter().map(Rejection::description).collect();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(descriptions.len(), all.len());
        assert_eq!(Rejection::Expired.reason(), "expired");
        assert_eq!(Rejection::MissingScope.reason(), "insufficient_scope");
        assert_eq!(
            Rejection::MissingClaim("exp").description(),
            "the token lacks the required `exp` claim"
        );
        assert_eq!(Rejection::Expired.description(), "the token has expired");
    }

    #[test]
    fn each_rejection_has_a_distinct_answer_class() {
        assert_eq!(Rejection::MissingScope.answer(), Answer::InsufficientScope);
        assert_eq!(Rejection::KeysUnavailable.answer(), Answer::Unavailable);
        assert_eq!(Rejection::TenantNotEnabled.answer(), Answer::Forbidden);
        assert_eq!(Rejection::Expired.answer(), Answer::Unauthorized);
        assert_eq!(Rejection::AppOnly.answer(), Answer::Forbidden);
        assert_eq!(Rejection::ConsumerTenant.answer(), Answer::Forbidden);
    }
}
