//! The encrypted token cache: typed keys, the AES-256-GCM envelope with key rotation, and the
//! storage trait with its in-memory moka implementation.
//!
//! Envelope: `version (1) | key id length (1) | key id | nonce (12) | ciphertext + tag`.
//! The associated data is the canonical cache key, so a ciphertext copied under another
//! user's key fails to open (`security.md` D5) and counts as a miss.

use std::{fmt, sync::Arc, time::Duration};

use aes_gcm::{
    Aes256Gcm, KeyInit,
    aead::{Aead, Payload},
};
use futures::future::BoxFuture;
use zeroize::Zeroizing;

use crate::domain::{AssertionHash, Caller, ObjectId, ScopeSet, TenantId};

const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// One AES-256 key with the id written into every envelope it seals.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    bytes: Zeroizing<[u8; 32]>,
}

impl EncryptionKey {
    /// `id`: 1–64 printable ASCII characters, unique within a [`CacheKeys`].
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Result<Self, CacheKeyError> {
        let id = id.into();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(CacheKeyError::BadId);
        }
        Ok(Self { id, bytes: Zeroizing::new(bytes) })
    }

    /// A fresh random key, for a process-local cache that needs no persistence.
    pub fn random(id: impl Into<String>) -> Result<Self, CacheKeyError> {
        Self::new(id, rand::random::<[u8; 32]>())
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}, [redacted])", self.id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheKeyError {
    #[error("cache key ids must be 1-64 printable ASCII characters")]
    BadId,
    #[error("cache key id {0:?} is used twice")]
    DuplicateId(String),
}

/// The keyring: one active sealing key, older keys that still open existing entries. Retired
/// keys are simply left out; their entries become misses.
#[derive(Clone, Debug)]
pub struct CacheKeys {
    active: EncryptionKey,
    older: Vec<EncryptionKey>,
}

impl CacheKeys {
    pub fn new(active: EncryptionKey, older: Vec<EncryptionKey>) -> Result<Self, CacheKeyError> {
        let mut seen = vec![active.id.clone()];
        for k in &older {
            if seen.contains(&k.id) {
                return Err(CacheKeyError::DuplicateId(k.id.clone()));
            }
            seen.push(k.id.clone());
        }
        Ok(Self { active, older })
    }

    /// A single random key: right for the in-memory cache, whose entries die with the process.
    pub fn ephemeral() -> Self {
        let active = EncryptionKey::random("ephemeral").unwrap_or_else(|_| unreachable_key());
        Self { active, older: Vec::new() }
    }

    pub fn active_id(&self) -> &str {
        &self.active.id
    }

