//! Newtypes for identifiers and claims that arrive from outside, parsed once at the edge.
//!
//! Identity is always the pair ([`TenantId`], [`ObjectId`]); names, UPNs and mail addresses are
//! display data and never keys. [`uri`]: the `m365://` URIs and the web links that name one item.

pub mod uri;

use std::{collections::BTreeSet, fmt};

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// The consumer tenant of personal Microsoft accounts; the connector refuses it.
pub const CONSUMER_TENANT_ID: Uuid = uuid::uuid!("9188040d-6c67-4c5b-b112-36a304b66dad");

/// An Entra tenant id (`tid`): always a GUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Parses a tenant id; only the hyphenated GUID form Entra puts in `tid` is accepted.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        parse_guid(s).map(Self).ok_or(IdError::NotAGuid("tenant id"))
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
    pub fn is_consumer(&self) -> bool {
        self.0 == CONSUMER_TENANT_ID
    }
}

impl From<Uuid> for TenantId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A user's object id (`oid`) within one tenant: always a GUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectId(Uuid);

impl ObjectId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        parse_guid(s).map(Self).ok_or(IdError::NotAGuid("object id"))
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for ObjectId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Accepts exactly the 36-character hyphenated form (any case); braces, URNs and the
/// 32-digit simple form are refused so one GUID has one spelling in keys and logs.
fn parse_guid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{0} is not a GUID")]
    NotAGuid(&'static str),
}

/// A set of delegated scopes, e.g. the `scp` claim or the scopes an OBO response granted.
/// Kept sorted so that equal sets compare, hash and print equally (cache keys depend on it).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-separated `scp` value. Graph scope names are case-insensitive, so they
    /// are compared as Entra prints them but matched case-insensitively by [`Self::contains`].
    pub fn from_scp(scp: &str) -> Self {
        Self(scp.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.eq_ignore_ascii_case(scope))
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The space-separated form used in `scope` request parameters.
    pub fn to_scope_param(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

impl<S: Into<String>> FromIterator<S> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = S>>(scopes: I) -> Self {
        Self(scopes.into_iter().map(Into::into).collect())
    }
}

/// The inbound bearer token. Needed only as the On-Behalf-Of assertion; `Debug` is redacted
/// and the value is zeroized on drop. Never log it, never send it anywhere but Entra's token
/// endpoint.
#[derive(Clone)]
pub struct UserAssertion(SecretString);

impl UserAssertion {
    pub fn new(token: String) -> Self {
        Self(SecretString::from(token))
    }
    /// # Security
    /// Leaking this value lets anyone act as the user against the connector.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// SHA-256 of an inbound assertion: binds a cached Graph token to the sign-in it was obtained
/// with (MSAL keys its OBO cache the same way). Entra evaluates Conditional Access at the OBO
/// step, so a token earned by one sign-in (office network, MFA, compliant device) must never
/// serve another sign-in of the same user. The digest is not reversible, so it may appear in
/// cache keys and associated data; it is never logged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssertionHash([u8; 32]);

impl AssertionHash {
    pub fn of(assertion: &UserAssertion) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(assertion.expose().as_bytes()).into())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AssertionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionHash(..)")
    }
}

impl fmt::Debug for UserAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserAssertion([redacted])")
    }
}

/// The validated caller, inserted into request extensions by the auth middleware and read by
/// tool handlers. Built only by `auth` after every check has passed.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub object_id: ObjectId,
    /// The MCP client the token was issued to (`azp`).
    pub client_id: Uuid,
    /// The delegated scopes of the inbound token (`scp`).
    pub scopes: ScopeSet,
    /// The token's unique id (`uti`), for correlating audit records with Entra sign-in logs.
    pub token_id: Option<String>,
    /// Display only: never a key or an authorization input.
    pub display_name: Option<String>,
    pub assertion: UserAssertion,
}

// Ids serialize as their hyphenated GUID text (audit records, tool results).
impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_accept_only_the_hyphenated_guid_form() {
        assert!(TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
        assert!(TenantId::parse("72f988bf86f141af91ab2d7cd011db47").is_err());
        assert!(TenantId::parse("{72f988bf-86f1-41af-91ab-2d7cd011db47}").is_err());
        assert!(TenantId::parse("common").is_err());
    }

    #[test]
    fn scope_sets_are_order_insensitive_and_match_case_insensitively() {
        let a = ScopeSet::from_scp("Mail.Read  User.Read");
        let b = ScopeSet::from_scp("User.Read Mail.Read");
        assert_eq!(a, b);
        assert!(a.contains("mail.read"));
        assert_eq!(a.to_scope_param(), "Mail.Read User.Read");
    }

    #[test]
    fn the_user_assertion_is_redacted_in_debug() {
        let assertion = UserAssertion::new("eyJhbGciOi.secret.token".into());
        assert_eq!(format!("{assertion:?}"), "UserAssertion([redacted])");
    }
}
