//! The OAuth 2.0 and OpenID Connect surface's own shapes: its errors (RFC 6749 5.2, not the
//! envelope: stock libraries read `error`), its forms and its answers, and the one table from
//! an auth-service reason to an OAuth error.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tonic_types::StatusExt;
use utoipa::ToSchema;
use wxauth_proto::v1::ErrorReason;

use crate::envelope::ApiError;

/// The grant of a refresh token (RFC 6749 6).
pub const GRANT_REFRESH: &str = "refresh_token";
/// The token exchange (RFC 8693), by which a `wx.login()` code becomes tokens.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The subject token type of a `wx.login()` code.
pub const WX_LOGIN_CODE: &str = "urn:wxauth:params:oauth:token-type:wx-login-code";
/// What a token exchange issues (RFC 8693 3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Namespaced claims: what is wxauth's own beside the standard ones.
pub const CLAIM_OPENID: &str = "urn:wxauth:openid";
/// The unionid claim.
pub const CLAIM_UNIONID: &str = "urn:wxauth:unionid";
/// The account claim.
pub const CLAIM_ACCOUNT_ID: &str = "urn:wxauth:account_id";

/// An OAuth error answer: `{"error": ..., "error_description": ...}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The RFC's error code.
    pub error: &'static str,
    /// What went wrong and what to do.
    pub description: String,
    /// Seconds to wait before trying again (a 429 or 503).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate`, when the client must authenticate.
    pub challenge: Option<&'static str>,
}

/// The body of an OAuth error (RFC 6749 5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`,
    /// `invalid_scope`, `temporarily_unavailable`, `server_error`.
    pub error: String,
    /// What went wrong and what to do.
    pub error_description: String,
}

impl OAuthError {
    /// A 400 with `error`.
    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// `invalid_request`: a parameter is missing, repeated or malformed.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::bad("invalid_request", description)
    }

    /// `invalid_client` (401): the client did not authenticate, or not as a caller that may.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            challenge: Some("Basic realm=\"wxauth\""),
            ..Self::bad("invalid_client", description)
        }
    }

    /// From the gateway's own refusal of a request (its body, its size): the same status.
    pub fn from_api(err: ApiError) -> Self {
        Self {
            status: err.status,
            retry_after: err.retry_after,
            ..Self::invalid_request(err.msg)
        }
    }

    /// From an auth-service answer: the one table from its reasons to OAuth's errors.
    pub fn from_status(status: &tonic::Status) -> Self {
        let reason = status
            .get_error_details()
            .error_info()
            .filter(|info| info.domain == wxauth_proto::ERROR_DOMAIN)
            .and_then(|info| ErrorReason::from_str_name(&info.reason));
        let retry_after = status
            .get_error_details()
            .retry_info()
            .and_then(|retry| retry.retry_delay)
            .map(|delay| delay.as_secs().max(1));
        let message = status.message().to_owned();
        let unavailable = |status_code| Self {
            status: status_code,
            retry_after: Some(retry_after.unwrap_or(1)),
            ..Self::bad(
                "temporarily_unavailable",
                "the login service or WeChat is unavailable: retry later",
            )
        };
        match reason {
            Some(
                ErrorReason::InvalidArgument
                | ErrorReason::DecryptionFailed
                | ErrorReason::SignatureMismatch,
            ) => Self::invalid_request(message),
            Some(ErrorReason::InvalidScope) => Self::bad("invalid_scope", message),
            Some(ErrorReason::UnknownApp) => Self::bad(
                "invalid_client",
                "client_id is not an appid this service serves",
            ),
            Some(
                ErrorReason::CodeRejected
                | ErrorReason::CodeAlreadyUsed
                | ErrorReason::SessionNotFound
                | ErrorReason::TokenInvalid
                | ErrorReason::TokenExpired
                | ErrorReason::LoginBlocked
                | ErrorReason::AccountSuspended
                | ErrorReason::UserNotFound
                | ErrorReason::UserDeleted,
            ) => Self::bad("invalid_grant", message),
            Some(ErrorReason::RateLimited) => unavailable(StatusCode::TOO_MANY_REQUESTS),
            Some(
                ErrorReason::WechatUnavailable
                | ErrorReason::ServiceUnavailable
                | ErrorReason::Overloaded,
            ) => unavailable(StatusCode::SERVICE_UNAVAILABLE),
            Some(ErrorReason::CallerUnauthenticated | ErrorReason::CallerForbidden) => {
                Self::invalid_client(
                    "the client's credentials are not those of a caller that may introspect (the validate scope)",
                )
            }
            Some(
                ErrorReason::WechatMisconfigured
                | ErrorReason::WechatError
                | ErrorReason::PhoneCodeRejected
                | ErrorReason::SessionKeyInvalid
                | ErrorReason::NicknameRejected
                | ErrorReason::AppForbidden
                | ErrorReason::NotDeleting
                | ErrorReason::Internal
                | ErrorReason::Unspecified,
            )
            | None => match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
                    if reason.is_none() =>
                {
                    unavailable(StatusCode::SERVICE_UNAVAILABLE)
                }
                _ => Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..Self::bad("server_error", "internal error: retry later")
                },
            },
        }
    }
}

