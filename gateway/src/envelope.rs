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

/// The `code` of every answer: the one table a client switches on (the README lists it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 10000: success.
    Ok = 10000,
    /// 10001: a field is missing or malformed; `msg` names it.
    BadRequest = 10001,
    /// 10002: unknown, expired or superseded login session: `wx.login()` again.
    SessionUnknown = 10002,
    /// 10003: WeChat rejected the code, or it was already used: `wx.login()` again.
    CodeRejected = 10003,
    /// 10004: the data does not decrypt or verify with this session.
    DataInvalid = 10004,
    /// 10005: WeChat is unavailable.
    WeChatUnavailable = 10005,
    /// 10006: a rate limit was hit.
    RateLimited = 10006,
    /// 10007: the token is missing, invalid, revoked or expired.
    TokenInvalid = 10007,
    /// 10008: the appid is not served here.
    UnknownApp = 10008,
    /// 10009: no such user.
    UserNotFound = 10009,
    /// 10010: WeChat refused the code of the getPhoneNumber button: tap it again.
    PhoneCodeRejected = 10010,
    /// 10011: the account is suspended (or waits out a deletion): no login, no token.
    AccountSuspended = 10011,
    /// 10012: WeChat's content check refused the nickname: ask for another.
    NicknameRejected = 10012,
    /// 10500: internal error, or the login service is unavailable.
    Internal = 10500,
}

impl Code {
    /// The number sent.
    pub const fn value(self) -> i32 {
        self as i32
    }
}

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
        code: Code::Ok.value(),
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
    /// The envelope code.
    pub code: Code,
    /// What went wrong and what to do.
    pub msg: String,
    /// WeChat's errcode, when WeChat caused it.
    pub errcode: Option<i64>,
    /// Seconds the client should wait before trying again (sent as `retry-after`).
    pub retry_after: Option<u64>,
    /// The `www-authenticate` challenge of a refused access token (RFC 6750 3).
    pub challenge: Option<&'static str>,
}

/// How long a client answered 503 is asked to wait, in seconds, unless its cause said how
/// long (the auth-service's `RetryInfo`).
const RETRY_AFTER_SECS: u64 = 1;

/// The challenge when no access token was sent.
pub const BEARER_MISSING: &str = "Bearer realm=\"wxauth\"";
/// The challenge when the access token was refused: altered, revoked, another app's.
pub const BEARER_INVALID: &str = "Bearer realm=\"wxauth\", error=\"invalid_token\"";
/// The challenge when the access token expired: refresh it.
pub const BEARER_EXPIRED: &str = "Bearer realm=\"wxauth\", error=\"invalid_token\", \
    error_description=\"the access token expired\"";

impl ApiError {
    /// A 400 with [`Code::BadRequest`].
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::BadRequest, msg)
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: Code, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
            errcode: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// Answers with the `www-authenticate` challenge `challenge`.
    pub fn challenge(self, challenge: &'static str) -> Self {
        Self {
            challenge: Some(challenge),
            ..self
        }
    }

    /// Without a challenge: the credential refused was a refresh token, which no
    /// `authorization` header carries.
    pub fn without_challenge(self) -> Self {
        Self {
            challenge: None,
            ..self
        }
    }

    /// Asks the client to wait `secs` seconds before trying again.
    pub fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }
}

