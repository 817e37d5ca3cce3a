//! The wxauth HTTP gateway: translates the mini-program's REST calls into gRPC calls to the
//! auth-service. It holds no database and no secret; every rule lives in the auth-service,
//! and the gateway's only table is the one from error reasons to HTTP answers.

pub mod envelope;
mod request_id;
mod routes;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tonic::transport::{Channel, Endpoint};
use wxauth_proto::v1::auth_service_client::AuthServiceClient;

pub use request_id::RequestId;

/// What every handler shares: the auth-service client (a cheap clone over one connection).
#[derive(Clone)]
pub struct AppState {
    auth: AuthServiceClient<Channel>,
}

impl AppState {
    /// A client for the auth-service at `url`. The connection is made on first use, so the
    /// gateway starts (and answers 503) while the auth-service is still coming up.
    pub fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            auth: AuthServiceClient::new(channel),
        })
    }
}

/// The gateway's routes, with the body limit and request ids.
pub fn router(state: AppState, body_limit: usize) -> Router {
    Router::new()
        .route("/wxauth/getsessionkey", get(routes::get_session_key))
        .route("/wxauth/wxsmallusersave", post(routes::save_user))
        .route("/healthz", get(routes::healthz))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}