impl From<tonic::Status> for OAuthError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

impl From<ApiError> for OAuthError {
    fn from(err: ApiError) -> Self {
        Self::from_api(err)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(OAuthErrorBody {
                error: self.error.to_owned(),
                error_description: self.description,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The form of `POST /oauth/token` (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenForm {
    /// `refresh_token`, or `urn:ietf:params:oauth:grant-type:token-exchange` for a
    /// `wx.login()` code.
    #[schema(value_type = String, required = true, min_length = 1)]
    pub grant_type: Option<String>,
    /// The refresh token (grant `refresh_token`).
    #[schema(max_length = 1024)]
    pub refresh_token: Option<String>,
    /// The `wx.login()` code (the token exchange).
    #[schema(max_length = 128)]
    pub subject_token: Option<String>,
    /// `urn:wxauth:params:oauth:token-type:wx-login-code` (the token exchange).
    pub subject_token_type: Option<String>,
    /// The appid (the token exchange; a public client: the code is the credential).
    #[schema(pattern = "^wx[0-9a-f]{16}$")]
    pub client_id: Option<String>,
    /// Space-separated scopes: `openid` (an ID token too), `profile`, `phone`.
    #[schema(max_length = 256)]
    pub scope: Option<String>,
    /// What the token exchange should issue; only an access token is.
    pub requested_token_type: Option<String>,
}

/// A token endpoint answer (RFC 6749 5.1, RFC 8693 2.2.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The new refresh token (single use).
    pub refresh_token: String,
    /// The scopes granted.
    pub scope: String,
    /// The ID token, when `openid` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// What was issued, for a token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// The form of `POST /oauth/introspect` and `POST /oauth/revoke`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRefForm {
    /// The token.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 4096)]
    pub token: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_type_hint: Option<String>,
    /// The appid of a public client (revocation); ignored.
    pub client_id: Option<String>,
}

/// An introspection answer (RFC 7662 2.2): `{"active": false}` for anything not usable.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the token is usable now.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The scopes granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The appid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The wxauth user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audience (the appid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The session family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's openid.
    #[serde(rename = "urn:wxauth:openid", skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    /// The user's unionid.
    #[serde(rename = "urn:wxauth:unionid", skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// The user's account.
    #[serde(
        rename = "urn:wxauth:account_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub account_id: Option<String>,
}

/// The standard claims of the userinfo endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    /// The wxauth user id.
    pub sub: String,
    /// The nickname (scope `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The avatar URL (scope `profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// The phone number, `+<country code> <number>` (scope `phone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Always true with a number: WeChat gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    /// `urn:wxauth:openid`, `urn:wxauth:unionid`, `urn:wxauth:account_id`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub namespaced: Map<String, Value>,
}

/// Text the auth-service sends empty when there is none.
pub fn known(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    fn refused(reason: &str) -> OAuthError {
        OAuthError::from_status(&tonic::Status::with_error_details(
            tonic::Code::Unauthenticated,
            "what to do",
            ErrorDetails::with_error_info(reason, wxauth_proto::ERROR_DOMAIN, HashMap::new()),
        ))
    }

    #[test]
    fn every_reason_is_an_oauth_error_and_none_is_a_500_by_a_clients_fault() {
        let reasons: Vec<ErrorReason> =
            (0..).map_while(|n| ErrorReason::try_from(n).ok()).collect();
        for reason in reasons {
            let err = refused(reason.as_str_name());
            let expected_server = matches!(
                reason,
                ErrorReason::Internal
                    | ErrorReason::Unspecified
                    | ErrorReason::WechatMisconfigured
                    | ErrorReason::WechatError
                    | ErrorReason::PhoneCodeRejected
                    | ErrorReason::SessionKeyInvalid
                    | ErrorReason::NicknameRejected
                    | ErrorReason::AppForbidden
                    | ErrorReason::NotDeleting
            );
            assert_eq!(
                err.status == StatusCode::INTERNAL_SERVER_ERROR,
                expected_server,
                "{reason:?}"
            );
        }
        assert_eq!(refused("CODE_REJECTED").error, "invalid_grant");
        assert_eq!(refused("INVALID_SCOPE").error, "invalid_scope");
        assert_eq!(refused("UNKNOWN_APP").error, "invalid_client");
        let busy = refused("WECHAT_UNAVAILABLE");
        assert_eq!(
            (busy.status, busy.error),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        );
        assert_eq!(busy.retry_after, Some(1));
    }
}
