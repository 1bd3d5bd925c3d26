//! Token shapes (reference/entra.md §3) and the minting helpers, including deliberately bad
//! tokens for the conformance A-scenarios.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use fixtures::{GRAPH_APP_ID, User};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    keys::{ATTACKER_KEY, SigningKey},
    state::SignInContext,
};

/// Graph's audience in v1 tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// The v1 issuer host of Graph tokens (kept real, see ARCHITECTURE.md decisions).
pub const V1_ISSUER_HOST: &str = "https://sts.windows.net";

/// A fresh `uti`: 16 random bytes, base64url (22 characters, as Entra's).
pub fn new_uti() -> String {
    URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

/// Pairwise `sub`: stable per (tenant, user, application).
pub fn pairwise_sub(tid: Uuid, oid: Uuid, app: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{tid}:{oid}:{app}").as_bytes()))
}

/// The opaque `aio` claim: it carries the sign-in context so an OBO exchange can evaluate
/// Conditional Access on the same session.
pub fn encode_aio(ctx: &SignInContext, issued_ms: i64) -> String {
    let mut ctx = ctx.clone();
    ctx.issued_ms = issued_ms;
    let json = serde_json::to_vec(&ctx).unwrap_or_default();
    format!("E2{}", URL_SAFE_NO_PAD.encode(json))
}

pub fn decode_aio(aio: &str) -> Option<SignInContext> {
    let raw = URL_SAFE_NO_PAD.decode(aio.strip_prefix("E2")?).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// `amr` for a context.
fn amr(ctx: &SignInContext) -> Value {
    if ctx.mfa { json!(["pwd", "mfa"]) } else { json!(["pwd"]) }
}

/// Signs claims with RS256 (`typ JWT`, `kid`; v1 tokens add `x5t`, Graph tokens a `nonce`).
pub fn sign(key: &SigningKey, claims: &Value, v1: bool, graph_nonce: bool) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.kid = Some(key.kid.clone());
    if v1 {
        header.x5t = Some(key.kid.clone());
    }
    if graph_nonce {
        header.nonce = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(Uuid::new_v4().as_bytes())));
    }
    sign_with_header(key, &header, claims)
}

/// Signs claims with RS256 under a `kid` of the caller's choosing (`typ JWT`): for tests that
/// publish the key under their own name, or forge one that names another key.
pub fn sign_as(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.kid = Some(kid.to_owned());
    sign_with_header(key, &header, claims)
}

fn sign_with_header(key: &SigningKey, header: &Header, claims: &Value) -> String {
    // The JWS is assembled here (what jsonwebtoken::encode does: base64url of the header's
    // and the claims' JSON) so the signature comes from the key parsed once, not re-parsed.
    // Serialising JSON values and signing with a loaded key cannot fail; an empty string
    // would be refused by any verifier, which is the safe outcome if it ever did.
    let (Ok(header), Ok(claims)) = (serde_json::to_vec(header), serde_json::to_vec(claims)) else {
        return String::new();
    };
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    match key.sign_rs256(message.as_bytes()) {
        Ok(signature) => format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)),
        Err(_) => String::new(),
    }
}

/// A token with final claims, signed later: the grants build it under the state lock and the
/// handler signs after releasing it. Holds its own copy of the key (the private half is
/// shared), so a key rotation in between does not change what it is signed with.
pub(crate) struct Unsigned {
    key: SigningKey,
    claims: Value,
    v1: bool,
    graph_nonce: bool,
}

impl Unsigned {
    pub(crate) fn new(key: &SigningKey, claims: Value, v1: bool, graph_nonce: bool) -> Self {
        Self { key: key.clone(), claims, v1, graph_nonce }
    }

    /// The compact JWS ([`sign`]).
    pub(crate) fn sign(&self) -> String {
        sign(&self.key, &self.claims, self.v1, self.graph_nonce)
    }
}

/// Times of a token.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Issue time in milliseconds (carried in `aio`).
    pub ms: i64,
}

impl Times {
    pub fn new(now: DateTime<Utc>, lifetime_secs: i64) -> Self {
        let t = now.timestamp();
        Self { iat: t, nbf: t, exp: t + lifetime_secs, ms: now.timestamp_millis() }
    }
}

