//! Bounded work at the HTTP edge: at most so many requests in flight, one more refused at
//! once (503, `retry-after`) instead of queueing; and no request answered later than the
//! request timeout (a slow body, or an auth-service that does not answer). `/healthz` is
//! outside both: a busy gateway must not look dead to its orchestrator.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

use crate::envelope::{ApiError, Code};

/// The route orchestrators probe; outside the limit.
pub const HEALTH_PATH: &str = "/healthz";

/// The longest request URL answered, in bytes; a longer one gets 414 in the envelope (the
/// HTTP layer reads request heads up to 64 KiB).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The limits, shared by every request.
#[derive(Debug, Clone)]
pub struct Limits {
    permits: Arc<Semaphore>,
    request_timeout: Duration,
}

impl Limits {
    /// At most `max_in_flight` requests at once, each answered within `request_timeout`.
    pub fn new(max_in_flight: usize, request_timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
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
