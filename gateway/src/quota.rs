//! A quota per client on the login routes: a token bucket (governor) per client address, so
//! one client cannot spend the app's WeChat quota or hammer the service. Over it: 429 with
//! envelope 10006 and `retry-after`, and the auth-service is not called. The client is the
//! peer address, or, when the operator says the gateway sits behind proxies, the
//! `x-forwarded-for` hop the nearest of them could vouch for
//! ([`ClientAddress`](crate::ClientAddress)), never one the client wrote itself.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};

use wxauth_process::http::client_bucket;

use crate::{
    envelope::{ApiError, Code},
    metrics::Metrics,
    request_id::RequestId,
};

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// The quota, shared by every request.
#[derive(Debug, Clone)]
pub struct ClientQuota {
    limiter: Option<Arc<Limiter>>,
    metrics: Arc<Metrics>,
}

impl ClientQuota {
    /// `per_minute` login requests per client, `burst` at once; 0 turns it off.
    pub fn new(per_minute: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_minute(rate).allow_burst(burst),
            ))
        });
        Self { limiter, metrics }
    }

    /// Forgets clients whose bucket is full again, so the table does not grow with every
    /// address ever seen. Call it now and then.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The middleware, on the login routes.
pub(crate) async fn middleware(
    State(quota): State<ClientQuota>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.client);
    if let (Some(limiter), Some(client)) = (&quota.limiter, client)
        && let Err(not_until) = limiter.check_key(&client_bucket(client))
    {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        quota.metrics.rate_limited(route);
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .max(Duration::from_secs(1));
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::RateLimited,
            format!(
                "too many logins from this client: retry in {} s",
                wait.as_secs()
            ),
        )
        .retry_after(wait.as_secs())
        .into_response();
    }
    next.run(request).await
}
