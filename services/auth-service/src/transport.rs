//! The gRPC edge: parse requests, call the flows, turn results into messages and errors
//! into `Status`. The one mapping from [`AuthError`] to a gRPC code and reason lives here.

use std::collections::HashMap;

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{Instrument, error, info, info_span};
use wxauth_proto::{
    ERROR_DOMAIN, REQUEST_ID_HEADER, WECHAT_ERRCODE_KEY,
    prost_types::Timestamp,
    v1::{
        self, CompleteLoginRequest, CompleteLoginResponse, CreateSessionRequest,
        CreateSessionResponse, ErrorReason, GetUserRequest, GetUserResponse, ValidateTokenRequest,
        ValidateTokenResponse, auth_service_server::AuthService,
    },
};

use crate::{
    error::AuthError,
    login::{CompleteRequest, DataKind, Login},
    store::UserRow,
};

/// The `AuthService` implementation.
#[derive(Clone)]
pub struct AuthApi {
    login: Login,
}

impl AuthApi {
    /// Serves the given flows.
    pub fn new(login: Login) -> Self {
        Self { login }
    }
}

/// The gRPC code and reason of each error. Exhaustive, with no wildcard: a new variant does
/// not compile until it is given its place here.
pub fn classify(err: &AuthError) -> (Code, ErrorReason) {
    match err {
        AuthError::InvalidArgument(_) => (Code::InvalidArgument, ErrorReason::InvalidArgument),
        AuthError::UnknownApp => (Code::NotFound, ErrorReason::UnknownApp),
        AuthError::SessionNotFound => (Code::Unauthenticated, ErrorReason::SessionNotFound),
        AuthError::CodeRejected { .. } => (Code::Unauthenticated, ErrorReason::CodeRejected),
        AuthError::CodeAlreadyUsed => (Code::Unauthenticated, ErrorReason::CodeAlreadyUsed),
        AuthError::LoginBlocked { .. } => (Code::PermissionDenied, ErrorReason::LoginBlocked),
        AuthError::RateLimited { .. } => (Code::ResourceExhausted, ErrorReason::RateLimited),
        AuthError::WeChatMisconfigured { .. } => {
            (Code::FailedPrecondition, ErrorReason::WechatMisconfigured)
        }
        AuthError::WeChatUnavailable { .. } => (Code::Unavailable, ErrorReason::WechatUnavailable),
        AuthError::WeChatFailed { .. } => (Code::Unknown, ErrorReason::WechatError),
        AuthError::DecryptionFailed => (Code::InvalidArgument, ErrorReason::DecryptionFailed),
        AuthError::SignatureMismatch => (Code::InvalidArgument, ErrorReason::SignatureMismatch),
        AuthError::TokenInvalid => (Code::Unauthenticated, ErrorReason::TokenInvalid),
        AuthError::UserNotFound => (Code::NotFound, ErrorReason::UserNotFound),
        AuthError::Internal(_) => (Code::Internal, ErrorReason::Internal),
    }
}

/// Turns an error into the `Status` a caller sees, logging it with the request id.
fn to_status(err: AuthError, request_id: &str) -> Status {
    let (code, reason) = classify(&err);
    let mut metadata = HashMap::new();
    if let Some(errcode) = err.wechat_errcode() {
        metadata.insert(WECHAT_ERRCODE_KEY.to_owned(), errcode.to_string());
    }
    let message = match &err {
        AuthError::Internal(cause) => {
            error!(reason = reason.as_str_name(), cause = %error_chain(cause.as_ref()), "request failed");
            format!(
                "internal error; the auth-service logs have the cause under request id {request_id}"
            )
        }
        _ => {
            info!(reason = reason.as_str_name(), "request refused");
            err.to_string()
        }
    };
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str_name(), ERROR_DOMAIN, metadata),
    )
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The caller's request id, or a new one. Only short ids of safe characters are taken, so a
/// caller cannot inject text into the logs.
fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            crate::secrets::random_bytes::<8>().map_or_else(|_| "none".to_owned(), hex::encode)
        })
}

fn timestamp(unix_seconds: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: unix_seconds,
        nanos: 0,
    })
}

