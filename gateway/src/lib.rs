//! The wxauth HTTP gateway: translates the mini-program's REST calls into gRPC calls to the
//! auth-service. It holds no database and no secret; every rule lives in the auth-service,
//! and the gateway's only table is the one from error reasons to HTTP answers.

pub mod envelope;
pub mod input;
pub mod limits;
mod me;
pub mod metrics;
pub mod openapi;
pub mod quota;
mod request_id;
mod routes;
mod state;
mod v1;
pub mod views;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{
        HeaderValue,
        header::{CACHE_CONTROL, PRAGMA, X_CONTENT_TYPE_OPTIONS},
    },
    response::Response,
    routing::{get, post},
};
pub use request_id::{ClientAddress, RequestId};
pub use state::{AppState, SetupError};
use tower_http::set_header::SetResponseHeaderLayer;

/// What every answer but a cacheable one says.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Who a request comes from and how much of the login routes it may use.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The quota per client on the login routes.
    pub quota: quota::ClientQuota,
    /// Where a client's address is learnt.
    pub address: ClientAddress,
}

/// The gateway's routes, with the body limit, request ids, client quotas and metrics.
pub fn router(
    state: AppState,
    body_limit: usize,
    limits: limits::Limits,
    clients: Clients,
    metrics: std::sync::Arc<metrics::Metrics>,
) -> Router {
    // The routes that start or renew a login, and so spend the app's WeChat quota.
    let logins = Router::new()
        .route("/wxauth/getsessionkey", get(routes::get_session_key))
        .route("/wxauth/wxsmallusersave", post(routes::save_user))
        .route("/v1/login", post(v1::login))
        .route("/v1/token/refresh", post(v1::refresh))
        .route("/v1/me/phone", post(me::bind_phone))
        .route_layer(axum::middleware::from_fn_with_state(
            clients.quota,
            quota::middleware,
        ));
    Router::new()
        .merge(logins)
        .route("/healthz", get(routes::healthz))
        .route("/v1/logout", post(v1::logout))
        .route("/v1/me", get(v1::me))
        .route("/v1/me/profile", post(me::update_profile))
        .route("/.well-known/jwks.json", get(v1::jwks))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::middleware,
        ))
        // Every answer, a refusal by the limits included, carries the request id.
        .layer(axum::middleware::from_fn_with_state(
            (metrics, clients.address),
            request_id::middleware,
        ))
        // Outermost: answers carry session ids, tokens and phone numbers, and a login's GET
        // has its code in the URL, so no shared cache in front of the gateway (a CDN, a
        // corporate proxy) may keep any answer (RFC 6749 5.1). A route that may be cached
        // says so itself (the JWKS).
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            NO_STORE,
        ))
        // HTTP/1.0's form of the same, only where nothing may be kept: some caches read a
        // `Pragma: no-cache` as "never cache", which would undo the JWKS's `max-age`.
        .layer(SetResponseHeaderLayer::if_not_present(
            PRAGMA,
            |answer: &Response| {
                (answer.headers().get(CACHE_CONTROL) == Some(&NO_STORE))
                    .then_some(HeaderValue::from_static("no-cache"))
            },
        ))
        // A profile's text is the user's own (a nickname may hold markup): a browser that
        // opens an answer reads it as the JSON it says it is, never as a page.
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}