    /// A keyed digest naming `material` in a shared store, so store keys reveal no tenant or
    /// user. Keyed by the *oldest* key in the ring: adding a new active key in front (the
    /// first step of a rotation) keeps every name; retiring the oldest renames everything,
    /// which only turns its entries into misses (they were sealed by the retired key anyway).
    pub fn name_digest(&self, label: &str, material: &[u8]) -> [u8; 32] {
        use hmac::{KeyInit as _, Mac as _};
        use sha2::{Digest as _, Sha256};
        let naming = self.older.last().unwrap_or(&self.active);
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&*naming.bytes) else {
            // HMAC takes keys of any length; this arm cannot run.
            return Sha256::digest(material).into();
        };
        mac.update(b"m365-connector/store-name/v1\0");
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(material);
        mac.finalize().into_bytes().into()
    }

    fn find(&self, id: &[u8]) -> Option<&EncryptionKey> {
        std::iter::once(&self.active).chain(&self.older).find(|k| k.id.as_bytes() == id)
    }

    /// Seals `plaintext` with the active key, bound to `key`.
    pub fn seal(&self, key: &TokenCacheKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = Aes256Gcm::new((&*self.active.bytes).into());
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = key.canonical();
        let sealed = cipher
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| SealError)?;
        let id = self.active.id.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        out.push(ENVELOPE_VERSION);
        out.push(id.len() as u8); // ids are at most 64 bytes
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope sealed for `key` by any key still in the ring. Any failure (unknown
    /// version or key, truncation, tampering, another cache key) is the same opaque error.
    pub fn open(
        &self,
        key: &TokenCacheKey,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&version, rest) = envelope.split_first().ok_or(SealError)?;
        if version != ENVELOPE_VERSION {
            return Err(SealError);
        }
        let (&id_len, rest) = rest.split_first().ok_or(SealError)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN {
            return Err(SealError);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let k = self.find(id).ok_or(SealError)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
        let cipher = Aes256Gcm::new((&*k.bytes).into());
        let aad = key.canonical();
        cipher
            .decrypt(&nonce.into(), Payload { msg: sealed, aad: aad.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }
}

fn unreachable_key() -> EncryptionKey {
    // "ephemeral" is a valid id, so EncryptionKey::random cannot fail; this keeps the
    // constructor total without a panic path.
    EncryptionKey { id: "ephemeral".into(), bytes: Zeroizing::new(rand::random()) }
}

/// The envelope could not be sealed or opened. Deliberately carries no detail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("token cache entry could not be sealed or opened")]
pub struct SealError;

/// A cache entry's identity: tenant, user, the sign-in (hash of the inbound assertion) and
/// the requested scope set. Typed, so no crafted string can collide with another user's key
/// (`security.md` D5). The assertion hash keeps a Graph token obtained under one sign-in's
/// Conditional Access evaluation from serving another sign-in of the same user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenCacheKey {
    pub tenant: TenantId,
    pub user: ObjectId,
    pub assertion: AssertionHash,
    pub scopes: ScopeSet,
}

impl TokenCacheKey {
    /// The key of `caller`'s own sign-in for `scopes`.
    pub fn for_caller(caller: &Caller, scopes: ScopeSet) -> Self {
        Self {
            tenant: caller.tenant_id,
            user: caller.object_id,
            assertion: AssertionHash::of(&caller.assertion),
            scopes,
        }
    }

    /// The canonical byte form: AEAD associated data and the key for external stores.
    /// GUIDs and the hex digest have fixed widths and the scope list is JSON, so the form is
    /// unambiguous.
    pub fn canonical(&self) -> String {
        use std::fmt::Write;
        let scopes: Vec<&str> = self.scopes.iter().collect();
        let scopes = serde_json::to_string(&scopes).unwrap_or_default();
        let mut sign_in = String::with_capacity(64);
        for b in self.assertion.as_bytes() {
            let _ = write!(sign_in, "{b:02x}");
        }
        format!("obo/v2/{}/{}/{}/{}", self.tenant, self.user, sign_in, scopes)
    }
}

/// Storage of sealed token blobs. The in-memory [`MokaTokenCache`] is the default; a shared
/// store (Redis) for scaled-out deployments implements the same trait.
pub trait TokenCache: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>>;
    /// Stores `blob`; the store may drop it after `ttl` (freshness is judged by the provider).
    fn put<'a>(&'a self, key: &'a TokenCacheKey, blob: Vec<u8>, ttl: Duration)
    -> BoxFuture<'a, ()>;
    fn remove(&self, key: &TokenCacheKey);
    fn purge_tenant(&self, tenant: TenantId);
    /// Every stored blob exactly as held at rest (sealed), for tests that check no token is
    /// kept in plaintext (conformance T07). Stores that cannot enumerate return nothing.
    fn snapshot(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Claims the right to exchange for `key` across instances (an efficiency lock: two
    /// exchanges at once are harmless). Process-local stores have nothing to claim.
    fn claim_exchange<'a>(&'a self, _key: &'a TokenCacheKey) -> BoxFuture<'a, ExchangeClaim> {
        Box::pin(async { ExchangeClaim::Local })
    }
    /// Gives back a claim returned by [`TokenCache::claim_exchange`].
    fn release_exchange<'a>(
        &'a self,
        _key: &'a TokenCacheKey,
        _claim: ExchangeClaim,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Tells the other instances that Entra refused the union exchange of `union_key`'s user
    /// for consent (`refusal`: a short code the provider reads back), for `ttl`.
    /// Process-local stores have no one to tell: the provider keeps its own memory.
    fn share_union_refusal<'a>(
        &'a self,
        _union_key: &'a TokenCacheKey,
        _refusal: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// A union refusal another instance shared for `union_key`'s user: its code and how long
    /// it still holds. Asked before a union exchange this instance has no memory of; a store
    /// holding the union token itself may answer `None` without asking anyone.
    fn shared_union_refusal<'a>(
        &'a self,
        _union_key: &'a TokenCacheKey,
    ) -> BoxFuture<'a, Option<(String, Duration)>> {
        Box::pin(async { None })
    }
}

