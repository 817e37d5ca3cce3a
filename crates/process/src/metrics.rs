//! A Prometheus endpoint: `GET /metrics` in the text exposition format, on a listener of its
//! own so that scraping never competes with the API's port or its authentication. With a
//! [`Readiness`], the same plaintext listener also answers `GET /readyz`: what a Kubernetes
//! HTTP probe can read when the API itself speaks TLS, which the kubelet's gRPC probe cannot.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::text::encode, metrics::histogram::Histogram, registry::Registry,
};
use tokio::net::TcpListener;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A latency histogram from 1 ms to 16 s: the buckets every wxauth latency uses, so
/// dashboards can compare the gateway and the auth-service.
pub fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 16.0,
    ])
}

/// Whether the process takes traffic: the same answer its gRPC health gives, for probes that
/// speak plain HTTP. Cheap to clone; every clone is the same flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts as not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Says whether the process takes traffic.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether the process takes traffic.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn scrape(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Binds `addr` and serves `registry` there (and `/readyz`, given a [`Readiness`]) for the
/// rest of the process's life; returns the address really bound (port 0 picks a free one).
pub async fn start(
    addr: std::net::SocketAddr,
    registry: Registry,
    readiness: Option<Readiness>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(
        listener,
        Arc::new(registry),
        readiness,
        std::future::pending(),
    ));
    Ok(local)
}

/// Serves `registry` at `/metrics` (and `readiness` at `/readyz`) on `listener` until
/// `shutdown`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Option<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(registry);
    if let Some(readiness) = readiness {
        app = app.merge(
            Router::new()
                .route("/readyz", get(readyz))
                .with_state(readiness),
        );
    }
    crate::http::serve(listener, app, shutdown).await
}
