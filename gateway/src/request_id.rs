//! Gives every request an id: the caller's `x-request-id` when it is sane, a new one
//! otherwise. The id goes into the span of every log line of the request, to the
//! auth-service as gRPC metadata, into the response header, and into failure envelopes.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, request::Parts},
    middleware::Next,
    response::Response,
};
use tracing::{Instrument, info, info_span};
use wxauth_proto::wire::{REQUEST_ID_HEADER, acceptable_request_id, new_request_id};

use crate::{envelope::ApiError, metrics::Metrics};

/// The id of the request being served, and where it came from.
#[derive(Debug, Clone)]
pub struct RequestId {
    /// The id.
    pub id: String,
    /// The client's address, for the auth-service's audit trail.
    pub client: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId {
                id: new_request_id(),
                client: None,
            }))
    }
}

/// The middleware: assigns the id, opens the span, logs and counts the outcome.
pub(crate) async fn middleware(
    State((metrics, trust_forwarded_for)): State<(std::sync::Arc<Metrics>, bool)>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable_request_id(id))
        .map_or_else(new_request_id, str::to_owned);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let client = client_address(request.headers(), peer, trust_forwarded_for);
    request.extensions_mut().insert(RequestId {
        id: id.clone(),
        client,
    });
    let span = info_span!("http", request_id = %id, method = %request.method(), path = %request.uri().path());
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        if let Some(failure) = response.extensions_mut().remove::<ApiError>() {
            response = failure.render(&id);
        } else if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let elapsed = started.elapsed();
        metrics.request(&route, response.status().as_u16(), elapsed);
        info!(
            status = response.status().as_u16(),
            elapsed_ms = elapsed.as_millis() as u64,
            "request finished"
        );
        response
    }
    .instrument(span)
    .await
}

/// Who the client of a request is (for the audit trail and the login quota): the first `x-forwarded-for` hop when trusted and
/// well-formed, else the peer.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let first = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|hop| hop.trim().parse().ok());
        if first.is_some() {
            return first;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_address_counts_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(client_address(&headers, Some(peer), false), Some(peer));
        assert_eq!(
            client_address(&headers, Some(peer), true),
            Some("203.0.113.7".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client_address(&headers, Some(peer), true), Some(peer));
    }
}
