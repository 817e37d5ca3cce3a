//! `Application::build(config)`: binds the ports and wires the parts; `run(shutdown)` serves
//! until `shutdown` completes and the requests in flight finish. `main` adds only settings,
//! logs and signals, so tests run the gateway in process exactly as it runs in production.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

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
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::info;
use wxauth_process::exit::StartFailure;

use crate::{
    limits::{self, Limits},
    metrics::Metrics,
    observe, openapi,
    quota::{self, ClientQuota},
    request_id::ClientAddress,
    routes::{me, oauth, openid, ops, seed, tokens},
    settings::Config,
    state::{AppState, SetupError},
};

/// How often clients whose login quota is full again are forgotten.
const FORGET_IDLE_CLIENTS: Duration = Duration::from_secs(60);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The auth-service's URL, TLS or caller key cannot be used.
    #[error("cannot set up the auth-service client")]
    Upstream(#[source] SetupError),
    /// The HTTP address cannot be bound.
    #[error("cannot listen on {addr} (GATEWAY_HTTP_ADDR)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metrics address cannot be bound.
    #[error("cannot listen for metrics on {addr} (GATEWAY_METRICS_ADDR)")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StartFailure for StartError {
    fn is_settings(&self) -> bool {
        matches!(self, Self::Upstream(_))
    }
}

/// A built gateway, bound to its ports, not serving yet.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    metrics_addr: SocketAddr,
    router: Router,
    quota: ClientQuota,
    connections: wxauth_process::http::Limits,
    shutdown_grace: Duration,
}

impl Application {
    /// Binds the HTTP and metrics ports (port 0: free ones) and wires the routes. The
    /// auth-service is connected to on first use, so the gateway starts (and answers 503)
    /// while it is still coming up.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let state = AppState::connect_lazy(&config.upstream, config.body_timeout)
            .map_err(StartError::Upstream)?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = listener.local_addr().unwrap_or(config.http_addr);
        let (metrics, registry) = Metrics::new();
        let metrics_addr = wxauth_process::metrics::start(config.metrics_addr, registry, None)
            .await
            .map_err(|source| StartError::Metrics {
                addr: config.metrics_addr,
                source,
            })?;
        let connections = wxauth_process::http::Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections_per_client: config.max_connections_per_client,
            counters: metrics.connections.clone(),
            ..wxauth_process::http::Limits::default()
        };
        let metrics = Arc::new(metrics);
        let quota = ClientQuota::new(
            config.login_rate_per_minute,
            config.login_burst,
            metrics.clone(),
        );
        let limits = Limits::new(
            config.max_concurrent_requests,
            config.max_requests_per_client,
            config.request_timeout,
        );
        let clients = Clients {
            quota: quota.clone(),
            address: config.client_address,
        };
        info!(auth = %config.upstream.url, "gateway starting");
        Ok(Self {
            listener,
            http_addr,
            metrics_addr,
            router: router(state, config.body_limit, limits, clients, metrics),
            quota,
            connections,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// Where HTTP is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Serves until `shutdown` completes; then no connection is accepted, and the requests
    /// in flight get the shutdown grace to finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let quota = self.quota.clone();
        let forgetting = tokio::spawn(async move {
            loop {
                tokio::time::sleep(FORGET_IDLE_CLIENTS).await;
                quota.forget_idle();
            }
        });
        let (stop, deadline) = wxauth_process::signal::with_grace(shutdown, self.shutdown_grace);
        let served = tokio::select! {
            served = wxauth_process::http::serve_with(self.listener, self.router, stop, self.connections) => served,
            () = deadline => Ok(()),
        };
        forgetting.abort();
        served
    }
}

/// What every answer but a cacheable one says.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Who a request comes from and how much of the login routes it may use.
#[derive(Debug, Clone)]
struct Clients {
    /// The quota per client on the login routes.
    quota: ClientQuota,
    /// Where a client's address is learnt.
    address: ClientAddress,
}

/// The gateway's routes, with the body limit, request ids, limits, client quotas and
/// metrics.
fn router(
    state: AppState,
    body_limit: usize,
    limits: Limits,
    clients: Clients,
    metrics: Arc<Metrics>,
) -> Router {
    // The routes that start or renew a login, and so spend the app's WeChat quota.
    let logins = Router::new()
        .route("/wxauth/getsessionkey", get(seed::get_session_key))
        .route("/wxauth/wxsmallusersave", post(seed::save_user))
        .route("/v1/login", post(tokens::login))
        .route("/v1/token/refresh", post(tokens::refresh))
        .route("/v1/me/phone", post(me::bind_phone))
        .route("/oauth/token", post(oauth::token))
        .route_layer(axum::middleware::from_fn_with_state(
            clients.quota,
            quota::middleware,
        ));
    Router::new()
        .merge(logins)
        .route("/healthz", get(ops::healthz))
        .route("/v1/logout", post(tokens::logout))
        .route("/v1/me", get(me::me).delete(me::delete_me))
        .route("/v1/me/export", get(me::export_me))
        .route("/v1/me/profile", post(me::update_profile))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(openid::authorization_server),
        )
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route(
            "/oauth/userinfo",
            get(openid::userinfo).post(openid::userinfo),
        )
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::middleware,
        ))
        // Every answer, a refusal by the limits included, carries the request id.
        .layer(axum::middleware::from_fn_with_state(
            (metrics, clients.address),
            observe::middleware,
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
