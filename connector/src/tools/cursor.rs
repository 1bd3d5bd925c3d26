//! Paging cursors: opaque to clients, authenticated, bound to the caller and the query.
//!
//! # Design
//! A cursor is `base64url(payload) "." base64url(tag)` where the payload is
//! `{"v":1,"exp":<unix seconds>,"s":<tool state>}` and the tag is HMAC-SHA256 under the
//! connector's cursor key over a domain-separation label, the [`CursorBinding`] (tenant id,
//! user object id, tool name, SHA-256 of the canonical query) and the payload bytes.
//!
//! * The binding is **not** in the payload: it is recomputed from the presenting caller and
//!   their arguments, so a cursor presented by another user, another tenant, another tool or
//!   with a changed query fails the tag check (conformance I04) and is refused with
//!   `invalid_params` — the same answer as a forged or truncated one, so it is no oracle.
//! * Expiry comes from the connector [`Clock`], so tests move time instead of sleeping.
//! * The tag is compared in constant time (`Mac::verify_slice`).
//! * The state is whatever the tool needs to continue (a search `from` offset, a Graph
//!   `@odata.nextLink`); it is authenticated, not encrypted: it only ever describes the
//!   caller's own query. Tools must still validate what they read back (a nextLink is only
//!   followed below the Graph base by the client).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use rmcp::ErrorData as McpError;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    domain::{Caller, ObjectId, TenantId},
};

type HmacSha256 = hmac::Hmac<Sha256>;

/// Default lifetime of a cursor.
pub const DEFAULT_TTL: chrono::Duration = chrono::Duration::hours(1);
/// Cursors longer than this are refused unread.
pub const MAX_CURSOR_LEN: usize = 8 * 1024;
const LABEL: &[u8] = b"m365-connector cursor v1\0";

/// The key that seals cursors, with the clock that dates them.
#[derive(Clone)]
pub struct CursorKey {
    key: [u8; 32],
    clock: Clock,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

impl CursorKey {
    /// A key from 32 bytes of secret material (`tools.cursor_key`, or random at start).
    pub fn new(key: [u8; 32], clock: Clock) -> Self {
        Self { key, clock, ttl: DEFAULT_TTL }
    }

    /// A fresh random key (cursors then die with the process, which is acceptable).
    pub fn random(clock: Clock) -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Self::new(key, clock)
    }

    pub fn with_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn mac(&self, binding: &CursorBinding, payload: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(LABEL);
        mac.update(binding.tenant.as_uuid().as_bytes());
        mac.update(binding.user.as_uuid().as_bytes());
        mac.update(&(binding.tool.len() as u32).to_be_bytes());
        mac.update(binding.tool.as_bytes());
        mac.update(&binding.query_hash);
        mac.update(payload);
        mac
    }
}

/// The cursor key tools use: the one in the [`ToolContext`](crate::tools::ToolContext).
pub fn context_key(ctx: &crate::tools::ToolContext) -> CursorKey {
    ctx.cursor.clone()
}

/// Who may use a cursor and for what: recomputed on every call from the caller and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorBinding {
    pub tenant: TenantId,
    pub user: ObjectId,
    pub tool: &'static str,
    pub query_hash: [u8; 32],
}

impl CursorBinding {
    /// Binds to `caller`, `tool` and `query`: the tool's arguments **without** the cursor
    /// (and without the page size, if the tool lets it change between pages), serialised as
    /// JSON. Field order is the struct's, so the hash is stable.
    pub fn new(caller: &Caller, tool: &'static str, query: &impl Serialize) -> Self {
        let canonical = serde_json::to_vec(query).unwrap_or_default();
        Self {
            tenant: caller.tenant_id,
            user: caller.object_id,
            tool,
            query_hash: Sha256::digest(&canonical).into(),
        }
    }
}

/// Why a cursor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this connector issued (garbled or truncated).
    #[error("the cursor is malformed")]
    Malformed,
    /// The tag does not match: forged, or issued to another user, tenant, tool or query.
    #[error("the cursor was not issued for this user and query")]
    NotYours,
    /// Past its expiry.
    #[error("the cursor has expired; run the search again")]
    Expired,
}

impl CursorError {
    /// The protocol error for a bad `cursor` argument.
    pub fn to_mcp(self) -> McpError {
        McpError::invalid_params(
            format!("invalid `cursor`: {self}"),
            Some(json!({"field": "cursor", "reason": format!("{self:?}")})),
        )
    }
}

/// Sealing and opening cursors.
pub struct Cursor;

