//! The router: Entra's endpoints by their real paths, the control API, and the middleware that
//! records mutating requests. The handlers live in one file per endpoint family; the router
//! imports them and everything they use, nothing imports back from it.

mod authorize;
mod discovery;
mod keys;
mod token;

use axum::{
    Router,
    extract::{Request, State},
    middleware::Next,
    response::Response,
    routing::{get, post},
};

use crate::{
    read_only::{MutatingRequest, is_mutating},
    state::AppState,
};

/// Route paths, as the real service spells them.
pub mod paths {
    pub const DISCOVERY_V2: &str = "/{tenant}/v2.0/.well-known/openid-configuration";
    pub const DISCOVERY_V1: &str = "/{tenant}/.well-known/openid-configuration";
    pub const KEYS_V2: &str = "/{tenant}/discovery/v2.0/keys";
    pub const KEYS_V1: &str = "/{tenant}/discovery/keys";
    pub const INSTANCE: &str = "/common/discovery/instance";
    pub const AUTHORIZE: &str = "/{tenant}/oauth2/v2.0/authorize";
    pub const TOKEN: &str = "/{tenant}/oauth2/v2.0/token";
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(paths::DISCOVERY_V2, get(discovery::discovery_v2))
        .route(paths::DISCOVERY_V1, get(discovery::discovery_v1))
        .route(paths::KEYS_V2, get(keys::keys))
        .route(paths::KEYS_V1, get(keys::keys))
        .route(paths::INSTANCE, get(discovery::instance_discovery))
        .route(paths::AUTHORIZE, get(authorize::authorize))
        .route(paths::TOKEN, post(token::token))
        .merge(crate::control::router())
        // Unknown paths answer 404 through the middleware, so a write to one is recorded.
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(state.clone(), record_mutating))
        .with_state(state)
}

/// Middleware: records every mutating request with the status it got.
async fn record_mutating(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    if is_mutating(&method, &path) {
        s.lock().mutating.push(MutatingRequest {
            method: method.to_string(),
            path,
            status: resp.status().as_u16(),
        });
    }
    resp
}
