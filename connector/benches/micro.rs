//! Criterion micro-benchmarks of the connector's per-request hot paths (issue 7).
//!
//! Run: `cargo bench -p connector --bench micro -- --warm-up-time 1 --measurement-time 3`.
//! Targets: token validation ≤ 30 µs; docx extraction ≥ 20 MB/s of input file.
//!
//! Every benchmark goes through the production code path; set-up that needs the network
//! (loading the JWKS from fake-entra, the first On-Behalf-Of exchange against a wiremock
//! Entra) happens once, before the timed loop, and each set-up checks that the path it is
//! about to time really is the fast one (a valid token, a cache hit).
//!
//! # Layout
//! * `auth/*`: [`Validator::validate`] with the key already in the [`JwksKeyStore`], and the
//!   bare RS256 verification inside it for comparison.
//! * `obo_cache/*`: a Graph token served from the encrypted cache by [`TokenProvider`], and
//!   the AES-256-GCM envelope opening alone.
//! * `cursor/*`: sealing and opening an HMAC paging cursor.
//! * `shaping/*`: a 25-message mail page turned into the tool result.
//! * `extract/*`: docx, xlsx and pdf of about 1 MB each, with `Throughput::Bytes` so criterion
//!   prints MB/s of input file. `benches/extract.rs` is a framework-free variant for docx.

use std::{hint::black_box, path::Path, sync::Arc, time::Duration};

use connector::{
    auth::{JwksKeyStore, KeyStore, Validator},
    clock::Clock,
    config::{Credential, EntraSettings},
    domain::uri::M365Uri,
    domain::{Caller, ObjectId, ScopeSet, TenantId, UserAssertion},
    extract::{FileKind, Limits, Selection, extract},
    graph::model::{Message, ODataPage},
    metrics::Metrics,
    obo::{CacheKeys, ClientCredential, OboSettings, TokenCacheKey, TokenProvider},
    policy::{Policy, PolicyStore},
    tools::{
        cursor::{Cursor, CursorBinding, CursorKey},
        mail::{EmailHit, EmailSearchArgs, EmailSearchResult, Person},
        mailbox::MailboxZone,
        shaping::{self, AppliedFilter, ByteBudget, DateTimes, Page},
    },
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fixtures::office::{self, Cell};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

const MB: usize = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

fn caller(tid: Uuid, oid: Uuid, assertion: &str) -> Caller {
    Caller {
        tenant_id: TenantId::from(tid),
        object_id: ObjectId::from(oid),
        client_id: Uuid::from_u128(0xc11e47),
        scopes: ScopeSet::from_scp("access_as_user"),
        token_id: None,
        display_name: None,
        assertion: UserAssertion::new(assertion.to_owned()),
    }
}

/// Deterministic text for inputs that must not compress to nothing (a repeated paragraph
/// deflates ~100:1, which would make "per MB of file" meaningless).
struct Words(u64);

impl Words {
    const VOCABULARY: &'static [&'static str] = &[
        "budget",
        "quarterly",
        "plan",
        "contoso",
        "sales",
        "hiring",
        "travel",
        "review",
        "milestone",
        "owner",
        "forecast",
        "revenue",
        "region",
        "north",
        "south",
        "project",
        "launch",
        "customer",
        "renewal",
        "contract",
        "invoice",
        "approval",
        "meeting",
        "agenda",
        "summary",
        "risk",
        "mitigation",
        "schedule",
        "delivery",
        "vendor",
        "support",
        "ticket",
        "escalation",
        "release",
        "roadmap",
        "design",
        "prototype",
        "feedback",
        "survey",
        "training",
        "onboarding",
        "policy",
        "compliance",
        "audit",
        "security",
        "network",
        "storage",
        "migration",
        "tenant",
        "license",
        "the",
        "and",
        "for",
        "with",
        "from",
        "of",
        "to",
        "in",
        "on",
        "by",
        "team",
        "week",
        "month",
        "year",
        "target",
        "metric",
        "growth",
        "cost",
        "saving",
        "headcount",
        "office",
        "remote",
        "workshop",
        "partner",
        "channel",
    ];

    fn word(&mut self) -> &'static str {
        // xorshift64: fast, deterministic, good enough to defeat long-range repetition.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Self::VOCABULARY[(self.0 % Self::VOCABULARY.len() as u64) as usize]
    }

    fn number(&mut self) -> u64 {
        self.word();
        self.0 % 100_000
    }

    /// Words joined by spaces up to about `chars` characters, ending with a number so that
    /// runs of identical sentences stay rare.
    fn sentence(&mut self, chars: usize) -> String {
        let mut s = String::with_capacity(chars + 16);
        while s.len() < chars {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(self.word());
        }
        s.push_str(&format!(" {}.", self.number()));
        s
    }
}

