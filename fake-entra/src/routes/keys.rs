//! The JWKS (reference/entra.md §2.3): the published keys, each with the `issuer` the
//! metadata document asked for (or as a test configured), and a journal entry per fetch.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::discovery::{discovery_headers, tenant_for_metadata};
use crate::{
    faults::Endpoint,
    journal::JournalEntry,
    listener::{Peer, conn_of},
    state::{AppState, JwksIssuer},
    tenant::seg_and_issuer,
};

pub(super) async fn keys(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let t = match tenant_for_metadata(&s, &tenant, Endpoint::Keys, &conn_of(peer), &headers).await {
        Ok(t) => t,
        Err(response) => return response,
    };
    let (_, metadata_issuer) = seg_and_issuer(&s, t);
    let now = s.now();
    let keys: Vec<_> = {
        let mut inner = s.lock();
        let issuer = match inner.jwks_issuer {
            JwksIssuer::AsMetadata => Some(metadata_issuer),
            JwksIssuer::Omitted => None,
            JwksIssuer::Tenant(tid) => Some(s.issuer_v2(tid)),
        };
        let keys = inner
            .keys
            .published()
            .map(|k| {
                let mut jwk = k.jwk(issuer.as_deref().unwrap_or_default());
                if issuer.is_none()
                    && let Some(m) = jwk.as_object_mut()
                {
                    m.remove("issuer");
                }
                jwk
            })
            .collect();
        // Journalled so a scenario can count fetches (a flood of unknown kids must not
        // become a flood of JWKS requests).
        let seq = inner.journal.len() as u64 + 1;
        inner.journal.push(JournalEntry {
            seq,
            time: now,
            endpoint: "keys".into(),
            grant: "keys".into(),
            client_id: None,
            tenant_id: t.id(),
            user_id: None,
            scopes: vec![],
            uti: None,
            error_code: None,
            error: None,
            cp1: false,
        });
        keys
    };
    discovery_headers(axum::Json(json!({ "keys": keys })).into_response())
}
