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
mod v1;
pub mod views;

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use wxauth_client::connect::ClientTls;
use wxauth_proto::{
    REQUEST_ID_HEADER,
    v1::auth_service_client::AuthServiceClient,
    wire::{CLIENT_ADDR_HEADER, CallerKey},
};

pub use request_id::RequestId;

/// What every handler shares: the auth-service client (a cheap clone over one connection)
/// and the gateway's caller key, the one secret it holds (it grants only the `login` scope).
#[derive(Clone)]
pub struct AppState {
    auth: AuthServiceClient<InterceptedService<Channel, CallerKey>>,
    /// Each call's deadline, sent as `grpc-timeout` so the auth-service stops working on a
    /// call nobody waits for any more.
    upstream_timeout: Duration,
}

/// Why the gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// AUTH_GRPC_URL, or its TLS settings, cannot be used.
    #[error("AUTH_GRPC_URL and AUTH_TLS_*: {0}")]
    AuthUrl(#[source] wxauth_client::connect::ConnectError),
    /// AUTH_CALLER_KEY cannot travel as metadata.
    #[error("AUTH_CALLER_KEY must be printable ASCII")]
    CallerKey,
}

impl AppState {
    /// A client for the auth-service at `url`. The connection is made on first use, so the
    /// gateway starts (and answers 503) while the auth-service is still coming up.
    ///
    /// `url` may list several replicas, separated by commas; with `resolve_every`, the one
    /// URL's host is looked up again at that interval and every address it names is a
    /// replica (a Kubernetes headless Service). Calls are balanced across replicas.
    pub fn connect_lazy(
        url: &str,
        tls: Option<&ClientTls>,
        resolve_every: Option<Duration>,
        timeout: Duration,
        caller_key: &str,
    ) -> Result<Self, SetupError> {
        let configure = move |endpoint: tonic::transport::Endpoint| endpoint.timeout(timeout);
        let channel = match resolve_every {
            Some(every) => wxauth_client::connect::resolving_channel(url, tls, every, configure),
            None => wxauth_client::connect::channel(url, tls, configure),
        }
        .map_err(SetupError::AuthUrl)?;
        let caller_key = CallerKey::new(caller_key).map_err(|_| SetupError::CallerKey)?;
        Ok(Self {
            auth: AuthServiceClient::with_interceptor(channel, caller_key),
            upstream_timeout: timeout,
        })
    }

    /// Makes a call that changes nothing (the keys, a user) again, twice at most, when it
    /// failed before reaching the service (no wxauth reason: a replica not reachable, or
    /// one whose connection dropped mid-call): with several replicas, the balancer picks
    /// another. An answer of the service itself is never repeated.
    async fn read_only<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut answer = call().await;
        for _ in 0..2 {
            match &answer {
                Err(status) if wxauth_client::connect::not_answered(status) => {
                    answer = call().await;
                }
                _ => break,
            }
        }
        answer
    }

    /// A gRPC request to the auth-service, carrying the request id (the interceptor adds
    /// the caller key).
    fn upstream<T>(&self, message: T, request_id: &RequestId) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.upstream_timeout);
        if let Ok(value) = request_id.id.parse() {
            request.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        if let Some(Ok(value)) = request_id.client.map(|ip| ip.to_string().parse()) {
            request.metadata_mut().insert(CLIENT_ADDR_HEADER, value);
        }
        request
    }
}

/// Who a request comes from and how much of the login routes it may use.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The quota per client on the login routes.
    pub quota: quota::ClientQuota,
    /// Whether the first `x-forwarded-for` hop names the client (behind a trusted proxy).
    pub trust_forwarded_for: bool,
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
        // Outermost: every answer, a refusal by the limits included, carries the request id.
        .layer(axum::middleware::from_fn_with_state(
            (metrics, clients.trust_forwarded_for),
            request_id::middleware,
        ))
        .with_state(state)
}