/// Builds a document with `make(n)` and rescales `n` once so the file is about 1 MB.
fn about_one_mb(mut n: usize, make: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let first = make(n);
    n = (n as f64 * MB as f64 / first.len() as f64).ceil() as usize;
    make(n.max(1))
}

// ─── auth ─────────────────────────────────────────────────────────────────────────────

fn token_validation(c: &mut Criterion) {
    let rt = runtime();
    let entra = rt.block_on(fake_entra::FakeEntra::builder().start()).expect("fake-entra starts");
    let (tid, oid) = entra.persona("adele@contoso.com").expect("adele is in the standard world");
    let token = entra.user_token(tid, oid);

    // The production key store, filled once over HTTP; the timed loop finds the key cached.
    let store =
        Arc::new(JwksKeyStore::new(http_client(), entra.jwks_uri(), Duration::from_secs(300)));
    let loaded = rt.block_on(store.refresh()).expect("fake-entra serves its JWKS");
    assert!(loaded > 0, "the JWKS holds keys");
    let settings = EntraSettings {
        authority: Url::parse(&entra.uri()).expect("fake-entra URL"),
        client_id: entra.connector_id(),
        audiences: vec![entra.connector_id().to_string()],
        required_scope: "access_as_user".into(),
        credential: Credential::Secret(SecretString::from("TEST-ONLY-secret".to_owned())),
        jwks_refresh_floor: Duration::from_secs(300),
        jwks_refresh_interval: Duration::from_secs(3600),
        jwks_max_stale: Duration::from_secs(3600),
        http_timeout: Duration::from_secs(10),
    };
    let policy = Policy::parse(&format!("[[tenants]]\nid = \"{tid}\"\n"), Path::new("bench.toml"))
        .expect("bench policy parses");
    let validator = Validator::new(
        settings,
        store.clone(),
        Clock::system(),
        Arc::new(PolicyStore::fixed(policy)),
    );
    let accepted = rt.block_on(validator.validate(&token)).expect("the token is valid");
    assert_eq!(accepted.object_id, ObjectId::from(oid));

    let mut g = c.benchmark_group("auth");
    g.bench_function("validate_token_cached_key", |b| {
        b.iter(|| rt.block_on(validator.validate(black_box(&token))).is_ok())
    });

    // The RS256 signature check alone, to show what share of validation it is.
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let kid = header.kid.expect("kid");
    let key = rt.block_on(store.key(&kid)).expect("cached key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    g.bench_function("rs256_verify_only", |b| {
        b.iter(|| jsonwebtoken::decode::<Value>(black_box(&token), &key.key, &validation).is_ok())
    });
    g.finish();
    drop(entra);
}

// ─── On-Behalf-Of token cache ─────────────────────────────────────────────────────────

/// A Graph-token-shaped string of realistic length (~1.6 KB): a cache entry's bulk.
fn graph_token_text() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut w = Words(0x5eed);
    let payload: Vec<u8> = (0..1100).map(|_| w.number() as u8).collect();
    let sig: Vec<u8> = (0..256).map(|_| w.number() as u8).collect();
    format!(
        "eyJ0eXAiOiJKV1QiLCJub25jZSI6IngiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn token_cache(c: &mut Criterion) {
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path},
    };
    let rt = runtime();
    let tid = Uuid::from_u128(0x72f9_88bf_86f1_41af_91ab_2d7c_d011_db47);
    let oid = Uuid::from_u128(0xa1);
    let graph_token = graph_token_text();
    let entra = rt.block_on(MockServer::start());
    rt.block_on(
        Mock::given(method("POST"))
            .and(path(format!("/{tid}/oauth2/v2.0/token")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token_type": "Bearer",
                "scope": "https://graph.microsoft.com/Mail.Read",
                "expires_in": 3599,
                "access_token": graph_token,
            })))
            // Exactly one exchange: every timed call must be a cache hit.
            .expect(1)
            .mount(&entra),
    );
    let settings = OboSettings::new(
        Url::parse(&entra.uri()).expect("wiremock URL"),
        Uuid::from_u128(7),
        ClientCredential::Secret(SecretString::from("TEST-ONLY-secret".to_owned())),
    );
    let provider =
        TokenProvider::new(settings, http_client(), Clock::system(), Metrics::new().into());
    let who = caller(tid, oid, "inbound.user.token");
    let scopes = ScopeSet::from_scp("Mail.Read");
    let first = rt.block_on(provider.graph_token(&who, &scopes, None)).expect("first exchange");
    assert_eq!(first.expose(), graph_token);

    let mut g = c.benchmark_group("obo_cache");
    g.bench_function("provider_hit", |b| {
        b.iter(|| rt.block_on(provider.graph_token(&who, black_box(&scopes), None)).is_ok())
    });

    // The envelope alone: AES-256-GCM open of an entry of the same size.
    let keys = CacheKeys::ephemeral();
    let key = TokenCacheKey::for_caller(&who, scopes);
    let entry = serde_json::to_vec(&json!({
        "token": graph_token, "scope": "Mail.Read", "expires_at": 1_780_003_600_i64,
        "use_until": 1_780_000_300_i64,
    }))
    .expect("entry JSON");
    let blob = keys.seal(&key, &entry).expect("seal");
    g.bench_function("open_envelope", |b| {
        b.iter(|| keys.open(&key, black_box(&blob)).map(|p| p.len()))
    });
    g.finish();
    drop(entra);
}