fn user_message(user: UserRow) -> v1::User {
    v1::User {
        user_id: user.user_id.to_string(),
        appid: user.appid,
        openid: user.openid,
        unionid: user.unionid.unwrap_or_default(),
        nickname: user.nickname.unwrap_or_default(),
        avatar_url: user.avatar_url.unwrap_or_default(),
        gender: user.gender.unwrap_or_default(),
        language: user.language.unwrap_or_default(),
        city: user.city.unwrap_or_default(),
        province: user.province.unwrap_or_default(),
        country: user.country.unwrap_or_default(),
        phone_number: user.phone_number.unwrap_or_default(),
        pure_phone_number: user.pure_phone_number.unwrap_or_default(),
        phone_country_code: user.phone_country_code.unwrap_or_default(),
        created_at: timestamp(user.created_at),
        updated_at: timestamp(user.updated_at),
    }
}

fn data_kind(raw: i32) -> Result<DataKind, AuthError> {
    match v1::DataKind::try_from(raw) {
        Ok(v1::DataKind::UserInfo) => Ok(DataKind::UserInfo),
        Ok(v1::DataKind::Phone) => Ok(DataKind::Phone),
        Ok(v1::DataKind::Unspecified) | Err(_) => Err(AuthError::InvalidArgument(
            "kind must be DATA_KIND_USER_INFO or DATA_KIND_PHONE".into(),
        )),
    }
}

