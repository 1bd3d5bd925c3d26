//! Security trimming: what a user may see (graph.md §8.1). Applied on every GET and on search
//! results **before** paging, so a hidden item never shows in `total` or `moreResultsAvailable`.
//!
//! Drive items follow the fixture model: an item's effective grants are its own `shared_with`
//! plus those inherited from its ancestors, up to and including the first ancestor (or itself)
//! whose inheritance is broken. The OneDrive owner sees everything in their drive; site members
//! see everything in the site's libraries (model rule). Grants name a user, a group (matched
//! against the user's groups) or the whole tenant.

use fixtures::{Drive, DriveItem, DriveType, Grantee, Site, Tenant};
use uuid::Uuid;

use crate::store::{DriveIndex, TenantIndex};

/// The identity trimming is computed for.
pub struct Viewer<'a> {
    pub oid: Uuid,
    pub groups: &'a [Uuid],
}

impl Viewer<'_> {
    pub fn matches(&self, g: &Grantee) -> bool {
        match g {
            Grantee::User(u) => *u == self.oid,
            Grantee::Group(gid) => self.groups.contains(gid),
            Grantee::Tenant => true,
        }
    }
}

/// Whether the viewer is a member of the site.
pub fn can_see_site(v: &Viewer<'_>, site: &Site) -> bool {
    site.members.iter().any(|g| v.matches(g))
}

/// The site owning a library drive.
pub fn site_of<'a>(tenant: &'a Tenant, idx: &TenantIndex, drive: &Drive) -> Option<&'a Site> {
    let sid = drive.site_id.as_ref()?;
    idx.sites.get(sid).map(|p| &tenant.content.sites[*p])
}

/// Whether the viewer may see the drive itself (its metadata and root).
pub fn can_see_drive(v: &Viewer<'_>, tenant: &Tenant, idx: &TenantIndex, drive: &Drive) -> bool {
    match drive.drive_type {
        DriveType::Business => drive.owner == Some(v.oid),
        DriveType::DocumentLibrary => {
            site_of(tenant, idx, drive).is_some_and(|s| can_see_site(v, s))
        }
    }
}

/// Whether the viewer may see this item.
pub fn can_see_item(
    v: &Viewer<'_>,
    tenant: &Tenant,
    idx: &TenantIndex,
    drive: &Drive,
    di: &DriveIndex,
    item: &DriveItem,
) -> bool {
    if can_see_drive(v, tenant, idx, drive) {
        return true;
    }
    let mut current = Some(item);
    let mut hops = 0;
    while let Some(it) = current {
        if it.shared_with.iter().any(|g| v.matches(g)) {
            return true;
        }
        if it.inheritance_broken {
            return false;
        }
        hops += 1;
        if hops > 256 {
            return false;
        }
        current = it.parent_id.as_ref().and_then(|p| di.items.get(p)).map(|pos| &drive.items[*pos]);
    }
    false
}
