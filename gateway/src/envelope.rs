//! The envelope every answer is wrapped in, and the one table from an auth-service error
//! to an HTTP status and envelope code.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;
use tonic_types::StatusExt;
use wxauth_proto::{WECHAT_ERRCODE_KEY, v1::ErrorReason};

/// The envelope code of success.
pub const OK: i32 = 10000;

/// `{"code":..,"msg":..,"data":..}`, plus the WeChat errcode and request id on failures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// 10000 on success; see [`ApiError`] for the others.
    pub code: i32,
    /// "ok", or what went wrong and what to do.
    pub msg: String,
    /// The payload, `null` on failure.
    pub data: T,
    /// WeChat's errcode, when WeChat caused the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// The request id, on failures, to quote when asking for help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A failure envelope, as documented: `data` is always `null`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Not 10000: see the README's table.
    pub code: i32,
    /// What went wrong and what to do.
    pub msg: String,
    /// Always null.
    #[schema(value_type = Option<String>)]
    pub data: Value,
    /// WeChat's errcode, when WeChat caused the failure.
    pub errcode: Option<i64>,
    /// The request id, to quote when asking for help.
    pub request_id: Option<String>,
}

/// A success answer.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        code: OK,
        msg: "ok".into(),
        data,
        errcode: None,
        request_id: None,
    })
    .into_response()
}

/// A failure answer: an HTTP status, an envelope code and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The envelope code: 10001 bad request, 10002 unknown or expired session, 10003 WeChat
    /// rejected the code, 10004 data could not be decrypted or verified, 10005 WeChat
    /// unavailable, 10006 rate limited, 10007 token invalid, 10008 unknown appid, 10009 user
    /// not found, 10500 internal error.
    pub code: i32,
    /// What went wrong and what to do.
    pub msg: String,
    /// WeChat's errcode, when WeChat caused it.
    pub errcode: Option<i64>,
    /// Filled in by the request-id middleware.
    pub request_id: Option<String>,
}

impl ApiError {
    /// A 400 with code 10001.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 10001, msg)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: i32, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
            errcode: None,
            request_id: None,
        }
    }
}

