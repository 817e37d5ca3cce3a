//! What the gateway counts, for Prometheus: requests by route and status, and latency.

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

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 16.0,
    ])
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RouteStatus, Counter>,
    duration: Family<Route, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// The metrics and the registry that exposes them.
    pub fn new() -> (Self, Registry) {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_buckets),
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
        (metrics, registry)
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
