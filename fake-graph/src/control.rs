//! The test-control API under `/_fake/…`, mirroring [`crate::FakeGraph`]'s methods, and the
//! content edits both share.
//!
//! | Method and path | Effect |
//! |---|---|
//! | `GET /_fake/journal` / `DELETE /_fake/journal` | the journal / clear it |
//! | `GET /_fake/journal/mutating` | refused writes |
//! | `GET /_fake/journal/retry-violations` | requests that ignored `Retry-After` |
//! | `GET /_fake/downloads` | pre-authenticated downloads served |
//! | `POST /_fake/faults` (a [`FaultRule`]) / `DELETE /_fake/faults` | script / clear faults |
//! | `POST /_fake/cae/revoke` `{"tenantId","userId"}` | a CAE event now |
//! | `POST /_fake/content/messages` `{"tenantId","owner","message"}` | add a message |
//! | `POST /_fake/content/messages/delete` `{"tenantId","owner","id"}` | delete a message |
//! | `POST /_fake/content/unshare` `{"tenantId","driveId","itemId","grantee"?}` | unshare an item |
//! | `POST /_fake/content/drive-items/delete` `{"tenantId","driveId","itemId"}` | delete an item |

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use fixtures::{Grantee, Mailbox, Message, World};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{Shared, faults::FaultRule};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/journal", get(journal).delete(clear_journal))
        .route("/journal/mutating", get(mutating))
        .route("/journal/retry-violations", get(violations))
        .route("/downloads", get(downloads))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/cae/revoke", post(revoke))
        .route("/content/messages", post(add_message_http))
        .route("/content/messages/delete", post(delete_message_http))
        .route("/content/unshare", post(unshare_http))
        .route("/content/drive-items/delete", post(delete_item_http))
}

async fn journal(State(s): State<Arc<Shared>>) -> Response {
    Json(s.journal.entries()).into_response()
}

async fn clear_journal(State(s): State<Arc<Shared>>) -> StatusCode {
    s.journal.clear();
    StatusCode::NO_CONTENT
}

async fn mutating(State(s): State<Arc<Shared>>) -> Response {
    Json(s.journal.mutating()).into_response()
}

async fn violations(State(s): State<Arc<Shared>>) -> Response {
    Json(s.journal.retry_violations()).into_response()
}

async fn downloads(State(s): State<Arc<Shared>>) -> Response {
    Json(s.downloads.lock().unwrap_or_else(|e| e.into_inner()).clone()).into_response()
}

async fn add_fault(State(s): State<Arc<Shared>>, Json(rule): Json<FaultRule>) -> StatusCode {
    s.faults.add(rule);
    StatusCode::CREATED
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revoke {
    tenant_id: Uuid,
    user_id: Uuid,
}

async fn revoke(State(s): State<Arc<Shared>>, Json(r): Json<Revoke>) -> StatusCode {
    s.auth.cae.revoke(r.tenant_id, r.user_id, s.clock.now(), "sessionsRevoked");
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddMessage {
    tenant_id: Uuid,
    owner: Uuid,
    message: Message,
}

fn done(ok: bool) -> Response {
    if ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, Json(json!({"error": "no such object"}))).into_response()
    }
}

async fn add_message_http(State(s): State<Arc<Shared>>, Json(r): Json<AddMessage>) -> Response {
    done(add_message(&s, r.tenant_id, r.owner, r.message))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteMessage {
    tenant_id: Uuid,
    owner: Uuid,
    id: String,
}

async fn delete_message_http(
    State(s): State<Arc<Shared>>,
    Json(r): Json<DeleteMessage>,
) -> Response {
    done(delete_message(&s, r.tenant_id, r.owner, &r.id))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemRef {
    tenant_id: Uuid,
    drive_id: String,
    item_id: String,
    #[serde(default)]
    grantee: Option<Grantee>,
}

async fn unshare_http(State(s): State<Arc<Shared>>, Json(r): Json<ItemRef>) -> Response {
    done(unshare(&s, r.tenant_id, &r.drive_id, &r.item_id, r.grantee))
}

async fn delete_item_http(State(s): State<Arc<Shared>>, Json(r): Json<ItemRef>) -> Response {
    done(delete_drive_item(&s, r.tenant_id, &r.drive_id, &r.item_id))
}

fn tenant_mut(w: &mut World, tid: Uuid) -> Option<&mut fixtures::Tenant> {
    w.tenants.iter_mut().find(|t| t.id == tid)
}

pub fn add_message(s: &Shared, tid: Uuid, owner: Uuid, message: Message) -> bool {
    s.edit(|w| {
        let Some(t) = tenant_mut(w, tid) else { return false };
        if !t.users.iter().any(|u| u.oid == owner) {
            return false;
        }
        match t.content.mailboxes.iter_mut().find(|m| m.owner == owner) {
            Some(mb) => mb.messages.push(message),
            None => t.content.mailboxes.push(Mailbox {
                owner,
                delegates: Vec::new(),
                folders: Vec::new(),
                messages: vec![message],
            }),
        }
        true
    })
}

pub fn delete_message(s: &Shared, tid: Uuid, owner: Uuid, id: &str) -> bool {
    s.edit(|w| {
        let Some(mb) = tenant_mut(w, tid)
            .and_then(|t| t.content.mailboxes.iter_mut().find(|m| m.owner == owner))
        else {
            return false;
        };
        let before = mb.messages.len();
        mb.messages.retain(|m| m.id != id && m.immutable_id != id);
        mb.messages.len() != before
    })
}

pub fn unshare(
    s: &Shared,
    tid: Uuid,
    drive_id: &str,
    item_id: &str,
    grantee: Option<Grantee>,
) -> bool {
    s.edit(|w| {
        let Some(item) = tenant_mut(w, tid)
            .and_then(|t| t.content.drives.iter_mut().find(|d| d.id == drive_id))
            .and_then(|d| d.items.iter_mut().find(|i| i.id == item_id))
        else {
            return false;
        };
        match grantee {
            Some(g) => item.shared_with.retain(|x| *x != g),
            None => {
                item.shared_with.clear();
                item.inheritance_broken = true;
            }
        }
        true
    })
}

pub fn delete_drive_item(s: &Shared, tid: Uuid, drive_id: &str, item_id: &str) -> bool {
    s.edit(|w| {
        let Some(d) =
            tenant_mut(w, tid).and_then(|t| t.content.drives.iter_mut().find(|d| d.id == drive_id))
        else {
            return false;
        };
        if !d.items.iter().any(|i| i.id == item_id) {
            return false;
        }
        let mut doomed = vec![item_id.to_owned()];
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i].clone();
            doomed.extend(
                d.items
                    .iter()
                    .filter(|it| it.parent_id.as_deref() == Some(parent.as_str()))
                    .map(|it| it.id.clone()),
            );
            i += 1;
        }
        d.items.retain(|it| !doomed.contains(&it.id));
        true
    })
}
