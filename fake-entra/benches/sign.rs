//! Signing throughput of an OBO access token (a v1 Graph token, the hot path of m365-bench).
//!
//! Criterion-free on purpose: `cargo bench -p fake-entra --bench sign` signs a token of the
//! size OBO returns N times per round and prints the median time per signature and the
//! signatures per second on one core.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use fake_entra::{
    Keys,
    keys::KeyRing,
    tokens::{self, GRAPH_AUDIENCE, V1_ISSUER_HOST},
};
use rsa::{
    pkcs1::DecodeRsaPrivateKey,
    signature::{SignatureEncoding, Signer},
};
use serde_json::json;
use sha2::Sha256;

/// The active TEST-ONLY key of the ring (`Keys::TestKeys`), for the jsonwebtoken baseline.
const KEY_PEM: &str = include_str!("../src/test_keys/key1.pem");

/// Signatures per round and rounds; the median round is reported.
const PER_ROUND: u32 = 200;
const ROUNDS: usize = 9;

fn main() {
    let ring = KeyRing::load(&Keys::TestKeys).expect("the bundled test keys load");
    let key = ring.active();
    // The claim set of an OBO Graph token (tokens::graph_user_claims), with fixed values.
    let claims = json!({
        "aud": GRAPH_AUDIENCE,
        "iss": format!("{V1_ISSUER_HOST}/8f1d2c3b-4a5e-4f60-9a7b-0c1d2e3f4a5b/"),
        "iat": 1_764_460_800, "nbf": 1_764_460_800, "exp": 1_764_465_000,
        "acr": "1",
        "aio": format!("E2{}", "A".repeat(220)),
        "amr": ["pwd", "mfa"],
        "app_displayname": "M365 MCP Connector",
        "appid": "6c0e3a52-9d0f-4b7e-8e61-2f3a4b5c6d7e",
        "appidacr": "1",
        "family_name": "Lindqvist", "given_name": "Astrid",
        "idtyp": "user", "ipaddr": "203.0.113.7",
        "name": "Astrid Lindqvist",
        "oid": "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d",
        "platf": "14", "puid": "10030000DEADBEEF",
        "scp": "Calendars.Read Files.Read.All Mail.Read User.Read",
        "sub": "q0mUq4bOv7uY9Hc1vFxT2v3n5r0b8S6kF1dJ4xW7yZA",
        "tid": "8f1d2c3b-4a5e-4f60-9a7b-0c1d2e3f4a5b",
        "unique_name": "astrid@contoso.example", "upn": "astrid@contoso.example",
        "uti": "AAECAwQFBgcICQoLDA0ODw", "ver": "1.0",
    });

    let msg = {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid, "x5t": key.kid});
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };

    // Before: jsonwebtoken's rust_crypto backend, which re-parses the key on every signature.
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).expect("pem");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    time("jsonwebtoken::encode (rust_crypto)", || {
        jsonwebtoken::encode(&header, &claims, &encoding).expect("sign")
    });

    // Candidate: the pure-Rust `rsa` key parsed once (CRT values precomputed).
    let private = rsa::PrivateKey::from_pkcs1_der(encoding.as_bytes()).expect("pkcs1");
    let rsa_key = rsa::pkcs1v15::SigningKey::<Sha256>::new(private);
    time("rsa::pkcs1v15::SigningKey, parsed once", || {
        let sig = rsa_key.sign(msg.as_bytes()).to_vec();
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    });

    // Candidate: ring's RsaKeyPair, parsed once.
    let ring_key = ring::rsa::KeyPair::from_der(encoding.as_bytes()).expect("ring");
    let rng = ring::rand::SystemRandom::new();
    time("ring::rsa::KeyPair, parsed once", || {
        let mut sig = vec![0; ring_key.public().modulus_len()];
        ring_key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, msg.as_bytes(), &mut sig)
            .expect("sign");
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    });

    // What the fake uses: tokens::sign (header + claims serialisation included).
    time("fake_entra::tokens::sign (OBO token)", || tokens::sign(key, &claims, true, true));
}

/// Runs `f` in rounds and prints the median time per call.
fn time(name: &str, mut f: impl FnMut() -> String) {
    // Warm-up (page in, fill caches, lazy initialisation in the backend).
    for _ in 0..20 {
        std::hint::black_box(f());
    }
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                std::hint::black_box(f());
            }
            start.elapsed() / PER_ROUND
        })
        .collect();
    rounds.sort();
    let median = rounds[ROUNDS / 2];
    println!(
        "{name:<42} median {:>7.1} µs/signature {:>7.0} signatures/s (min {:.1}, max {:.1} µs)",
        median.as_secs_f64() * 1e6,
        1.0 / median.as_secs_f64(),
        rounds[0].as_secs_f64() * 1e6,
        rounds[ROUNDS - 1].as_secs_f64() * 1e6,
    );
}
