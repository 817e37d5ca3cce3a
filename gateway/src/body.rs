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
        "application/json" | "text/json" => {
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
                .map_err(|err| json_error(&err))
        }
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

/// What is wrong with a JSON body, naming the field when one is at fault (`appid`,
/// `user.nickname`) and never quoting the value sent: it may be a token or a code.
fn json_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    let path = err.path().to_string();
    let message = match inner.classify() {
        // A struct can be read from an array too; a body that is one is not what we take.
        serde_json::error::Category::Data if path != "." && !path.starts_with('[') => {
            // serde says "invalid type: integer `5`, expected a string": keep what was
            // expected, drop what was sent.
            let text = inner.to_string();
            let expected = text
                .split_once(", expected ")
                .map(|(_, expected)| expected.split(" at line ").next().unwrap_or(expected));
            match expected {
                Some(expected) => format!("the field `{path}` must be {expected}"),
                None => format!("the field `{path}` has a value of the wrong kind"),
            }
        }
        serde_json::error::Category::Data => {
            // At the top: a missing field (serde names it) or a body that is not an object.
            let text = inner.to_string();
            let text = text.split(" at line ").next().unwrap_or_default();
            if text.starts_with("missing field") {
                format!("the body lacks a field: {text}")
            } else {
                "the body must be a JSON object of the documented fields".to_owned()
            }
        }
        _ => format!(
            "the body is not valid JSON: error at line {} column {}",
            inner.line(),
            inner.column()
        ),
    };
    ApiError::bad_request(message)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        appid: String,
        code: String,
        profile: Option<Profile>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Profile {
        nickname: Option<String>,
    }

    fn refusal(body: &str) -> String {
        let err = parse::<Login>(&HeaderMap::new(), body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        err.msg
    }

    #[test]
    fn a_json_error_names_the_field_and_never_quotes_the_value() {
        let wrong = refusal(r#"{"appid": "wx1", "code": 918273645}"#);
        assert_eq!(wrong, "the field `code` must be a string");
        let nested = refusal(r#"{"appid": "wx1", "code": "c", "profile": {"nickname": ["x"]}}"#);
        assert_eq!(nested, "the field `profile.nickname` must be a string");
        let missing = refusal(r#"{"appid": "wx1"}"#);
        assert!(missing.contains("missing field `code`"), "{missing}");
        let not_object = refusal("[1, 2]");
        assert_eq!(
            not_object,
            "the body must be a JSON object of the documented fields"
        );
        let broken = refusal(r#"{"appid": "wx1", "code": "c""#);
        assert!(
            broken.starts_with("the body is not valid JSON: error at line 1"),
            "{broken}"
        );
        for message in [wrong, nested] {
            assert!(!message.contains("918273645") && !message.contains("[\"x\"]"));
        }
    }
}
