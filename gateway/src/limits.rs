//! Bounded work at the HTTP edge, on every route:
//!
//! - at most so many requests in flight, one more refused at once (503, `retry-after`)
//!   instead of queueing;
//! - at most so many of them from one client address (an IPv6 /64), one more refused at once
//!   (429, `retry-after`), so no client can take the shared budget: one that holds its share
//!   with slow bodies leaves the rest to everyone else;
//! - no request answered later than the request timeout (an auth-service that does not
//!   answer; a slow body is cut off earlier, at the body deadline).
//!
//! `/healthz` is outside all of it: a busy gateway must not look dead to its orchestrator.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;
use wxauth_process::http::client_bucket;

use crate::{
    envelope::{ApiError, Code},
    request_id::RequestId,
};

/// The route orchestrators probe; outside the limit.
pub const HEALTH_PATH: &str = "/healthz";

/// The longest request URL answered, in bytes; a longer one gets 414 in the envelope (the
/// HTTP layer reads request heads up to 64 KiB).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The limits, shared by every request.
#[derive(Debug, Clone)]
pub struct Limits {
    permits: Arc<Semaphore>,
    per_client: Option<PerClient>,
    request_timeout: Duration,
}

/// Requests in flight per client bucket.
#[derive(Debug, Clone)]
struct PerClient {
    max: usize,
    in_flight: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One request's place in its client's count; given back when dropped (answered, or the
/// client went away).
struct Place {
    in_flight: Arc<Mutex<HashMap<IpAddr, usize>>>,
    bucket: IpAddr,
}

impl PerClient {
    fn enter(&self, client: IpAddr) -> Option<Place> {
        let bucket = client_bucket(client);
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(bucket).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Place {
            in_flight: self.in_flight.clone(),
            bucket,
        })
    }
}

fn lock(
    table: &Mutex<HashMap<IpAddr, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    // Counts only: a panic elsewhere cannot leave them unusable.
    table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.in_flight);
        if let Some(count) = in_flight.get_mut(&self.bucket) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.bucket);
            }
        }
    }
}

impl Limits {
    /// At most `max_in_flight` requests at once, `per_client` of them from one client, each
    /// answered within `request_timeout`.
    pub fn new(
        max_in_flight: usize,
        per_client: Option<NonZeroUsize>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            per_client: per_client.map(|max| PerClient {
                max: max.get(),
                in_flight: Arc::default(),
            }),
            request_timeout,
        }
    }
}

/// The middleware.
pub(crate) async fn middleware(
    State(limits): State<Limits>,
    request: Request,
    next: Next,
) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |path| path.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            Code::BadRequest,
            format!("the URL is longer than {MAX_URI_BYTES} bytes: send the data in a body"),
        )
        .into_response();
    }
    // The liveness route is never shed: a busy gateway is not a dead one.
    if request.uri().path() == HEALTH_PATH {
        return next.run(request).await;
    }
    let client = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.client);
    let _place = match (&limits.per_client, client) {
        (Some(per_client), Some(client)) => match per_client.enter(client) {
            Some(place) => Some(place),
            None => {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    Code::RateLimited,
                    format!(
                        "this client has {} requests in flight already: retry in a second",
                        per_client.max
                    ),
                )
                .retry_after(1)
                .into_response();
            }
        },
        _ => None,
    };
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            "the gateway is at its limit of requests in flight: retry in a second",
        )
        .into_response();
    };
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            "the request took too long to be answered: retry later",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_has_its_share_of_requests_and_gets_it_back() {
        let limits = Limits::new(8, NonZeroUsize::new(2), Duration::from_secs(1));
        let per_client = limits.per_client.unwrap();
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        let first = per_client.enter(client).unwrap();
        let _second = per_client.enter(client).unwrap();
        assert!(per_client.enter(neighbour).is_none(), "one /64, one share");
        assert!(per_client.enter("192.0.2.1".parse().unwrap()).is_some());
        drop(first);
        assert!(per_client.enter(neighbour).is_some());
    }
}
