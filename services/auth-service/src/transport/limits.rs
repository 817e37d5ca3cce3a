//! Bounded work at the gRPC edge: at most so many `AuthService` calls in flight; one more is
//! refused at once (RESOURCE_EXHAUSTED, reason OVERLOADED, with a RetryInfo) instead of
//! queueing until every caller times out. Health and reflection are outside the limit, so an
//! orchestrator still sees a replica that is busy, not dead. A request message over
//! [`MAX_MESSAGE_BYTES`] is refused with RESOURCE_EXHAUSTED too.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::sync::Semaphore;
use tonic::{Code, Status, body::Body, server::NamedService};
use tonic_types::{ErrorDetails, StatusExt};
use wxauth_proto::{
    ERROR_DOMAIN,
    v1::{ErrorReason, auth_service_server::AuthServiceServer},
};

use super::AuthApi;
use crate::metrics::Metrics;

/// How long a refused caller is asked to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The largest request message accepted: a completed login's encrypted data is a few
/// kilobytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The refusal of a call over the limit.
pub fn overloaded() -> Status {
    let mut details = ErrorDetails::with_error_info(
        ErrorReason::Overloaded.as_str_name(),
        ERROR_DOMAIN,
        std::collections::HashMap::new(),
    );
    details.set_retry_info(Some(RETRY_AFTER));
    Status::with_error_details(
        Code::ResourceExhausted,
        "the login service is at its limit of calls in flight: retry in a second",
        details,
    )
}

/// tonic refuses a request message over [`MAX_MESSAGE_BYTES`] with OUT_OF_RANGE; gRPC's
/// status table says RESOURCE_EXHAUSTED (what grpc-go and grpc-java send, and what callers
/// in other languages handle). No RPC of the service answers OUT_OF_RANGE itself, so an
/// answer with that code is the codec's refusal, turned here into the conventional one with
/// a message that names the limit.
fn oversized_as_resource_exhausted(answer: http::Response<Body>) -> http::Response<Body> {
    let out_of_range = answer
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() == b"11");
    if !out_of_range {
        return answer;
    }
    Status::new(
        Code::ResourceExhausted,
        format!(
            "the request message is larger than {MAX_MESSAGE_BYTES} bytes, the most a call may send"
        ),
    )
    .into_http()
}

/// The API with its limits: messages of at most [`MAX_MESSAGE_BYTES`], and at most
/// `max_calls` calls in flight on this replica (across all connections).
pub fn limited(
    api: AuthApi,
    max_calls: usize,
    metrics: Arc<Metrics>,
) -> Limited<AuthServiceServer<AuthApi>> {
    Limited {
        inner: AuthServiceServer::new(api).max_decoding_message_size(MAX_MESSAGE_BYTES),
        permits: Arc::new(Semaphore::new(max_calls.max(1))),
        metrics,
    }
}

/// A service that refuses a call at once when `permits` are all taken.
///
/// tower's `ConcurrencyLimit` and `LoadShed` do this, but a tonic router takes only services
/// that never fail and are `Sync`, which their combination is not; this is the same idea
/// over a semaphore, in the shape tonic takes.
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl<S: NamedService> NamedService for Limited<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower_service::Service<http::Request<Body>> for Limited<S>
where
    S: tower_service::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let answer = answer.await;
                    drop(permit);
                    answer.map(oversized_as_resource_exhausted)
                })
            }
            Err(_) => {
                self.metrics.shed();
                Box::pin(std::future::ready(Ok(overloaded().into_http())))
            }
        }
    }
}