/// Claims of a v2 delegated access token for an API audience (§3.2).
#[allow(clippy::too_many_arguments)]
pub fn v2_user_claims(
    issuer: &str,
    tid: Uuid,
    user: &User,
    aud: Uuid,
    azp: Uuid,
    azpacr: &str,
    scp: &str,
    ctx: &SignInContext,
    times: Times,
    uti: &str,
) -> Value {
    json!({
        "aud": aud.to_string(),
        "iss": issuer,
        "iat": times.iat,
        "nbf": times.nbf,
        "exp": times.exp,
        "aio": encode_aio(ctx, times.ms),
        "azp": azp.to_string(),
        "azpacr": azpacr,
        "name": user.display_name,
        "oid": user.oid.to_string(),
        "preferred_username": user.upn,
        "rh": "0.AAAA",
        "scp": scp,
        "sub": pairwise_sub(tid, user.oid, aud),
        "tid": tid.to_string(),
        "uti": uti,
        "ver": "2.0",
    })
}

/// Claims of a v2 ID token for `client`.
pub fn id_token_claims(
    issuer: &str,
    tid: Uuid,
    user: &User,
    client: Uuid,
    nonce: Option<&str>,
    ctx: &SignInContext,
    times: Times,
) -> Value {
    let mut v = json!({
        "aud": client.to_string(),
        "iss": issuer,
        "iat": times.iat,
        "nbf": times.nbf,
        "exp": times.exp,
        "aio": encode_aio(ctx, times.ms),
        "name": user.display_name,
        "oid": user.oid.to_string(),
        "preferred_username": user.upn,
        "rh": "0.AAAA",
        "sub": pairwise_sub(tid, user.oid, client),
        "tid": tid.to_string(),
        "uti": new_uti(),
        "ver": "2.0",
    });
    if let (Some(n), Some(m)) = (nonce, v.as_object_mut()) {
        m.insert("nonce".into(), json!(n));
    }
    v
}

/// Claims of a v1 Graph delegated token as OBO returns it (§3.3).
#[allow(clippy::too_many_arguments)]
pub fn graph_user_claims(
    tid: Uuid,
    user: &User,
    appid: Uuid,
    app_displayname: &str,
    appidacr: &str,
    scp: &str,
    ctx: &SignInContext,
    cp1: bool,
    times: Times,
    uti: &str,
) -> Value {
    let mut v = json!({
        "aud": GRAPH_AUDIENCE,
        "iss": format!("{V1_ISSUER_HOST}/{tid}/"),
        "iat": times.iat,
        "nbf": times.nbf,
        "exp": times.exp,
        "acr": "1",
        "aio": encode_aio(ctx, times.ms),
        "amr": amr(ctx),
        "app_displayname": app_displayname,
        "appid": appid.to_string(),
        "appidacr": appidacr,
        "family_name": user.surname.clone().unwrap_or_default(),
        "given_name": user.given_name.clone().unwrap_or_default(),
        "idtyp": "user",
        "ipaddr": ctx.ip,
        "name": user.display_name,
        "oid": user.oid.to_string(),
        "platf": "14",
        "puid": format!("1003{:012X}", user.oid.as_u128() & 0xFFFF_FFFF_FFFF),
        "scp": scp,
        "sub": pairwise_sub(tid, user.oid, GRAPH_APP_ID),
        "tid": tid.to_string(),
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": uti,
        "ver": "1.0",
    });
    if cp1 && let Some(m) = v.as_object_mut() {
        m.insert("xms_cc".into(), json!(["cp1"]));
    }
    v
}

/// The deterministic object id of an app's service principal in a tenant.
pub fn service_principal_id(tid: Uuid, app: Uuid) -> Uuid {
    Uuid::new_v5(&tid, app.as_bytes())
}

/// Claims of an app-only (client credentials) token. v1 for Graph, v2 for an API.
#[allow(clippy::too_many_arguments)]
pub fn app_only_claims(
    issuer_v2: &str,
    tid: Uuid,
    app: Uuid,
    app_displayname: &str,
    aud: &str,
    graph: bool,
    roles: &[String],
    times: Times,
    uti: &str,
) -> Value {
    let sp = service_principal_id(tid, app).to_string();
    let mut v = json!({
        "aud": aud,
        "iat": times.iat,
        "nbf": times.nbf,
        "exp": times.exp,
        "aio": "E2app",
        "idtyp": "app",
        "oid": sp,
        "rh": "0.AAAA",
        "sub": sp,
        "tid": tid.to_string(),
        "uti": uti,
    });
    let m = v.as_object_mut().expect("json! object");
    if !roles.is_empty() {
        m.insert("roles".into(), json!(roles));
    }
    if graph {
        m.insert("iss".into(), json!(format!("{V1_ISSUER_HOST}/{tid}/")));
        m.insert("app_displayname".into(), json!(app_displayname));
        m.insert("appid".into(), json!(app.to_string()));
        m.insert("appidacr".into(), json!("1"));
        m.insert("ver".into(), json!("1.0"));
    } else {
        m.insert("iss".into(), json!(issuer_v2));
        m.insert("azp".into(), json!(app.to_string()));
        m.insert("azpacr".into(), json!("1"));
        m.insert("ver".into(), json!("2.0"));
    }
    v
}

