//! Settings of the On-Behalf-Of exchange and how the connector authenticates to Entra.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use super::CacheKeys;
use crate::domain::TenantId;

/// How the connector authenticates to Entra as a confidential client.
#[derive(Clone, Debug)]
pub enum ClientCredential {
    Secret(SecretString),
    /// `private_key_jwt`: an RS256 client assertion whose header carries the certificate's
    /// `x5t` (base64url SHA-1 thumbprint).
    Certificate {
        private_key_pem: SecretString,
        x5t: String,
    },
}

/// Settings of the On-Behalf-Of exchange; the config module builds them.
#[derive(Clone, Debug)]
pub struct OboSettings {
    /// e.g. `https://login.microsoftonline.com`; the token endpoint is
    /// `{authority}/{tid}/oauth2/v2.0/token`.
    pub authority: Url,
    pub client_id: Uuid,
    pub credential: ClientCredential,
    /// Maximum age of a cached token: bounds how long a revocation at Entra goes unseen.
    /// `Duration::ZERO` exchanges on every call.
    pub max_reuse: Duration,
    /// A cached token is renewed this long before it expires.
    pub renew_before: Duration,
    pub cache_keys: CacheKeys,
}

impl OboSettings {
    /// Settings with the default 5-minute reuse age and renewal margin and an ephemeral key.
    pub fn new(authority: Url, client_id: Uuid, credential: ClientCredential) -> Self {
        Self {
            authority,
            client_id,
            credential,
            max_reuse: Duration::from_secs(300),
            renew_before: Duration::from_secs(300),
            cache_keys: CacheKeys::ephemeral(),
        }
    }

    fn base(&self) -> &str {
        self.authority.as_str().trim_end_matches('/')
    }

    /// The tenant's token endpoint (never `common`).
    pub fn token_endpoint(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base())
    }

    /// Where a tenant administrator grants consent to the connector.
    pub fn admin_consent_url(&self, tenant: TenantId) -> String {
        format!("{}/{tenant}/adminconsent?client_id={}", self.base(), self.client_id)
    }
}
