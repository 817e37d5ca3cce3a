//! What the gateway counts, for Prometheus: requests by route and status, latency, login
//! requests refused by the client quota, and connections.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use wxauth_process::http::ConnectionCounters;

/// A route and the HTTP status it answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// The route pattern (`/wxauth/getsessionkey`), or `unmatched`.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// A route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// The route pattern, or `unmatched`.
    pub route: String,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RouteStatus, Counter>,
    duration: Family<Route, Histogram, fn() -> Histogram>,
    rate_limited: Family<Route, Counter>,
    /// What the HTTP server counts of its connections.
    pub connections: ConnectionCounters,
}

impl Metrics {
    /// The metrics and the registry that exposes them.
    pub fn new() -> (Self, Registry) {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(wxauth_process::metrics::latency_histogram),
            rate_limited: Family::default(),
            connections: ConnectionCounters::default(),
        };
        let mut registry = Registry::with_prefix("wxauth_gateway");
        registry.register(
            "requests",
            "HTTP requests by route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "HTTP request latency by route",
            metrics.duration.clone(),
        );
        registry.register(
            "rate_limited",
            "login requests refused (429) because their client was over its quota",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open now",
            metrics.connections.open.clone(),
        );
        registry.register(
            "connections_refused",
            "connections closed as soon as accepted: their client held GATEWAY_MAX_CONNECTIONS_PER_CLIENT already",
            metrics.connections.refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "connections closed for sending no complete request head within GATEWAY_HEADER_READ_TIMEOUT_MS, or for idling past GATEWAY_IDLE_TIMEOUT_MS",
            metrics.connections.timed_out.clone(),
        );
        (metrics, registry)
    }

    /// Counts a request refused by the client quota.
    pub fn rate_limited(&self, route: &str) {
        self.rate_limited
            .get_or_create(&Route {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Counts a finished request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&Route {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }
}