// ─── Deliberately bad tokens ────────────────────────────────────────────────────────────

/// A defect to build into a token (conformance A03–A10, security.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadToken {
    /// `aud` is Graph's instead of the connector's (passthrough attempt, A05).
    WrongAudience,
    /// Signed by a key the fake never published, with a `kid` nobody knows.
    UnknownKey,
    /// Signed by an attacker key but carrying the `kid` of the active published key (B3).
    ForeignKeyKnownKid,
    /// Signed by the ring's pending key: valid once the key is rotated in (A09).
    UnpublishedKey,
    /// `exp` in the past (one hour ago).
    Expired,
    /// `nbf` 30 minutes ahead; `iat` now and `exp` a normal lifetime away (only the
    /// not-before rule refuses it).
    FutureNbf,
    /// `iat` 30 minutes ahead; `nbf` now and `exp` a normal lifetime away (only the
    /// issued-at rule refuses it).
    FutureIat,
    /// `iat` 30 s ahead (inside a clock-skew leeway of a minute) and `exp` 10 s ahead:
    /// neither expired nor issued in the future, but issued after it expires.
    IatAfterExp,
    /// A header trick (RFC 8725 §3.10–3.11, RFC 7515 §4.1): see [`HeaderTrick`].
    Header(HeaderTrick),
    /// `alg: none` and an empty signature.
    AlgNone,
    /// HS256 with the published RSA public key (its JWK JSON) as the HMAC secret.
    Hs256WithPublicKey,
    /// `iss` of this tenant while `tid` names another (A07).
    MismatchedIssuer { iss_tid: Uuid },
    /// An app-only token: `roles`, `idtyp app`, no `scp`.
    AppOnly,
    /// A delegated token without `scp`.
    MissingScp,
    /// A valid token whose payload was changed after signing.
    TamperedPayload,
    /// An ID token of the connector (aud = connector, no `scp`).
    IdToken,
}

/// A JOSE header that a validator must not trust or must refuse (reference/security.md §1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderTrick {
    /// Signed by the active published key, but the header names no `kid`.
    MissingKid,
    /// Signed by the active published key with this `typ` instead of `JWT`.
    Typ(String),
    /// Signed by the active published key; `crit` names an extension nobody understands
    /// (and the header carries it).
    UnknownCrit,
    /// Signed by an attacker key (unknown `kid`) whose public JWK is embedded as `jwk`.
    EmbeddedJwk,
    /// Signed by an attacker key (unknown `kid`) with `jku` pointing at this URL.
    Jku(String),
    /// Signed by an attacker key (unknown `kid`) with `x5u` pointing at this URL.
    X5u(String),
}

/// What to mint: a user token for the connector by default, with overrides.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub tid: Uuid,
    pub oid: Uuid,
    /// `aud`; default the connector's client id.
    pub audience: Option<String>,
    /// `scp` (space-joined); default `access_as_user`.
    pub scopes: Option<Vec<String>>,
    /// `azp`; default the MCP client's id.
    pub azp: Option<Uuid>,
    /// Lifetime in seconds; default the tenant's policy.
    pub lifetime_secs: Option<i64>,
    /// Shift `iat`/`nbf`/`exp` by this many seconds (negative = in the past).
    pub shift_secs: i64,
    /// Sign-in context overrides.
    pub mfa: bool,
    pub compliant: Option<bool>,
    pub ip: Option<String>,
    /// Extra or replaced claims.
    pub extra: Map<String, Value>,
    pub bad: Option<BadToken>,
}

impl TokenSpec {
    /// A user token for `(tid, oid)`, as the auth-code flow would issue it.
    pub fn user(tid: Uuid, oid: Uuid) -> Self {
        Self {
            tid,
            oid,
            audience: None,
            scopes: None,
            azp: None,
            lifetime_secs: None,
            shift_secs: 0,
            mfa: false,
            compliant: None,
            ip: None,
            extra: Map::new(),
            bad: None,
        }
    }

    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn azp(mut self, azp: Uuid) -> Self {
        self.azp = Some(azp);
        self
    }

