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
mod tests {
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

    #[test]
    fn each_rejection_has_a_distinct_answer_class() {
        assert_eq!(Rejection::MissingScope.answer(), Answer::InsufficientScope);
        assert_eq!(Rejection::KeysUnavailable.answer(), Answer::Unavailable);
        assert_eq!(Rejection::TenantNotEnabled.answer(), Answer::Forbidden);
        assert_eq!(Rejection::Expired.answer(), Answer::Unauthorized);
    }
}
