//! What the gateway counts, for Prometheus: requests by route and status, latency, and
//! login requests refused by the client quota.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

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
}

impl Metrics {
    /// The metrics and the registry that exposes them.
    pub fn new() -> (Self, Registry) {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(wxauth_runtime::metrics::latency_histogram),
            rate_limited: Family::default(),
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
