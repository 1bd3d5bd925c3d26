//! Minting on the handle: tokens as the fake's grants would issue them (a connector-audience
//! user token, an OBO Graph token) and deliberately bad ones from a [`TokenSpec`], signed with
//! the fake's keys without a round trip through the token endpoint.

use fixtures::{Device, User, WorkingHours};
use serde_json::json;
use uuid::Uuid;

use crate::{
    BadToken, FakeEntra, TokenSpec,
    state::{Directory, SignInContext},
    tokens::{self, Times},
};

impl FakeEntra {
    /// A valid v2 connector-audience token, as the auth-code flow would issue it.
    pub fn user_token(&self, tid: Uuid, oid: Uuid) -> String {
        self.mint(&TokenSpec::user(tid, oid))
    }

    /// A v1 Graph token as OBO would issue it (`nonce` header, `xms_cc` and 20–28 h when
    /// `cp1`).
    pub fn graph_token(&self, tid: Uuid, oid: Uuid, scopes: &[&str], cp1: bool) -> String {
        let now = self.shared.now();
        let mut inner = self.shared.lock();
        let user = lookup_user(&inner.dir, tid, oid);
        let ctx = SignInContext::for_user(&user, now);
        let life = if cp1 { inner.cae_lifetime() } else { inner.access_lifetime(tid) };
        let connector = inner.dir.apps.connector.clone();
        let claims = tokens::graph_user_claims(
            tid,
            &user,
            connector.app_id,
            &connector.display_name,
            "1",
            &scopes.join(" "),
            &ctx,
            cp1,
            Times::new(now, life),
            &tokens::new_uti(),
        );
        // Sign outside the state lock (the signature is the slow part).
        let key = inner.keys.active().clone();
        drop(inner);
        tokens::sign(&key, &claims, true, true)
    }

    /// Mints a token from a [`TokenSpec`], good or deliberately bad.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        let now = self.shared.now() + chrono::Duration::seconds(spec.shift_secs);
        let mut inner = self.shared.lock();
        let user = lookup_user(&inner.dir, spec.tid, spec.oid);
        let mut ctx = SignInContext::for_user(&user, now);
        ctx.mfa = spec.mfa;
        if let Some(c) = spec.compliant {
            ctx.compliant = c;
        }
        if let Some(ip) = &spec.ip {
            ctx.ip = ip.clone();
        }
        let life = spec.lifetime_secs.unwrap_or_else(|| inner.access_lifetime(spec.tid));
        let mut times = Times::new(now, life);
        match spec.bad {
            Some(BadToken::Expired) => {
                times = Times::new(now - chrono::Duration::seconds(life + 3600), life);
            }
            Some(BadToken::FutureNbf) => {
                times.nbf = times.iat + 1800;
            }
            Some(BadToken::FutureIat) => {
                times.iat += 1800;
            }
            Some(BadToken::IatAfterExp) => {
                times.iat += 30;
                times.exp = times.nbf + 10;
            }
            _ => {}
        }
        let connector = inner.dir.apps.connector.app_id;
        let azp = spec.azp.unwrap_or(inner.dir.apps.mcp_client.app_id);
        let scp = spec.scopes.clone().unwrap_or_else(|| vec!["access_as_user".into()]).join(" ");
        let issuer = self.shared.issuer_v2(spec.tid);
        let mut claims = match spec.bad {
            Some(BadToken::IdToken) => {
                tokens::id_token_claims(&issuer, spec.tid, &user, connector, None, &ctx, times)
            }
            _ => tokens::v2_user_claims(
                &issuer,
                spec.tid,
                &user,
                connector,
                azp,
                "0",
                &scp,
                &ctx,
                times,
                &tokens::new_uti(),
            ),
        };
        if let Some(m) = claims.as_object_mut() {
            match &spec.bad {
                Some(BadToken::WrongAudience) => {
                    m.insert("aud".into(), json!(tokens::GRAPH_AUDIENCE));
                }
                Some(BadToken::MismatchedIssuer { iss_tid }) => {
                    m.insert("iss".into(), json!(self.shared.issuer_v2(*iss_tid)));
                }
                Some(BadToken::AppOnly) => {
                    let sp = tokens::service_principal_id(spec.tid, azp).to_string();
                    for k in ["scp", "name", "preferred_username"] {
                        m.remove(k);
                    }
                    m.insert("roles".into(), json!(["access_as_application"]));
                    m.insert("idtyp".into(), json!("app"));
                    m.insert("oid".into(), json!(sp));
                    m.insert("sub".into(), json!(sp));
                    m.insert("azpacr".into(), json!("1"));
                }
                Some(BadToken::MissingScp) => {
                    m.remove("scp");
                }
                _ => {}
            }
            if let Some(aud) = &spec.audience {
                m.insert("aud".into(), json!(aud));
            }
            for (k, v) in &spec.extra {
                m.insert(k.clone(), v.clone());
            }
        }
        // Sign outside the state lock (the signature is the slow part).
        let (active, pending) = (inner.keys.active().clone(), inner.keys.pending().cloned());
        drop(inner);
        tokens::encode_with_defect(&claims, &active, pending.as_ref(), spec.bad.as_ref())
    }
}

/// The user, or a placeholder for an unknown `(tid, oid)` (minting never fails).
fn lookup_user(dir: &Directory, tid: Uuid, oid: Uuid) -> User {
    dir.tenant_by_id(tid).and_then(|t| t.user(oid)).cloned().unwrap_or_else(|| User {
        oid,
        upn: format!("{oid}@unknown.invalid"),
        mail: format!("{oid}@unknown.invalid"),
        display_name: "Unknown User".into(),
        given_name: None,
        surname: None,
        job_title: None,
        persona: None,
        time_zone: "UTC".into(),
        working_hours: WorkingHours::default(),
        enabled: true,
        mfa_registered: true,
        groups: vec![],
        directory_roles: vec![],
        device: Device { compliant: true, ip: None },
    })
}