// ─── cursors ──────────────────────────────────────────────────────────────────────────

fn cursors(c: &mut Criterion) {
    let key = CursorKey::new([7; 32], Clock::system());
    let who = caller(Uuid::from_u128(1), Uuid::from_u128(2), "t");
    let params = EmailSearchArgs {
        query: Some("quarterly budget".into()),
        folder: Some("inbox".into()),
        ..EmailSearchArgs::default()
    };
    let binding = CursorBinding::new(&who, "outlook_email_search", &params);
    // The larger of the two state shapes tools seal: an OData nextLink.
    let state = json!({"next": "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages?\
        %24search=%22quarterly%20budget%22&%24top=25&%24skiptoken=MSZZVlF4VjBKQ1VIQkxZVlJOWVZV\
        MU1qQXlOQzB3TXkweE5WUXhNRG93TURvd01Gb21KVFU0TWpJMk5qYzNNell5TnprMFpXTm1OVFJsTkdZeE1HTXdN"});
    let sealed = Cursor::seal(&key, &binding, state.clone());
    assert_eq!(Cursor::open(&key, &binding, &sealed), Ok(state.clone()));

    let mut g = c.benchmark_group("cursor");
    g.bench_function("seal", |b| {
        b.iter_batched(
            || state.clone(),
            |s| Cursor::seal(&key, black_box(&binding), s),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open", |b| b.iter(|| Cursor::open(&key, &binding, black_box(&sealed))));
    // What a paging request does: bind to the caller and arguments, then open.
    g.bench_function("bind_and_open", |b| {
        b.iter(|| {
            let binding = CursorBinding::new(&who, "outlook_email_search", black_box(&params));
            Cursor::open(&key, &binding, &sealed)
        })
    });
    g.finish();
}

// ─── result shaping ───────────────────────────────────────────────────────────────────

/// A Graph `/me/messages` page of 25 messages, as the OData search returns them (bytes, as
/// they come off the wire).
fn graph_mail_page() -> Vec<u8> {
    let mut w = Words(0xface);
    let value: Vec<Value> = (0..25)
        .map(|i| {
            json!({
                "id": format!("AAMkAGI2TG93AAA{i:0>3}{}=", "AbCdEf0123456789".repeat(8)),
                "subject": w.sentence(50),
                "from": {"emailAddress": {"name": "Megan Bowen", "address": "megan@contoso.com"}},
                "receivedDateTime": format!("2026-03-{:02}T{:02}:15:00Z", 1 + i % 28, i % 24),
                "hasAttachments": i % 3 == 0,
                "bodyPreview": w.sentence(250),
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "value": value })).expect("page")
}

/// The post-Graph half of `outlook_email_search` (`tools::mail::run`): the response bytes
/// decoded into the typed Graph model, items to hits, byte budget, page with a sealed cursor,
/// text rendering and the structured tool result. `mail::hit` is private, so its public
/// building blocks are called in the same order.
fn shape_mail_page(
    body: &[u8],
    zone: &MailboxZone,
    key: &CursorKey,
    binding: &CursorBinding,
) -> rmcp::model::CallToolResult {
    let page: ODataPage<Message> = serde_json::from_slice(body).expect("a Graph page");
    let hits: Vec<EmailHit> = page
        .value
        .iter()
        .map(|m| {
            let (preview, _) =
                shaping::truncate_text(m.body_preview.as_deref().unwrap_or_default(), 400);
            let id = m.id.as_deref().unwrap_or_default();
            let from = m.from.as_ref().and_then(|r| r.email_address.as_ref());
            EmailHit {
                uri: Some(M365Uri::mail(id)).filter(M365Uri::is_valid).map(|u| u.to_string()),
                subject: m.subject.clone().unwrap_or_default(),
                from: from.map(|e| Person {
                    name: e.name.clone().unwrap_or_default(),
                    address: e.address.clone().unwrap_or_default(),
                }),
                received: m.received_date_time.as_deref().and_then(|t| DateTimes::parse(t, zone)),
                has_attachments: m.has_attachments.unwrap_or(false),
                preview,
            }
        })
        .collect();
    let mut budget = ByteBudget::new(shaping::DEFAULT_RESULT_BUDGET);
    let messages: Vec<EmailHit> = hits.into_iter().take_while(|h| budget.admit(h)).collect();
    let result = EmailSearchResult {
        mailbox: "me".into(),
        method: "odata_search".into(),
        page: Page {
            has_more: true,
            returned: messages.len() as u32,
            total_estimate: None,
            next_cursor: Some(Cursor::seal(
                key,
                binding,
                json!({"next": "https://graph.microsoft.com/v1.0/me/messages?$skiptoken=abc"}),
            )),
        },
        messages,
        applied_filters: vec![AppliedFilter::graph("query", "quarterly budget")],
        truncation: budget.truncation(),
        time_zone_note: zone.note.clone(),
    };
    let text = connector::tools::mail::render(&result);
    shaping::structured(text, &result)
}

fn result_shaping(c: &mut Criterion) {
    let body = graph_mail_page();
    let zone = MailboxZone::resolve(Some("Pacific Standard Time"));
    let key = CursorKey::new([7; 32], Clock::system());
    let who = caller(Uuid::from_u128(1), Uuid::from_u128(2), "t");
    let binding = CursorBinding::new(&who, "outlook_email_search", &EmailSearchArgs::default());
    let out = shape_mail_page(&body, &zone, &key, &binding);
    let returned = out.structured_content.as_ref().and_then(|s| s["page"]["returned"].as_u64());
    assert_eq!(returned, Some(25), "all 25 messages fit the budget");

    let mut g = c.benchmark_group("shaping");
    g.bench_function("mail_page_25", |b| {
        b.iter(|| shape_mail_page(black_box(&body), &zone, &key, &binding))
    });
    g.finish();
}

// ─── extraction ───────────────────────────────────────────────────────────────────────

fn docx_1mb() -> Vec<u8> {
    about_one_mb(5_000, |n| {
        let mut w = Words(1);
        let paragraphs: Vec<String> = (0..n).map(|_| w.sentence(300)).collect();
        let refs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
        office::docx(&refs)
    })
}

fn xlsx_1mb() -> Vec<u8> {
    about_one_mb(5_000, |n| {
        let mut w = Words(2);
        let rows: Vec<Vec<Cell>> = (0..n)
            .map(|i| {
                vec![
                    Cell::Number(i as f64),
                    Cell::Text(w.sentence(12)),
                    Cell::Number(w.number() as f64 / 100.0),
                    Cell::Text(w.sentence(40)),
                    Cell::Bool(i % 2 == 0),
                ]
            })
            .collect();
        office::xlsx(&[("Budget", rows)])
    })
}

fn pdf_1mb() -> Vec<u8> {
    about_one_mb(100, |n| {
        let mut w = Words(3);
        // 40 lines of ~80 characters: inside the writer's one-page-per-entry layout.
        let pages: Vec<String> = (0..n)
            .map(|_| (0..40).map(|_| w.sentence(75)).collect::<Vec<_>>().join("\n"))
            .collect();
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        office::pdf(&refs)
    })
}

fn extraction(c: &mut Criterion) {
    let limits =
        Limits { max_output_chars: usize::MAX, max_pages_or_sheets: 100_000, ..Limits::default() };
    let inputs = [
        ("docx", FileKind::Docx, docx_1mb()),
        ("xlsx", FileKind::Xlsx, xlsx_1mb()),
        ("pdf", FileKind::Pdf, pdf_1mb()),
    ];
    let mut g = c.benchmark_group("extract");
    // Each iteration is milliseconds to a second: fewer, longer samples.
    g.sample_size(10);
    for (name, kind, bytes) in &inputs {
        let out = extract(bytes, *kind, &Selection::all(), &limits).expect("input extracts");
        assert!(out.truncated.is_none(), "{name}: the whole file is extracted");
        eprintln!(
            "extract/{name}: input {} bytes, {} chars of text out",
            bytes.len(),
            out.char_count()
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| extract(black_box(bytes), *kind, &Selection::all(), &limits).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, token_validation, token_cache, cursors, result_shaping, extraction);
criterion_main!(benches);