/// rawData and signature go together; empty strings count as absent.
fn signed_raw_data<'a>(
    raw_data: Option<&'a str>,
    signature: Option<&'a str>,
) -> Result<Option<(&'a str, &'a str)>, AuthError> {
    match (
        raw_data.filter(|text| !text.is_empty()),
        signature.filter(|text| !text.is_empty()),
    ) {
        (Some(raw), Some(sig)) => Ok(Some((raw, sig))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(AuthError::InvalidArgument(
            "rawData was sent without its signature: send both or neither".into(),
        )),
        (None, Some(_)) => Err(AuthError::InvalidArgument(
            "signature was sent without rawData: send both or neither".into(),
        )),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        let request_id = request_id(&request);
        let span = info_span!("rpc", method = "CreateSession", request_id = %request_id);
        let req = request.into_inner();
        async {
            let created = self
                .login
                .create_session(&req.appid, &req.code)
                .await
                .map_err(|err| to_status(err, &request_id))?;
            Ok(Response::new(CreateSessionResponse {
                session_id: created.session_id,
                expires_at: timestamp(created.expires_at),
                has_unionid: created.has_unionid,
            }))
        }
        .instrument(span)
        .await
    }

    async fn complete_login(
        &self,
        request: Request<CompleteLoginRequest>,
    ) -> Result<Response<CompleteLoginResponse>, Status> {
        let request_id = request_id(&request);
        let span = info_span!("rpc", method = "CompleteLogin", request_id = %request_id);
        let req = request.into_inner();
        async {
            let parsed = data_kind(req.kind).and_then(|kind| {
                Ok(CompleteRequest {
                    appid: &req.appid,
                    session_id: &req.session_id,
                    kind,
                    encrypted_data: &req.encrypted_data,
                    iv: &req.iv,
                    signed_raw_data: signed_raw_data(
                        req.raw_data.as_deref(),
                        req.signature.as_deref(),
                    )?,
                })
            });
            let completed = match parsed {
                Ok(parsed) => self.login.complete(parsed).await,
                Err(err) => Err(err),
            }
            .map_err(|err| to_status(err, &request_id))?;
            Ok(Response::new(CompleteLoginResponse {
                user: Some(user_message(completed.user)),
                token: completed.token,
                token_expires_at: timestamp(completed.token_expires_at),
            }))
        }
        .instrument(span)
        .await
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        let request_id = request_id(&request);
        let span = info_span!("rpc", method = "ValidateToken", request_id = %request_id);
        let req = request.into_inner();
        async {
            let (user, expires_at) = self
                .login
                .validate_token(&req.token)
                .await
                .map_err(|err| to_status(err, &request_id))?;
            Ok(Response::new(ValidateTokenResponse {
                user_id: user.user_id.to_string(),
                appid: user.appid,
                openid: user.openid,
                unionid: user.unionid.unwrap_or_default(),
                expires_at: timestamp(expires_at),
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let request_id = request_id(&request);
        let span = info_span!("rpc", method = "GetUser", request_id = %request_id);
        let req = request.into_inner();
        async {
            let user = self
                .login
                .get_user(&req.user_id)
                .await
                .map_err(|err| to_status(err, &request_id))?;
            Ok(Response::new(GetUserResponse {
                user: Some(user_message(user)),
            }))
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use wxauth_wechat::Errcode;

    use super::*;

    /// Every variant, with the code and reason it must get. Adding a variant to AuthError
    /// breaks `classify` until it is mapped, and this list until it is tested.
    #[test]
    fn every_error_has_its_code_and_reason() {
        let errcode = Errcode::InvalidCode;
        let cases: Vec<(AuthError, Code, ErrorReason)> = vec![
            (
                AuthError::InvalidArgument("x".into()),
                Code::InvalidArgument,
                ErrorReason::InvalidArgument,
            ),
            (
                AuthError::UnknownApp,
                Code::NotFound,
                ErrorReason::UnknownApp,
            ),
            (
                AuthError::SessionNotFound,
                Code::Unauthenticated,
                ErrorReason::SessionNotFound,
            ),
            (
                AuthError::CodeRejected { errcode },
                Code::Unauthenticated,
                ErrorReason::CodeRejected,
            ),
            (
                AuthError::CodeAlreadyUsed,
                Code::Unauthenticated,
                ErrorReason::CodeAlreadyUsed,
            ),
            (
                AuthError::LoginBlocked { errcode },
                Code::PermissionDenied,
                ErrorReason::LoginBlocked,
            ),
            (
                AuthError::RateLimited { errcode },
                Code::ResourceExhausted,
                ErrorReason::RateLimited,
            ),
            (
                AuthError::WeChatMisconfigured { errcode },
                Code::FailedPrecondition,
                ErrorReason::WechatMisconfigured,
            ),
            (
                AuthError::WeChatUnavailable {
                    errcode: None,
                    what: "busy",
                },
                Code::Unavailable,
                ErrorReason::WechatUnavailable,
            ),
            (
                AuthError::WeChatFailed { errcode: None },
                Code::Unknown,
                ErrorReason::WechatError,
            ),
            (
                AuthError::DecryptionFailed,
                Code::InvalidArgument,
                ErrorReason::DecryptionFailed,
            ),
            (
                AuthError::SignatureMismatch,
                Code::InvalidArgument,
                ErrorReason::SignatureMismatch,
            ),
            (
                AuthError::TokenInvalid,
                Code::Unauthenticated,
                ErrorReason::TokenInvalid,
            ),
            (
                AuthError::UserNotFound,
                Code::NotFound,
                ErrorReason::UserNotFound,
            ),
            (
                AuthError::internal(std::io::Error::other("disk")),
                Code::Internal,
                ErrorReason::Internal,
            ),
        ];
        for (err, code, reason) in cases {
            assert_eq!(classify(&err), (code, reason), "{err:?}");
        }
    }

    #[test]
    fn wechat_errcodes_map_to_what_the_caller_must_do() {
        use wxauth_wechat::WeChatError;
        let cases = [
            (-1, ErrorReason::WechatUnavailable),
            (40029, ErrorReason::CodeRejected),
            (40163, ErrorReason::CodeRejected),
            (45011, ErrorReason::RateLimited),
            (40226, ErrorReason::LoginBlocked),
            (40013, ErrorReason::WechatMisconfigured),
            (40125, ErrorReason::WechatMisconfigured),
            (61099, ErrorReason::WechatError),
        ];
        for (raw, reason) in cases {
            let err = AuthError::from(WeChatError::Api {
                errcode: Errcode::from_raw(raw),
            });
            assert_eq!(classify(&err).1, reason, "errcode {raw}");
            assert_eq!(
                err.wechat_errcode().map(Errcode::raw),
                Some(raw),
                "errcode {raw} is kept"
            );
        }
    }

    #[test]
    fn an_internal_error_reaches_the_client_as_a_request_id_only() {
        let status = to_status(
            AuthError::internal(std::io::Error::other("password=hunter2")),
            "rid-1",
        );
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("rid-1"));
        assert!(!status.message().contains("hunter2"));
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn raw_data_and_signature_go_together() {
        assert!(signed_raw_data(Some("r"), Some("s")).unwrap().is_some());
        assert!(signed_raw_data(Some(""), None).unwrap().is_none());
        assert!(signed_raw_data(Some("r"), None).is_err());
        assert!(signed_raw_data(None, Some("s")).is_err());
    }
}