/// The outcome of [`TokenCache::claim_exchange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeClaim {
    /// No shared lock (in-process store, or the shared store is unreachable): exchange.
    Local,
    /// This instance holds the shared lock under this random token: exchange, then release.
    Held(String),
    /// Another instance is exchanging: wait up to this long for its entry, then exchange.
    Busy(Duration),
}

/// The in-memory cache: bounded, with a per-entry time to live.
pub struct MokaTokenCache {
    inner: moka::future::Cache<TokenCacheKey, (Arc<Vec<u8>>, Duration)>,
}

struct EntryTtl;

impl moka::Expiry<TokenCacheKey, (Arc<Vec<u8>>, Duration)> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &TokenCacheKey,
        value: &(Arc<Vec<u8>>, Duration),
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }

    fn expire_after_update(
        &self,
        _key: &TokenCacheKey,
        value: &(Arc<Vec<u8>>, Duration),
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

impl MokaTokenCache {
    pub fn new(max_entries: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(EntryTtl)
            .support_invalidation_closures()
            .build();
        Self { inner }
    }
}

impl Default for MokaTokenCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl TokenCache for MokaTokenCache {
    fn get<'a>(&'a self, key: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { self.inner.get(key).await.map(|(blob, _)| blob.as_ref().clone()) })
    }

    fn put<'a>(
        &'a self,
        key: &'a TokenCacheKey,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.inner.insert(key.clone(), (Arc::new(blob), ttl)).await })
    }

    fn remove(&self, key: &TokenCacheKey) {
        let key = key.clone();
        // A predicate keeps `remove` synchronous; `contains_key` and `get` honour it at once.
        let _ = self.inner.invalidate_entries_if(move |k, _| *k == key);
    }

    fn purge_tenant(&self, tenant: TenantId) {
        let _ = self.inner.invalidate_entries_if(move |k, _| k.tenant == tenant);
    }

    fn snapshot(&self) -> Vec<Vec<u8>> {
        self.inner.iter().map(|(_, (blob, _))| blob.as_ref().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: u128, u: u128, scopes: &str) -> TokenCacheKey {
        TokenCacheKey {
            tenant: TenantId::from(uuid::Uuid::from_u128(t)),
            user: ObjectId::from(uuid::Uuid::from_u128(u)),
            assertion: AssertionHash::from_bytes([7; 32]),
            scopes: ScopeSet::from_scp(scopes),
        }
    }

    fn ring(active: &str, older: &[&str]) -> (CacheKeys, Vec<EncryptionKey>) {
        let a = EncryptionKey::new(active, [active.len() as u8; 32]).expect("key");
        let o: Vec<_> = older
            .iter()
            .map(|id| EncryptionKey::new(*id, [id.len() as u8 + 100; 32]).expect("key"))
            .collect();
        (CacheKeys::new(a, o.clone()).expect("ring"), o)
    }

    #[test]
    fn sealed_blobs_do_not_contain_the_plaintext_and_open_again() {
        let (keys, _) = ring("k1", &[]);
        let k = key(1, 2, "Mail.Read");
        let token = b"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-token-bytes";
        let blob = keys.seal(&k, token).expect("seal");
        assert!(!blob.windows(16).any(|w| token.windows(16).any(|t| t == w)));
        assert_eq!(&*keys.open(&k, &blob).expect("open"), token);
    }

    #[test]
    fn a_blob_moved_to_another_cache_key_does_not_open() {
        let (keys, _) = ring("k1", &[]);
        let blob = keys.seal(&key(1, 2, "Mail.Read"), b"token").expect("seal");
        assert_eq!(keys.open(&key(1, 3, "Mail.Read"), &blob), Err(SealError));
        assert_eq!(keys.open(&key(4, 2, "Mail.Read"), &blob), Err(SealError));
        let other_sign_in = TokenCacheKey {
            assertion: AssertionHash::from_bytes([8; 32]),
            ..key(1, 2, "Mail.Read")
        };
        assert_eq!(keys.open(&other_sign_in, &blob), Err(SealError));
        assert_eq!(keys.open(&key(1, 2, "Mail.Read User.Read"), &blob), Err(SealError));
    }

    #[test]
    fn the_wrong_key_truncation_and_bit_flips_fail_without_panicking() {
        let (keys, _) = ring("k1", &[]);
        let k = key(1, 2, "Mail.Read");
        let blob = keys.seal(&k, b"token").expect("seal");
        let (other, _) = ring("k1", &[]);
        let other = CacheKeys::new(EncryptionKey::new("k1", [9; 32]).expect("key"), vec![])
            .unwrap_or(other);
        assert_eq!(other.open(&k, &blob), Err(SealError));
        for n in 0..blob.len() {
            assert_eq!(keys.open(&k, &blob[..n]), Err(SealError));
            let mut flipped = blob.clone();
            flipped[n] ^= 1;
            assert_eq!(keys.open(&k, &flipped), Err(SealError));
        }
    }

    #[test]
    fn rotation_opens_old_entries_and_seals_with_the_active_key() {
        let (old_ring, _) = ring("k1", &[]);
        let k = key(1, 2, "Mail.Read");
        let old_blob = old_ring.seal(&k, b"old token").expect("seal");
        let new_ring = CacheKeys::new(
            EncryptionKey::new("k22", [3; 32]).expect("key"),
            vec![EncryptionKey::new("k1", [2; 32]).expect("key")],
        )
        .expect("ring");
        assert_eq!(&*new_ring.open(&k, &old_blob).expect("old key opens"), b"old token");
        let new_blob = new_ring.seal(&k, b"new token").expect("seal");
        assert_eq!(&new_blob[2..5], b"k22");
        // Once k1 is retired its entries are misses.
        let retired =
            CacheKeys::new(EncryptionKey::new("k22", [3; 32]).expect("key"), vec![]).expect("ring");
        assert_eq!(retired.open(&k, &old_blob), Err(SealError));
        assert!(retired.open(&k, &new_blob).is_ok());
    }

    #[test]
    fn key_rings_refuse_bad_and_duplicate_ids() {
        assert_eq!(EncryptionKey::new("", [0; 32]).err(), Some(CacheKeyError::BadId));
        assert_eq!(EncryptionKey::new("a b", [0; 32]).err(), Some(CacheKeyError::BadId));
        let a = EncryptionKey::new("a", [0; 32]).expect("key");
        assert_eq!(
            CacheKeys::new(a.clone(), vec![a]).err(),
            Some(CacheKeyError::DuplicateId("a".into()))
        );
        assert!(
            format!("{:?}", CacheKeys::ephemeral())
                .contains("EncryptionKey(ephemeral, [redacted])")
        );
    }

    #[test]
    fn cache_keys_separate_tenants_users_and_scope_sets() {
        let a = key(1, 2, "Mail.Read");
        assert_ne!(a.canonical(), key(2, 2, "Mail.Read").canonical());
        assert_ne!(a.canonical(), key(1, 1, "Mail.Read").canonical());
        assert_ne!(a.canonical(), key(1, 2, "Mail.Read Files.Read").canonical());
        assert_eq!(a.canonical(), key(1, 2, " Mail.Read ").canonical());
        // Scopes with separators cannot forge another key's form.
        let crafted = TokenCacheKey { scopes: ScopeSet::from_iter(["a\",\"b"]), ..key(1, 2, "") };
        assert_ne!(crafted.canonical(), key(1, 2, "a b").canonical());
    }

    #[test]
    fn envelopes_open_with_key_ids_of_every_allowed_length() {
        let k = key(1, 2, "Mail.Read");
        for id in ["a".to_owned(), "k".repeat(64)] {
            let keys =
                CacheKeys::new(EncryptionKey::new(id.clone(), [5; 32]).expect("key"), vec![])
                    .expect("ring");
            assert_eq!(keys.active_id(), id);
            let blob = keys.seal(&k, b"t").expect("seal");
            assert_eq!(&*keys.open(&k, &blob).expect("opens"), b"t");
            for n in 0..blob.len() {
                assert_eq!(keys.open(&k, &blob[..n]), Err(SealError), "{} bytes", n);
            }
        }
        assert_eq!(EncryptionKey::new("k".repeat(65), [0; 32]).err(), Some(CacheKeyError::BadId));
        assert_eq!(EncryptionKey::random("k7").expect("key").id(), "k7");
    }

    #[test]
    fn store_names_are_keyed_stable_across_a_new_active_key_and_distinct_per_input() {
        let (one, _) = ring("k1", &[]);
        let a = one.name_digest("obo", b"material");
        assert_ne!(a, one.name_digest("obo", b"other"));
        assert_ne!(a, one.name_digest("cursor", b"material"));
        // Another key names the same material differently: names reveal nothing unkeyed.
        let (other, _) = ring("k99", &[]);
        assert_ne!(a, other.name_digest("obo", b"material"));
        // A new active key in front of k1 keeps k1's names.
        let rotated = CacheKeys::new(
            EncryptionKey::new("k2", [42; 32]).expect("key"),
            vec![EncryptionKey::new("k1", [2; 32]).expect("key")],
        )
        .expect("ring");
        assert_eq!(rotated.name_digest("obo", b"material"), a);
    }

    /// A store that keeps nothing and uses every default of the trait.
    struct Forgetful;

    impl TokenCache for Forgetful {
        fn get<'a>(&'a self, _: &'a TokenCacheKey) -> BoxFuture<'a, Option<Vec<u8>>> {
            Box::pin(async { None })
        }
        fn put<'a>(&'a self, _: &'a TokenCacheKey, _: Vec<u8>, _: Duration) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
        fn remove(&self, _: &TokenCacheKey) {}
        fn purge_tenant(&self, _: TenantId) {}
    }

    #[tokio::test]
    async fn a_store_without_enumeration_or_shared_locks_claims_locally_and_shows_nothing() {
        let k = key(1, 2, "Mail.Read");
        assert!(Forgetful.snapshot().is_empty());
        assert_eq!(Forgetful.claim_exchange(&k).await, ExchangeClaim::Local);
        Forgetful.release_exchange(&k, ExchangeClaim::Local).await;
    }

    #[tokio::test]
    async fn moka_entries_live_for_the_ttl_of_their_latest_put() {
        let cache = MokaTokenCache::new(100);
        let (a, b) = (key(1, 2, "Mail.Read"), key(1, 3, "Mail.Read"));
        cache.put(&a, vec![1], Duration::from_millis(150)).await;
        cache.put(&b, vec![2], Duration::from_secs(60)).await;
        let mut held = cache.snapshot();
        held.sort();
        assert_eq!(held, vec![vec![1], vec![2]]);
        // A second put renews the entry with its own TTL.
        cache.put(&b, vec![3], Duration::from_millis(150)).await;
        assert_eq!(cache.get(&b).await, Some(vec![3]));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(cache.get(&a).await, None);
        assert_eq!(cache.get(&b).await, None);
        // And a long TTL after a short one keeps it.
        cache.put(&a, vec![4], Duration::from_millis(150)).await;
        cache.put(&a, vec![5], Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(cache.get(&a).await, Some(vec![5]));
    }

    #[tokio::test]
    async fn the_moka_cache_removes_single_entries_and_whole_tenants() {
        let cache = MokaTokenCache::new(100);
        let (a, b, c) = (key(1, 2, "Mail.Read"), key(1, 3, "Mail.Read"), key(2, 2, "Mail.Read"));
        for k in [&a, &b, &c] {
            cache.put(k, vec![1, 2, 3], Duration::from_secs(60)).await;
        }
        assert_eq!(cache.get(&a).await, Some(vec![1, 2, 3]));
        cache.remove(&a);
        assert_eq!(cache.get(&a).await, None);
        assert!(cache.get(&b).await.is_some());
        cache.purge_tenant(a.tenant);
        assert_eq!(cache.get(&b).await, None);
        assert!(cache.get(&c).await.is_some());
    }
}
