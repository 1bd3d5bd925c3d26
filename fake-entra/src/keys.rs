//! Signing keys and the JWKS.
//!
//! ```text
//! !!! TEST-ONLY KEYS !!!
//! The PEM files under src/test_keys/ are private keys published in this repository.
//! They exist so tests start instantly. NEVER use them, or this key ring, in production.
//! ```
//!
//! A key is in one of three states: `Pending` (known to the fake, not in the JWKS: a token
//! signed with it carries a `kid` the JWKS does not list yet — conformance A09), `Published`
//! (in the JWKS, not signing), `Active` (in the JWKS and signing). Retired keys are dropped
//! from the JWKS but kept so tests can still mint with them.
//!
//! Signing goes through `ring`, with the private key parsed once at load: jsonwebtoken's
//! `rust_crypto` backend re-parses the DER and signs with the pure-Rust `rsa` crate, about
//! three times slower, which dominated the fake's CPU under m365-bench's OBO load
//! (`benches/sign.rs` measures both).

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, jwk::Jwk};
use serde::Serialize;
use sha1::{Digest, Sha1};

/// TEST-ONLY private keys (see `src/test_keys/README.md`): the workspace's one key set. The
/// fake signs with them; the connector's own tests, which stand a wiremock Entra up instead,
/// load the same PEMs rather than keeping a second set.
pub const TEST_KEY_1: &str = include_str!("test_keys/key1.pem");
/// TEST-ONLY, see [`TEST_KEY_1`].
pub const TEST_KEY_2: &str = include_str!("test_keys/key2.pem");
/// TEST-ONLY, see [`TEST_KEY_1`].
pub const TEST_KEY_3: &str = include_str!("test_keys/key3.pem");
/// TEST-ONLY key that is never part of the ring: it signs forged tokens.
pub const ATTACKER_KEY: &str = include_str!("test_keys/attacker.pem");

/// Where the fake's signing keys come from.
#[derive(Debug, Clone, Default)]
pub enum Keys {
    /// The three TEST-ONLY keys shipped in `src/test_keys/` (instant start).
    #[default]
    TestKeys,
    /// Three freshly generated RSA-2048 keys (slow: seconds per key in debug builds).
    Generate,
    /// Your own PKCS#8 PEM private keys: the first active, the second published, the rest
    /// pending.
    Pem(Vec<String>),
}

/// State of one key in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyState {
    Pending,
    Published,
    Active,
    Retired,
}

/// One RSA signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// The private key, parsed once; shared because clones of the ring share keys.
    signer: Arc<ring::rsa::KeyPair>,
    pub(crate) decoding: DecodingKey,
    /// Base64url modulus and exponent, as published in the JWKS.
    pub n: String,
    pub e: String,
    /// The public key as PEM bytes of the JWK (used by the HS256-with-public-key attack).
    pub(crate) public_material: Vec<u8>,
    pub state: KeyState,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey").field("kid", &self.kid).field("state", &self.state).finish()
    }
}

/// Errors loading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an RSA private key in PEM form: {0}")]
    Pem(String),
    #[error("RSA key refused for RS256 signing (ring needs 2048 to 8192 bits): {0}")]
    Unsupported(String),
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    #[error("RS256 signing failed: {0}")]
    Sign(String),
}

impl SigningKey {
    /// Loads a PKCS#8 (or PKCS#1) RSA private key in PEM form.
    pub fn from_pem(pem: &str, state: KeyState) -> Result<Self, KeyError> {
        let encoding =
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| KeyError::Pem(e.to_string()))?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        let (n, e) = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => (rsa.n.clone(), rsa.e.clone()),
            _ => return Err(KeyError::Pem("not an RSA key".into())),
        };
        let decoding =
            DecodingKey::from_rsa_components(&n, &e).map_err(|e| KeyError::Pem(e.to_string()))?;
        // jsonwebtoken keeps an RSA key as its PKCS#1 DER, whatever the PEM's wrapping.
        let signer = ring::rsa::KeyPair::from_der(encoding.as_bytes())
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        // Entra's kid is the base64url SHA-1 thumbprint of the certificate; we have no
        // certificate, so the thumbprint is taken over the modulus. Same length and alphabet.
        let modulus = URL_SAFE_NO_PAD.decode(&n).map_err(|e| KeyError::Pem(e.to_string()))?;
        let kid = URL_SAFE_NO_PAD.encode(Sha1::digest(&modulus));
        let public_material =
            format!("{{\"kty\":\"RSA\",\"n\":\"{n}\",\"e\":\"{e}\"}}").into_bytes();
        Ok(Self { kid, signer: Arc::new(signer), decoding, n, e, public_material, state })
    }

    /// Generates a fresh RSA-2048 key (slow).
    pub fn generate(state: KeyState) -> Result<Self, KeyError> {
        use rsa::pkcs8::EncodePrivateKey;
        let mut rng = rand::rng();
        let key =
            rsa::PrivateKey::new(&mut rng, 2048).map_err(|e| KeyError::Generate(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pem(&pem, state)
    }

    /// The RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `message`.
    pub(crate) fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0; self.signer.public().modulus_len()];
        // PKCS#1 v1.5 padding is deterministic: ring takes an RNG but does not draw from it.
        self.signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        Ok(signature)
    }

    /// The JWKS entry, with the given `issuer` member.
    pub fn jwk(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "issuer": issuer,
        })
    }
}

/// The fake's key ring.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    pub fn load(source: &Keys) -> Result<Self, KeyError> {
        let states = |i: usize| match i {
            0 => KeyState::Active,
            1 => KeyState::Published,
            _ => KeyState::Pending,
        };
        let keys = match source {
            Keys::TestKeys => [TEST_KEY_1, TEST_KEY_2, TEST_KEY_3]
                .iter()
                .enumerate()
                .map(|(i, pem)| SigningKey::from_pem(pem, states(i)))
                .collect::<Result<Vec<_>, _>>()?,
            Keys::Generate => {
                (0..3).map(|i| SigningKey::generate(states(i))).collect::<Result<Vec<_>, _>>()?
            }
            Keys::Pem(pems) => pems
                .iter()
                .enumerate()
                .map(|(i, pem)| SigningKey::from_pem(pem, states(i)))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if keys.is_empty() {
            return Err(KeyError::Pem("at least one key is needed".into()));
        }
        Ok(Self { keys })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .or_else(|| self.keys.iter().find(|k| k.state == KeyState::Published))
            .unwrap_or(&self.keys[0])
    }

    /// Keys listed in the JWKS.
    pub fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(|k| matches!(k.state, KeyState::Active | KeyState::Published))
    }

    /// Any key the ring knows, by `kid`, whatever its state.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// A published key by `kid` (what a verifier reading the JWKS could use).
    pub fn verifying(&self, kid: &str) -> Option<&SigningKey> {
        self.published().find(|k| k.kid == kid)
    }

    /// The first pending key, if any.
    pub fn pending(&self) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.state == KeyState::Pending)
    }

    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn add(&mut self, key: SigningKey) -> String {
        let kid = key.kid.clone();
        self.keys.push(key);
        kid
    }

    pub fn set_state(&mut self, kid: &str, state: KeyState) -> bool {
        let Some(i) = self.keys.iter().position(|k| k.kid == kid) else { return false };
        if state == KeyState::Active {
            for k in &mut self.keys {
                if k.state == KeyState::Active {
                    k.state = KeyState::Published;
                }
            }
        }
        self.keys[i].state = state;
        true
    }
}
