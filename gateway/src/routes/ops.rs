//! What is not a user's call: the public keys that verify access tokens, liveness, and the
//! answers to routes and methods that do not exist.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use wxauth_proto::v1::GetJwksRequest;

use crate::{
    envelope::{self, ApiError, Code, ErrorEnvelope},
    request_id::RequestId,
    state::AppState,
};

/// `GET /.well-known/jwks.json`: the public keys, as a plain JWK Set (no envelope: JWKS
/// consumers expect the standard document).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "v1",
    description = "The public keys that verify access tokens, as a JWK Set (RFC 7517), without envelope.",
    responses(
        (status = 200, description = "the JWK Set", content_type = "application/jwk-set+json", body = Object),
        (status = 503, description = "10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn jwks(
    State(state): State<AppState>,
    request_id: RequestId,
) -> Result<Response, ApiError> {
    let jwks = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(GetJwksRequest {}, &request_id);
            async move { auth.get_jwks(request).await }
        })
        .await?
        .into_inner();
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        )],
        jwks.jwks_json,
    )
        .into_response();
    // Keys rotate rarely and verifiers refetch on an unknown kid: a short cache is safe.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// `GET /healthz`: the gateway is up (it does not call the auth-service).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the gateway is up", body = envelope::Envelope<Option<String>>)))]
pub(crate) async fn healthz() -> Response {
    envelope::ok(serde_json::Value::Null)
}

/// Any other path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, Code::BadRequest, "no such route")
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadRequest,
        "this route does not take that method",
    )
}