/// The HTTP status and envelope code of each auth-service reason. Exhaustive, with no
/// wildcard: a new reason in the proto does not compile until it has its place here.
pub fn classify(reason: ErrorReason) -> (StatusCode, Code) {
    match reason {
        ErrorReason::InvalidArgument | ErrorReason::InvalidScope => {
            (StatusCode::BAD_REQUEST, Code::BadRequest)
        }
        ErrorReason::SessionNotFound => (StatusCode::UNAUTHORIZED, Code::SessionUnknown),
        ErrorReason::CodeRejected | ErrorReason::CodeAlreadyUsed => {
            (StatusCode::UNAUTHORIZED, Code::CodeRejected)
        }
        ErrorReason::LoginBlocked => (StatusCode::FORBIDDEN, Code::CodeRejected),
        ErrorReason::PhoneCodeRejected => (StatusCode::BAD_REQUEST, Code::PhoneCodeRejected),
        ErrorReason::SessionKeyInvalid => (StatusCode::UNAUTHORIZED, Code::SessionUnknown),
        ErrorReason::DecryptionFailed | ErrorReason::SignatureMismatch => {
            (StatusCode::BAD_REQUEST, Code::DataInvalid)
        }
        ErrorReason::WechatUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, Code::WeChatUnavailable)
        }
        ErrorReason::WechatMisconfigured | ErrorReason::WechatError => {
            (StatusCode::BAD_GATEWAY, Code::WeChatUnavailable)
        }
        ErrorReason::RateLimited => (StatusCode::TOO_MANY_REQUESTS, Code::RateLimited),
        ErrorReason::TokenInvalid | ErrorReason::TokenExpired => {
            (StatusCode::UNAUTHORIZED, Code::TokenInvalid)
        }
        ErrorReason::UnknownApp => (StatusCode::NOT_FOUND, Code::UnknownApp),
        ErrorReason::UserNotFound | ErrorReason::UserDeleted => {
            (StatusCode::NOT_FOUND, Code::UserNotFound)
        }
        ErrorReason::AccountSuspended => (StatusCode::FORBIDDEN, Code::AccountSuspended),
        ErrorReason::NicknameRejected => (StatusCode::BAD_REQUEST, Code::NicknameRejected),
        ErrorReason::NotDeleting => (StatusCode::CONFLICT, Code::BadRequest),
        ErrorReason::ServiceUnavailable | ErrorReason::Overloaded => {
            (StatusCode::SERVICE_UNAVAILABLE, Code::Internal)
        }
        // The auth-service refusing the gateway itself is the operator's to fix, not the client's.
        ErrorReason::Internal
        | ErrorReason::Unspecified
        | ErrorReason::CallerUnauthenticated
        | ErrorReason::CallerForbidden
        | ErrorReason::AppForbidden => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
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
                    Code::Internal,
                    "the login service is unavailable: retry later",
                ),
                _ => Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Code::Internal,
                    "internal error",
                ),
            };
        };
        let reason = ErrorReason::from_str_name(&info.reason).unwrap_or(ErrorReason::Unspecified);
        let (http_status, code) = classify(reason);
        let msg = match reason {
            ErrorReason::Unspecified => "internal error".to_owned(),
            ErrorReason::CallerUnauthenticated
            | ErrorReason::CallerForbidden
            | ErrorReason::AppForbidden => {
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
            retry_after: status
                .get_error_details()
                .retry_info()
                .and_then(|retry| retry.retry_delay)
                .map(|delay| delay.as_secs().max(1)),
            challenge: match reason {
                ErrorReason::TokenInvalid => Some(BEARER_INVALID),
                ErrorReason::TokenExpired => Some(BEARER_EXPIRED),
                _ => None,
            },
        }
    }
}

impl ApiError {
    /// The answer: the envelope with the request id, and `x-request-id`. The one place an
    /// error envelope is written.
    pub fn render(self, request_id: &str) -> Response {
        let mut response = (
            self.status,
            Json(Envelope {
                code: self.code.value(),
                msg: self.msg,
                data: Value::Null,
                errcode: self.errcode,
                request_id: Some(request_id.to_owned()),
            }),
        )
            .into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(request_id) {
            response
                .headers_mut()
                .insert(wxauth_proto::wire::REQUEST_ID_HEADER, value);
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        // A 503 always passes, so it always says when to come back (RFC 9110 15.6.4), even
        // when its cause named no delay (an auth-service of an older release, say).
        let retry_after = self
            .retry_after
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS));
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A handler's failure: the status now, the body later. The request-id middleware, which
/// wraps every route, renders it with [`ApiError::render`] once it knows the id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
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

