//! The access token a request bears, checked before anything else of the request is read.
//!
//! The check is against the auth-service's public keys, in process (`wxauth-client`'s
//! offline mode): a forged, altered or expired token is answered 401 without reading a body
//! and without a call. A token that passes is still judged by the auth-service, which alone
//! knows whether it was revoked. Without this, a client could hold a place among the
//! requests in flight for as long as it took to send a body, bearing `abc`.

use axum::http::{HeaderMap, StatusCode};
use wxauth_client::AuthFailure;
use wxauth_proto::wire;

use crate::{
    envelope::{self, ApiError, Code},
    state::AppState,
};

/// The token of the one `authorization: Bearer <token>` header.
pub(crate) fn header(headers: &HeaderMap) -> Result<String, ApiError> {
    wire::bearer_token(headers)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::TokenInvalid,
                "send the access token as one `authorization: Bearer <access_token>` header",
            )
            .challenge(envelope::BEARER_MISSING)
        })
}

/// The bearer token, when it is one the auth-service signed for one of its apps and has not
/// expired; answered as the auth-service would answer it otherwise.
pub(crate) async fn checked(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = header(headers)?;
    match state.verifier().authenticate(&token).await {
        Ok(_) => Ok(token),
        Err(AuthFailure::Expired) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::TokenInvalid,
            "access token has expired: refresh it",
        )
        .challenge(envelope::BEARER_EXPIRED)),
        Err(AuthFailure::Missing | AuthFailure::Invalid) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::TokenInvalid,
            "token is invalid: log in again",
        )
        .challenge(envelope::BEARER_INVALID)),
        Err(AuthFailure::Unavailable(status)) => Err(ApiError::from(status)),
    }
}