    pub fn lifetime_secs(mut self, secs: i64) -> Self {
        self.lifetime_secs = Some(secs);
        self
    }

    pub fn shift_secs(mut self, secs: i64) -> Self {
        self.shift_secs = secs;
        self
    }

    pub fn mfa(mut self, mfa: bool) -> Self {
        self.mfa = mfa;
        self
    }

    pub fn compliant(mut self, compliant: bool) -> Self {
        self.compliant = Some(compliant);
        self
    }

    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    pub fn bad(mut self, bad: BadToken) -> Self {
        self.bad = Some(bad);
        self
    }
}

/// Applies a [`BadToken`] that concerns the encoding (key, algorithm, payload bytes).
pub(crate) fn encode_with_defect(
    claims: &Value,
    active: &SigningKey,
    pending: Option<&SigningKey>,
    bad: Option<&BadToken>,
) -> String {
    match bad {
        Some(BadToken::UnknownKey) => {
            let mut k = attacker_key();
            k.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(b"unknown-kid"))[..27].to_string();
            sign(&k, claims, false, false)
        }
        Some(BadToken::ForeignKeyKnownKid) => {
            let mut k = attacker_key();
            k.kid = active.kid.clone();
            sign(&k, claims, false, false)
        }
        Some(BadToken::UnpublishedKey) => sign(pending.unwrap_or(active), claims, false, false),
        Some(BadToken::AlgNone) => {
            let header = json!({"typ": "JWT", "alg": "none", "kid": active.kid});
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            )
        }
        Some(BadToken::Hs256WithPublicKey) => {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some("JWT".into());
            header.kid = Some(active.kid.clone());
            match EncodingKey::from_secret(&active.public_material) {
                Ok(key) => jsonwebtoken::encode(&header, claims, &key).unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
        Some(BadToken::Header(trick)) => sign_with_trick(active, claims, trick),
        Some(BadToken::TamperedPayload) => {
            let good = sign(active, claims, false, false);
            let mut parts = good.splitn(3, '.');
            let (h, _, s) = (parts.next().unwrap_or(""), parts.next(), parts.next().unwrap_or(""));
            let mut tampered = claims.clone();
            if let Some(m) = tampered.as_object_mut() {
                m.insert("scp".into(), json!("access_as_user Mail.Send"));
                m.insert("name".into(), json!("Tampered"));
            }
            format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(tampered.to_string()))
        }
        _ => sign(active, claims, false, false),
    }
}

/// Signs `claims` under a header built from `trick` (see [`HeaderTrick`]).
fn sign_with_trick(active: &SigningKey, claims: &Value, trick: &HeaderTrick) -> String {
    let attacker = || {
        let mut k = attacker_key();
        k.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(b"attacker-kid"))[..27].to_string();
        k
    };
    let (key, header) = match trick {
        HeaderTrick::MissingKid => (active.clone(), json!({"typ": "JWT", "alg": "RS256"})),
        HeaderTrick::Typ(typ) => {
            (active.clone(), json!({"typ": typ, "alg": "RS256", "kid": active.kid}))
        }
        HeaderTrick::UnknownCrit => (
            active.clone(),
            json!({"typ": "JWT", "alg": "RS256", "kid": active.kid,
                   "crit": ["urn:example:must-understand"], "urn:example:must-understand": true}),
        ),
        HeaderTrick::EmbeddedJwk => {
            let k = attacker();
            let jwk = json!({"kty": "RSA", "use": "sig", "kid": k.kid, "n": k.n, "e": k.e});
            let header = json!({"typ": "JWT", "alg": "RS256", "kid": k.kid, "jwk": jwk});
            (k, header)
        }
        HeaderTrick::Jku(url) => {
            let k = attacker();
            let header = json!({"typ": "JWT", "alg": "RS256", "kid": k.kid, "jku": url});
            (k, header)
        }
        HeaderTrick::X5u(url) => {
            let k = attacker();
            let header = json!({"typ": "JWT", "alg": "RS256", "kid": k.kid, "x5u": url});
            (k, header)
        }
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    match key.sign_rs256(message.as_bytes()) {
        Ok(signature) => format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)),
        Err(_) => String::new(),
    }
}

fn attacker_key() -> SigningKey {
    // The attacker PEM is a constant shipped with the crate; failing to parse it is a build
    // defect caught by the crate's own tests.
    SigningKey::from_pem(ATTACKER_KEY, crate::keys::KeyState::Retired)
        .expect("the bundled attacker test key parses")
}
