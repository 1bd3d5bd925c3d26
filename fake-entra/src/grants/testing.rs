//! What the grants' unit tests share: a running fake to take state from, the form of a
//! request, and the assertion on a refusal (error, AADSTS code, HTTP status).

use std::collections::HashMap;

use uuid::Uuid;

use super::{Issued, Trail};
use crate::{FakeEntra, error::AadError};

pub(super) async fn entra() -> FakeEntra {
    match FakeEntra::builder().seed(7).start().await {
        Ok(e) => e,
        Err(e) => panic!("fake-entra did not start: {e}"),
    }
}

pub(super) fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(super) fn trail(client: Uuid) -> Trail {
    Trail { client_id: Some(client.to_string()), ..Trail::default() }
}

/// Asserts `result` is Entra's refusal with this `error`, AADSTS `code` and HTTP `status`.
#[track_caller]
pub(super) fn assert_refused(
    result: Result<Issued, AadError>,
    error: &str,
    code: u32,
    status: u16,
) {
    match result {
        Ok(_) => panic!("expected AADSTS{code} ({error}, {status}), got tokens"),
        Err(e) => assert_eq!(
            (e.error.as_str(), e.code, e.status.as_u16()),
            (error, code, status),
            "refusal: {}",
            e.message
        ),
    }
}