    /// What each reason must become. The `match` has no wildcard, so a new reason in the
    /// proto does not compile until it has its expectation here.
    fn expected(reason: ErrorReason) -> (u16, i32) {
        match reason {
            ErrorReason::Unspecified => (500, 10500),
            ErrorReason::InvalidArgument | ErrorReason::InvalidScope => (400, 10001),
            ErrorReason::UnknownApp => (404, 10008),
            ErrorReason::SessionNotFound => (401, 10002),
            ErrorReason::CodeRejected | ErrorReason::CodeAlreadyUsed => (401, 10003),
            ErrorReason::LoginBlocked => (403, 10003),
            ErrorReason::PhoneCodeRejected => (400, 10010),
            ErrorReason::SessionKeyInvalid => (401, 10002),
            ErrorReason::RateLimited => (429, 10006),
            ErrorReason::WechatMisconfigured | ErrorReason::WechatError => (502, 10005),
            ErrorReason::WechatUnavailable => (503, 10005),
            ErrorReason::DecryptionFailed | ErrorReason::SignatureMismatch => (400, 10004),
            ErrorReason::TokenInvalid | ErrorReason::TokenExpired => (401, 10007),
            ErrorReason::CallerUnauthenticated | ErrorReason::CallerForbidden => (500, 10500),
            ErrorReason::UserNotFound | ErrorReason::UserDeleted => (404, 10009),
            ErrorReason::AccountSuspended => (403, 10011),
            ErrorReason::NicknameRejected => (400, 10012),
            ErrorReason::NotDeleting => (409, 10001),
            ErrorReason::AppForbidden => (500, 10500),
            ErrorReason::Internal => (500, 10500),
            ErrorReason::ServiceUnavailable | ErrorReason::Overloaded => (503, 10500),
        }
    }

    #[test]
    fn every_reason_has_a_status_and_code() {
        // Every value the proto defines, by number: none can be left out.
        let reasons: Vec<ErrorReason> =
            (0..).map_while(|n| ErrorReason::try_from(n).ok()).collect();
        assert!(reasons.len() >= 20, "{reasons:?}");
        for reason in reasons {
            let (status, code) = classify(reason);
            assert_eq!(
                (status.as_u16(), code.value()),
                expected(reason),
                "{reason:?}"
            );
        }
    }

    /// `retry-after` of `err` once rendered.
    fn retry_after_of(err: ApiError) -> Option<String> {
        err.render("rid")
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn every_503_says_when_to_retry_and_a_named_delay_wins() {
        let unreachable = ApiError::from(tonic::Status::unavailable("connect error"));
        assert_eq!(retry_after_of(unreachable), Some("1".into()));
        // An auth-service that names no delay (an older release) still gets one.
        let unnamed = ApiError::from(status_with("SERVICE_UNAVAILABLE", None));
        assert_eq!(retry_after_of(unnamed), Some("1".into()));
        let mut details = ErrorDetails::with_error_info(
            "RATE_LIMITED",
            wxauth_proto::ERROR_DOMAIN,
            HashMap::new(),
        );
        details.set_retry_info(Some(std::time::Duration::from_secs(60)));
        let named =
            tonic::Status::with_error_details(tonic::Code::ResourceExhausted, "slow down", details);
        assert_eq!(retry_after_of(ApiError::from(named)), Some("60".into()));
        let refused = ApiError::from(status_with("CODE_REJECTED", None));
        assert_eq!(retry_after_of(refused), None, "a retry cannot cure it");
    }

    #[test]
    fn the_wechat_errcode_and_message_travel_through() {
        let err = ApiError::from(status_with("CODE_REJECTED", Some("40029")));
        assert_eq!(
            (err.status.as_u16(), err.code.value(), err.errcode),
            (401, 10003, Some(40029))
        );
        assert_eq!(err.msg, "what to do");
    }

    #[test]
    fn a_status_without_wxauth_details_says_only_what_kind_of_failure_it_was() {
        let down = ApiError::from(tonic::Status::unavailable("tcp connect error: 127.0.0.1:1"));
        assert_eq!((down.status.as_u16(), down.code), (503, Code::Internal));
        assert!(!down.msg.contains("127.0.0.1"));
        let dropped = ApiError::from(tonic::Status::unknown(
            "error reading a body from connection",
        ));
        assert_eq!(
            (dropped.status.as_u16(), dropped.code),
            (503, Code::Internal)
        );
        let odd = ApiError::from(tonic::Status::internal("h2 protocol error"));
        assert_eq!((odd.status.as_u16(), odd.code), (500, Code::Internal));
        let unknown_reason = ApiError::from(status_with("SOMETHING_NEW", None));
        assert_eq!(
            (unknown_reason.status.as_u16(), unknown_reason.msg.as_str()),
            (500, "internal error")
        );
    }
}