impl Cursor {
    /// Seals `state` for `binding`; the cursor expires after the key's TTL.
    pub fn seal(key: &CursorKey, binding: &CursorBinding, state: Value) -> String {
        let exp = (key.clock.now() + key.ttl).timestamp();
        let payload =
            serde_json::to_vec(&json!({"v": 1, "exp": exp, "s": state})).unwrap_or_default();
        let tag = key.mac(binding, &payload).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the tag for `binding` and the expiry, and returns the state.
    pub fn open(
        key: &CursorKey,
        binding: &CursorBinding,
        cursor: &str,
    ) -> Result<Value, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CursorError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError::Malformed)?;
        key.mac(binding, &payload).verify_slice(&tag).map_err(|_| CursorError::NotYours)?;
        let value: Value = serde_json::from_slice(&payload).map_err(|_| CursorError::Malformed)?;
        if value.get("v").and_then(Value::as_u64) != Some(1) {
            return Err(CursorError::Malformed);
        }
        let exp = value.get("exp").and_then(Value::as_i64).ok_or(CursorError::Malformed)?;
        if key.clock.now().timestamp() >= exp {
            return Err(CursorError::Expired);
        }
        Ok(value.get("s").cloned().unwrap_or(Value::Null))
    }

    /// Opens an optional cursor argument, mapping failures to `invalid_params`.
    pub fn open_arg(
        key: &CursorKey,
        binding: &CursorBinding,
        cursor: Option<&str>,
    ) -> Result<Option<Value>, McpError> {
        cursor
            .filter(|c| !c.is_empty())
            .map(|c| Self::open(key, binding, c).map_err(CursorError::to_mcp))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    };

    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn binding(tenant: u128, user: u128, tool: &'static str, q: &str) -> CursorBinding {
        CursorBinding {
            tenant: TenantId::from(Uuid::from_u128(tenant)),
            user: ObjectId::from(Uuid::from_u128(user)),
            tool,
            query_hash: Sha256::digest(q.as_bytes()).into(),
        }
    }

    fn test_key() -> (CursorKey, Arc<AtomicI64>) {
        let offset = Arc::new(AtomicI64::new(0));
        let o = offset.clone();
        let clock = Clock::from_fn(move || {
            chrono::DateTime::from_timestamp(1_780_000_000 + o.load(Ordering::SeqCst), 0)
                .expect("valid time")
        });
        (CursorKey::new([9; 32], clock), offset)
    }

    #[test]
    fn cursors_up_to_the_length_cap_open_and_longer_ones_are_refused_unread() {
        let (key, _) = test_key();
        let b = binding(1, 2, "sharepoint_search", "q");
        // A legitimately large state (a long KQL continuation) stays well under 8 KiB.
        let state = json!({"from": 40, "terms": "x".repeat(3_000)});
        let big = Cursor::seal(&key, &b, state.clone());
        assert!(big.len() > 4_000 && big.len() <= MAX_CURSOR_LEN, "{}", big.len());
        assert_eq!(Cursor::open(&key, &b, &big), Ok(state));
        let too_long = format!("{big}{}", "A".repeat(MAX_CURSOR_LEN));
        assert_eq!(Cursor::open(&key, &b, &too_long), Err(CursorError::Malformed));
        // The cap itself is allowed: a genuine cursor of exactly MAX_CURSOR_LEN bytes opens.
        let exact = (5_000..6_200)
            .map(|n| {
                let state = json!({"terms": "y".repeat(n)});
                (Cursor::seal(&key, &b, state.clone()), state)
            })
            .find(|(c, _)| c.len() == MAX_CURSOR_LEN)
            .expect("some padding lands exactly on the cap");
        assert_eq!(Cursor::open(&key, &b, &exact.0), Ok(exact.1));
    }

    #[test]
    fn the_cursor_argument_is_optional_and_a_bad_one_is_invalid_params_naming_it() {
        let (key, _) = test_key();
        let b = binding(1, 2, "sharepoint_search", "q");
        assert_eq!(Cursor::open_arg(&key, &b, None), Ok(None));
        assert_eq!(Cursor::open_arg(&key, &b, Some("")), Ok(None));
        let cursor = Cursor::seal(&key, &b, json!({"from": 25}));
        assert_eq!(Cursor::open_arg(&key, &b, Some(&cursor)), Ok(Some(json!({"from": 25}))));
        let other_user = binding(1, 3, "sharepoint_search", "q");
        let refused = Cursor::open_arg(&key, &other_user, Some(&cursor)).expect_err("not theirs");
        assert_eq!(refused.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(refused.message.contains("`cursor`"), "{}", refused.message);
        assert_eq!(refused.data, Some(json!({"field": "cursor", "reason": "NotYours"})));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let (key, _) = test_key();
        assert_eq!(format!("{key:?}"), "CursorKey([redacted])");
    }

    #[test]
    fn a_cursor_opens_only_for_its_binding_and_before_expiry() {
        let (key, offset) = test_key();
        let b = binding(1, 2, "sharepoint_search", "q");
        let c = Cursor::seal(&key, &b, json!({"from": 25}));
        assert_eq!(Cursor::open(&key, &b, &c), Ok(json!({"from": 25})));
        for other in [
            binding(9, 2, "sharepoint_search", "q"),
            binding(1, 9, "sharepoint_search", "q"),
            binding(1, 2, "outlook_email_search", "q"),
            binding(1, 2, "sharepoint_search", "q2"),
        ] {
            assert_eq!(Cursor::open(&key, &other, &c), Err(CursorError::NotYours));
        }
        let other_key = CursorKey::new([8; 32], key.clock.clone());
        assert_eq!(Cursor::open(&other_key, &b, &c), Err(CursorError::NotYours));
        offset.store(3600, Ordering::SeqCst);
        assert_eq!(Cursor::open(&key, &b, &c), Err(CursorError::Expired));
        assert_eq!(Cursor::open(&key, &b, "garbage"), Err(CursorError::Malformed));
        assert_eq!(Cursor::open(&key, &b, &"A.".repeat(5000)), Err(CursorError::Malformed));
    }

    proptest! {
        /// Flipping any bit of the cursor text, or cutting it anywhere, never opens it.
        #[test]
        fn tampering_fails(pos in any::<prop::sample::Index>(), bit in 0u8..7, cut in any::<prop::sample::Index>(), from in 0u64..10_000) {
            let (key, _) = test_key();
            let b = binding(1, 2, "t", "q");
            let c = Cursor::seal(&key, &b, json!({"from": from}));
            let mut bytes = c.clone().into_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(tampered) = String::from_utf8(bytes) && tampered != c {
                prop_assert!(Cursor::open(&key, &b, &tampered).is_err());
            }
            let cut = cut.index(c.len());
            prop_assert!(Cursor::open(&key, &b, &c[..cut]).is_err());
        }
    }
}
