//! Continuous Access Evaluation: revocation events pulled from fake-entra's feed (or injected
//! by the handle), and the 401 claims challenge Graph answers a cp1 token issued before one.

use std::{collections::HashMap, sync::Mutex};

use axum::http::{StatusCode, header::WWW_AUTHENTICATE};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Auth, Caller};
use crate::error::GraphError;

impl Auth {
    /// Pulls new CAE events from fake-entra's feed.
    pub async fn sync_cae(&self) {
        let _guard = self.cae.sync_lock.lock().await;
        let after = self.cae.last_seq();
        let url = format!("{}?after={after}", self.events_url);
        let feed: Option<Feed> = self.fetch_json(&url).await;
        match feed {
            Some(feed) => self.cae.apply(feed),
            None => tracing::debug!("fake-entra's CAE feed is not reachable"),
        }
    }

    /// The CAE answer for a cp1 token issued before an event for its user.
    pub fn cae_check(&self, caller: &Caller) -> Result<(), GraphError> {
        if !caller.cp1 {
            return Ok(());
        }
        let Some(at) = self.cae.revoked_at(caller.tid, caller.oid) else { return Ok(()) };
        // Tokens are stamped in whole seconds; one issued in the event's second counts as after.
        if caller.iat < at.timestamp() {
            return Err(cae_challenge(at.timestamp()));
        }
        Ok(())
    }
}

/// Graph's CAE 401 (`entra.md` §9.2, `graph.md` §3.2): one `WWW-Authenticate` value holding two
/// challenges, a `PoP` one (with a fresh `nonce`) and then the `Bearer` one that carries
/// `error="insufficient_claims"` and the claims, so a client has to parse every challenge and
/// pick the right one. The claims are unpadded base64 of
/// `{"access_token":{"nbf":{"essential":true,"value":"<event time>"},"xms_caeerror":{"value":"10012"}}}`
/// (observed: Graph drops the padding at times, and CAE adds `xms_caeerror`).
pub fn cae_challenge(nbf: i64) -> GraphError {
    const TEXT: &str = "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp";
    const AUTHORITY: &str = "realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";
    let claims = STANDARD_NO_PAD.encode(format!(
        r#"{{"access_token":{{"nbf":{{"essential":true,"value":"{nbf}"}},"xms_caeerror":{{"value":"{CAE_ERROR_REVOKED}"}}}}}}"#
    ));
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    let header = format!(
        "PoP {AUTHORITY}, nonce=\"{nonce}\", Bearer {AUTHORITY}, error_description=\"{TEXT}\", error=\"insufficient_claims\", claims=\"{claims}\""
    );
    GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", TEXT)
        .header(WWW_AUTHENTICATE, header)
}

/// The `xms_caeerror` code seen with `TokenIssuedBeforeRevocationTimestamp` challenges.
const CAE_ERROR_REVOKED: &str = "10012";

/// One event of fake-entra's CAE feed.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaeEvent {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub time: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Feed {
    events: Vec<CaeEvent>,
    last_seq: u64,
}

/// Revocation times per user, from fake-entra's feed or [`crate::FakeGraph::revoke_sessions`].
#[derive(Default)]
pub struct Cae {
    inner: Mutex<CaeState>,
    sync_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CaeState {
    last_seq: u64,
    revoked: HashMap<(Uuid, Uuid), DateTime<Utc>>,
    events: Vec<CaeEvent>,
}

impl Cae {
    fn last_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).last_seq
    }

    fn apply(&self, feed: Feed) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for ev in feed.events {
            if ev.seq <= st.last_seq {
                continue;
            }
            st.last_seq = st.last_seq.max(ev.seq);
            let slot = st.revoked.entry((ev.tenant_id, ev.user_id)).or_insert(ev.time);
            *slot = (*slot).max(ev.time);
            st.events.push(ev);
        }
        st.last_seq = st.last_seq.max(feed.last_seq);
    }

    /// Records a revocation directly (control API), as if the feed had reported it.
    pub fn revoke(&self, tid: Uuid, oid: Uuid, at: DateTime<Utc>, kind: &str) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let slot = st.revoked.entry((tid, oid)).or_insert(at);
        *slot = (*slot).max(at);
        st.events.push(CaeEvent {
            seq: 0,
            kind: kind.to_owned(),
            tenant_id: tid,
            user_id: oid,
            time: at,
        });
    }

    pub fn revoked_at(&self, tid: Uuid, oid: Uuid) -> Option<DateTime<Utc>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).revoked.get(&(tid, oid)).copied()
    }

    /// Every event seen so far.
    pub fn events(&self) -> Vec<CaeEvent> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).events.clone()
    }
}