/// The HTTP status and envelope code of each auth-service reason. Exhaustive, with no
/// wildcard: a new reason in the proto does not compile until it has its place here.
pub fn classify(reason: ErrorReason) -> (StatusCode, i32) {
    match reason {
        ErrorReason::InvalidArgument => (StatusCode::BAD_REQUEST, 10001),
        ErrorReason::SessionNotFound => (StatusCode::UNAUTHORIZED, 10002),
        ErrorReason::CodeRejected | ErrorReason::CodeAlreadyUsed => {
            (StatusCode::UNAUTHORIZED, 10003)
        }
        ErrorReason::LoginBlocked => (StatusCode::FORBIDDEN, 10003),
        ErrorReason::DecryptionFailed | ErrorReason::SignatureMismatch => {
            (StatusCode::BAD_REQUEST, 10004)
        }
        ErrorReason::WechatUnavailable => (StatusCode::SERVICE_UNAVAILABLE, 10005),
        ErrorReason::WechatMisconfigured | ErrorReason::WechatError => {
            (StatusCode::BAD_GATEWAY, 10005)
        }
        ErrorReason::RateLimited => (StatusCode::TOO_MANY_REQUESTS, 10006),
        ErrorReason::TokenInvalid | ErrorReason::TokenExpired => (StatusCode::UNAUTHORIZED, 10007),
        ErrorReason::UnknownApp => (StatusCode::NOT_FOUND, 10008),
        ErrorReason::UserNotFound => (StatusCode::NOT_FOUND, 10009),
        ErrorReason::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, 10500),
        // The auth-service refusing the gateway itself is the operator's to fix, not the client's.
        ErrorReason::Internal
        | ErrorReason::Unspecified
        | ErrorReason::CallerUnauthenticated
        | ErrorReason::CallerForbidden => (StatusCode::INTERNAL_SERVER_ERROR, 10500),
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let info = status.get_error_details().error_info().cloned();
        let Some(info) = info.filter(|info| info.domain == wxauth_proto::ERROR_DOMAIN) else {
            // No wxauth reason: the auth-service was not reached, or answered outside its
            // contract. Say which, without its text (it may be a transport's internals).
            tracing::warn!(code = ?status.code(), "the auth-service answered without a wxauth reason");
            // Every answer of the auth-service itself carries a reason, so `Unknown` without
            // one is the transport's: the connection dropped mid-call (a replica stopping).
            return match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    10500,
                    "the login service is unavailable: retry later",
                ),
                _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, 10500, "internal error"),
            };
        };
        let reason = ErrorReason::from_str_name(&info.reason).unwrap_or(ErrorReason::Unspecified);
        let (http_status, code) = classify(reason);
        let msg = match reason {
            ErrorReason::Unspecified => "internal error".to_owned(),
            ErrorReason::CallerUnauthenticated | ErrorReason::CallerForbidden => {
                tracing::error!(
                    reason = reason.as_str_name(),
                    "the auth-service refuses this gateway's caller key: check AUTH_CALLER_KEY"
                );
                "internal error: the gateway is misconfigured".to_owned()
            }
            _ => status.message().to_owned(),
        };
        Self {
            status: http_status,
            code,
            msg,
            errcode: info
                .metadata
                .get(WECHAT_ERRCODE_KEY)
                .and_then(|raw| raw.parse().ok()),
            request_id: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Envelope {
                code: self.code,
                msg: self.msg.clone(),
                data: Value::Null,
                errcode: self.errcode,
                request_id: self.request_id.clone(),
            }),
        )
            .into_response();
        // The request-id middleware answers again from this, with the id filled in.
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    fn status_with(reason: &str, errcode: Option<&str>) -> tonic::Status {
        let mut metadata = HashMap::new();
        if let Some(errcode) = errcode {
            metadata.insert(WECHAT_ERRCODE_KEY.to_owned(), errcode.to_owned());
        }
        tonic::Status::with_error_details(
            tonic::Code::Unauthenticated,
            "what to do",
            ErrorDetails::with_error_info(reason, wxauth_proto::ERROR_DOMAIN, metadata),
        )
    }

    #[test]
    fn every_reason_has_a_status_and_code() {
        let cases = [
            (ErrorReason::Unspecified, 500, 10500),
            (ErrorReason::InvalidArgument, 400, 10001),
            (ErrorReason::UnknownApp, 404, 10008),
            (ErrorReason::SessionNotFound, 401, 10002),
            (ErrorReason::CodeRejected, 401, 10003),
            (ErrorReason::CodeAlreadyUsed, 401, 10003),
            (ErrorReason::LoginBlocked, 403, 10003),
            (ErrorReason::RateLimited, 429, 10006),
            (ErrorReason::WechatMisconfigured, 502, 10005),
            (ErrorReason::WechatUnavailable, 503, 10005),
            (ErrorReason::WechatError, 502, 10005),
            (ErrorReason::DecryptionFailed, 400, 10004),
            (ErrorReason::SignatureMismatch, 400, 10004),
            (ErrorReason::TokenInvalid, 401, 10007),
            (ErrorReason::TokenExpired, 401, 10007),
            (ErrorReason::CallerUnauthenticated, 500, 10500),
            (ErrorReason::CallerForbidden, 500, 10500),
            (ErrorReason::UserNotFound, 404, 10009),
            (ErrorReason::Internal, 500, 10500),
            (ErrorReason::ServiceUnavailable, 503, 10500),
        ];
        for (reason, status, code) in cases {
            let (got_status, got_code) = classify(reason);
            assert_eq!(
                (got_status.as_u16(), got_code),
                (status, code),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn the_wechat_errcode_and_message_travel_through() {
        let err = ApiError::from(status_with("CODE_REJECTED", Some("40029")));
        assert_eq!(
            (err.status.as_u16(), err.code, err.errcode),
            (401, 10003, Some(40029))
        );
        assert_eq!(err.msg, "what to do");
    }

    #[test]
    fn a_status_without_wxauth_details_says_only_what_kind_of_failure_it_was() {
        let down = ApiError::from(tonic::Status::unavailable("tcp connect error: 127.0.0.1:1"));
        assert_eq!((down.status.as_u16(), down.code), (503, 10500));
        assert!(!down.msg.contains("127.0.0.1"));
        let dropped = ApiError::from(tonic::Status::unknown(
            "error reading a body from connection",
        ));
        assert_eq!((dropped.status.as_u16(), dropped.code), (503, 10500));
        let odd = ApiError::from(tonic::Status::internal("h2 protocol error"));
        assert_eq!((odd.status.as_u16(), odd.code), (500, 10500));
        let unknown_reason = ApiError::from(status_with("SOMETHING_NEW", None));
        assert_eq!(
            (unknown_reason.status.as_u16(), unknown_reason.msg.as_str()),
            (500, "internal error")
        );
    }
}
