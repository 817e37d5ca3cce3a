//! The tower layer: every request authenticated before it reaches the handler.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use wxauth_proto::wire;

use crate::{AuthFailure, Authenticator};

/// A tower layer that authenticates every request with an [`Authenticator`].
#[derive(Clone)]
pub struct AuthLayer {
    pub(crate) authenticator: Authenticator,
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Authenticator,
}

fn bearer<B>(request: &http::Request<B>) -> Option<String> {
    wire::bearer_token(request.headers()).map(str::to_owned)
}

impl<S, B> tower_service::Service<http::Request<B>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let outcome = match bearer(&request) {
                Some(token) => authenticator.authenticate(&token).await,
                None => Err(AuthFailure::Missing),
            };
            match outcome {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(failure) => Ok(failure.to_status().into_http()),
            }
        })
    }
}
