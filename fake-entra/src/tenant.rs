//! Tenant resolution: what the `{tenant}` path segment names (a GUID, a verified domain,
//! `common`, `organizations` or `consumers`), who may sign in through it, and the segment and
//! issuer that endpoint URLs and metadata use for it (reference/entra.md §1, §2.2).

use fixtures::{CONSUMER_TENANT_ID, TenantKind};
use uuid::Uuid;

use crate::{
    error::{self, AadError},
    state::{Directory, Shared, TenantDir},
};

/// The `{tenant}` path segment, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantRef {
    Common,
    Organizations,
    Consumers,
    Tenant(Uuid),
}

impl TenantRef {
    pub fn id(self) -> Option<Uuid> {
        match self {
            TenantRef::Tenant(t) => Some(t),
            TenantRef::Consumers => Some(CONSUMER_TENANT_ID),
            _ => None,
        }
    }

    /// May a user of `tenant` sign in through this path?
    pub fn admits(self, tenant: &TenantDir) -> bool {
        match self {
            TenantRef::Common => true,
            TenantRef::Organizations => tenant.kind == TenantKind::Organization,
            TenantRef::Consumers => tenant.kind == TenantKind::Consumer,
            TenantRef::Tenant(t) => t == tenant.id,
        }
    }
}

pub(crate) fn resolve_tenant(dir: &Directory, seg: &str) -> Result<TenantRef, AadError> {
    match seg.to_ascii_lowercase().as_str() {
        "common" => Ok(TenantRef::Common),
        "organizations" => Ok(TenantRef::Organizations),
        "consumers" => Ok(TenantRef::Consumers),
        _ => {
            // Entra accepts GUIDs and verified domains, not the fixtures' short names.
            let t = match Uuid::parse_str(seg) {
                Ok(id) => dir.tenant_by_id(id),
                Err(_) => dir
                    .tenants
                    .iter()
                    .find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(seg))),
            };
            t.map(|t| TenantRef::Tenant(t.id)).ok_or_else(|| error::tenant_not_found(seg))
        }
    }
}

/// The path segment used in endpoint URLs and the issuer for a resolved tenant.
pub(crate) fn seg_and_issuer(s: &Shared, t: TenantRef) -> (String, String) {
    match t {
        TenantRef::Common => ("common".into(), format!("{}/{{tenantid}}/v2.0", s.base)),
        TenantRef::Organizations => {
            ("organizations".into(), format!("{}/{{tenantid}}/v2.0", s.base))
        }
        TenantRef::Consumers => ("consumers".into(), s.issuer_v2(CONSUMER_TENANT_ID)),
        TenantRef::Tenant(tid) => (tid.to_string(), s.issuer_v2(tid)),
    }
}
