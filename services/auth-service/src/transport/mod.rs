//! The gRPC edge: it only translates.
//!
//! - [`service`]: the `AuthService` RPCs: parse the request, call the flow, build the answer;
//! - [`convert`]: requests into checked domain input, domain results into messages;
//! - [`status`]: the one mapping from [`AuthError`] to a gRPC code and reason.
//!
//! Every call goes through [`AuthApi::call`]: the caller's key is checked for the RPC's
//! scope, the call runs in a span carrying its request id and caller, and it is counted.

pub mod convert;
pub mod service;
pub mod status;

use std::{future::Future, sync::Arc, time::Instant};

use tonic::{Request, Response, Status};
use tracing::{Instrument, info_span};
use wxauth_proto::wire::{
    CALLER_KEY_HEADER, REQUEST_ID_HEADER, acceptable_request_id, new_request_id,
};

use crate::{
    callers::{Callers, Scope},
    error::AuthError,
    login::Logins,
    metrics::Metrics,
    tokens::Tokens,
    users::Users,
};

/// The `AuthService` implementation: the flows, and who may call them.
#[derive(Clone)]
pub struct AuthApi {
    logins: Arc<Logins>,
    tokens: Arc<Tokens>,
    users: Arc<Users>,
    callers: Arc<Callers>,
    metrics: Arc<Metrics>,
}

impl AuthApi {
    /// Serves the flows to the given callers.
    pub fn new(
        logins: Arc<Logins>,
        tokens: Arc<Tokens>,
        users: Arc<Users>,
        callers: Callers,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            logins,
            tokens,
            users,
            callers: Arc::new(callers),
            metrics,
        }
    }

    /// Runs one call: checks the caller's key for `method` and `scope`, then runs `body`
    /// inside a span that carries the request id and the caller's name, and turns its error
    /// into a `Status`.
    async fn call<T, R, F, Fut>(
        &self,
        request: Request<T>,
        method: &'static str,
        scope: Option<Scope>,
        body: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(T) -> Fut,
        Fut: Future<Output = Result<R, AuthError>>,
    {
        let request_id = request
            .metadata()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| acceptable_request_id(id))
            .map_or_else(new_request_id, str::to_owned);
        let caller_key = request
            .metadata()
            .get(CALLER_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let span =
            info_span!("rpc", method, request_id = %request_id, caller = tracing::field::Empty);
        let started = Instant::now();
        let result = async {
            let caller = self
                .callers
                .authorize(caller_key.as_deref(), method, scope)?;
            tracing::Span::current().record("caller", caller);
            body(request.into_inner()).await
        }
        .instrument(span.clone())
        .await;
        let outcome = match &result {
            Ok(_) => "OK",
            Err(err) => status::classify(err).1.as_str_name(),
        };
        self.metrics.rpc(method, outcome, started.elapsed());
        span.in_scope(|| {
            result
                .map(Response::new)
                .map_err(|err| status::to_status(err, &request_id))
        })
    }
}
