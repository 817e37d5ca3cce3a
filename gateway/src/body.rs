//! Request bodies: read within the size limit and the body deadline, parsed as JSON (the
//! default of `wx.request`) or a form.
//!
//! The deadline is what keeps a slow body from holding a place among the requests in flight:
//! a client that sends a body a byte at a time is answered 408 once it passes, well before
//! the request timeout.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
};

use crate::{
    envelope::{ApiError, Code},
    state::AppState,
};

/// The request's headers and its body, read within the body limit and deadline.
pub(crate) async fn read(
    state: &AppState,
    request: Request,
) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = request.headers().clone();
    let deadline = state.body_timeout();
    match tokio::time::timeout(deadline, Bytes::from_request(request, state)).await {
        Ok(read) => Ok((headers, read.map_err(rejection)?)),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            Code::BadRequest,
            format!(
                "the request body did not arrive within {} ms: send it with the headers",
                deadline.as_millis()
            ),
        )),
    }
}

/// The request's body, read as [`read`] does and parsed into `T`.
pub(crate) async fn parsed<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<T, ApiError> {
    let (headers, bytes) = read(state, request).await?;
    parse(&headers, &bytes)
}

fn rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BadRequest,
            "the request body is too large",
        )
    } else {
        ApiError::bad_request("the request body could not be read")
    }
}

/// Parses a JSON or form body into `T`. A form is decoded properly, so a `+` sent as `%2B`
/// stays a `+`; JSON is taken as it is, so base64 is never mangled.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" | "text/json" => serde_json::from_slice(bytes).map_err(|err| {
            ApiError::bad_request(format!(
                "the body is not a JSON object of the documented string fields: error at line {} column {}",
                err.line(),
                err.column()
            ))
        }),
        // curl -d and some clients send JSON labelled as a form; say so instead of
        // answering that every field is missing.
        "application/x-www-form-urlencoded"
            if bytes.trim_ascii_start().first().is_some_and(|b| *b == b'{') =>
        {
            Err(ApiError::bad_request(
                "the body is JSON but its content-type says a form: send content-type: application/json",
            ))
        }
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(bytes)
            .map_err(|_| ApiError::bad_request("the form body is malformed")),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadRequest,
            "send the body as application/json or application/x-www-form-urlencoded",
        )),
    }
}
