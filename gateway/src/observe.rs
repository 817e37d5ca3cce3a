//! What every request goes through first: it is given its id and its client's address, a
//! span that every log line of the request carries, and on its way out the failure envelope
//! (with the id), a log line and its count.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use tracing::{Instrument, info, info_span};
use wxauth_proto::wire::{REQUEST_ID_HEADER, acceptable_request_id, new_request_id};

use crate::{
    envelope::ApiError,
    metrics::Metrics,
    request_id::{ClientAddress, RequestId, client_address},
};

/// The middleware: assigns the id, opens the span, logs and counts the outcome.
pub(crate) async fn middleware(
    State((metrics, client_from)): State<(Arc<Metrics>, ClientAddress)>,
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
    let client = client_address(request.headers(), peer, client_from);
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
