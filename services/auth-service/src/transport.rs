//! The gRPC edge: parse requests, call the flows, turn results into messages and errors
//! into `Status`. The one mapping from [`AuthError`] to a gRPC code and reason lives here.

use std::{collections::HashMap, sync::Arc};

use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{Instrument, error, info, info_span};
use wxauth_proto::{
    ERROR_DOMAIN, WECHAT_ERRCODE_KEY,
    prost_types::Timestamp,
    v1::{
        self, CompleteLoginRequest, CompleteLoginResponse, CreateSessionRequest,
        CreateSessionResponse, ErrorReason, GetJwksRequest, GetJwksResponse, GetMeRequest,
        GetMeResponse, GetUserRequest, GetUserResponse, LoginRequest, LoginResponse, LogoutRequest,
        LogoutResponse, RefreshTokenRequest, RefreshTokenResponse, RevokeUserSessionsRequest,
        RevokeUserSessionsResponse, ValidateTokenRequest, ValidateTokenResponse,
        auth_service_server::AuthService,
    },
    wire::{CALLER_KEY_HEADER, REQUEST_ID_HEADER, acceptable_request_id, new_request_id},
};

use crate::{
    callers::{Callers, Scope},
    error::AuthError,
    login::{CompleteRequest, DataKind, Login, TokenPair},
    metrics::Metrics,
    store::UserRow,
};

/// The `AuthService` implementation.
#[derive(Clone)]
pub struct AuthApi {
    login: Login,
    callers: Arc<Callers>,
    metrics: Arc<Metrics>,
}

impl AuthApi {
    /// Serves the given flows to the given callers.
    pub fn new(login: Login, callers: Callers, metrics: Arc<Metrics>) -> Self {
        Self {
            login,
            callers: Arc::new(callers),
            metrics,
        }
    }

    /// Opens the span of one call: checks the caller's key for `method` and `scope`, then
    /// runs `body` inside a span that carries the request id and the caller's name.
    async fn call<T, R, F, Fut>(
        &self,
        request: Request<T>,
        method: &'static str,
        scope: Option<Scope>,
        body: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(T) -> Fut,
        Fut: std::future::Future<Output = Result<R, AuthError>>,
    {
        let request_id = request_id(&request);
        let caller_key = request
            .metadata()
            .get(CALLER_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let span =
            info_span!("rpc", method, request_id = %request_id, caller = tracing::field::Empty);
        let started = std::time::Instant::now();
        let result = async {
            let caller = self
                .callers
                .authorize(caller_key.as_deref(), method, scope)?;
            tracing::Span::current().record("caller", caller);
            body(request.into_inner()).await
        }
        .instrument(span.clone())
        .await;
        let outcome = match &result {
            Ok(_) => "OK",
            Err(err) => classify(err).1.as_str_name(),
        };
        self.metrics.rpc(method, outcome, started.elapsed());
        span.in_scope(|| {
            result
                .map(Response::new)
                .map_err(|err| to_status(err, &request_id))
        })
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
        AuthError::TokenExpired => (Code::Unauthenticated, ErrorReason::TokenExpired),
        AuthError::CallerUnauthenticated => {
            (Code::Unauthenticated, ErrorReason::CallerUnauthenticated)
        }
        AuthError::CallerForbidden { .. } => (Code::PermissionDenied, ErrorReason::CallerForbidden),
        AuthError::UserNotFound => (Code::NotFound, ErrorReason::UserNotFound),
        AuthError::Unavailable(_) => (Code::Unavailable, ErrorReason::ServiceUnavailable),
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
        AuthError::Unavailable(cause) => {
            tracing::warn!(reason = reason.as_str_name(), cause = %error_chain(cause.as_ref()), "database unavailable");
            err.to_string()
        }
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
        .filter(|id| acceptable_request_id(id))
        .map_or_else(new_request_id, str::to_owned)
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

fn token_pair(tokens: TokenPair) -> Option<v1::TokenPair> {
    Some(v1::TokenPair {
        access_token: tokens.access_token,
        access_token_expires_at: timestamp(tokens.access_expires_at),
        refresh_token: tokens.refresh_token,
        refresh_token_expires_at: timestamp(tokens.refresh_expires_at),
        token_type: "Bearer".to_owned(),
    })
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
        self.call(
            request,
            "CreateSession",
            Some(Scope::Login),
            |req| async move {
                let created = self.login.create_session(&req.appid, &req.code).await?;
                Ok(CreateSessionResponse {
                    session_id: created.session_id,
                    expires_at: timestamp(created.expires_at),
                    has_unionid: created.has_unionid,
                })
            },
        )
        .await
    }

    async fn complete_login(
        &self,
        request: Request<CompleteLoginRequest>,
    ) -> Result<Response<CompleteLoginResponse>, Status> {
        self.call(
            request,
            "CompleteLogin",
            Some(Scope::Login),
            |req| async move {
                let parsed = CompleteRequest {
                    appid: &req.appid,
                    session_id: &req.session_id,
                    kind: data_kind(req.kind)?,
                    encrypted_data: &req.encrypted_data,
                    iv: &req.iv,
                    signed_raw_data: signed_raw_data(
                        req.raw_data.as_deref(),
                        req.signature.as_deref(),
                    )?,
                };
                let completed = self.login.complete(parsed).await?;
                Ok(CompleteLoginResponse {
                    user: Some(user_message(completed.user)),
                    tokens: token_pair(completed.tokens),
                })
            },
        )
        .await
    }

    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        self.call(request, "Login", Some(Scope::Login), |req| async move {
            let silent = self.login.login(&req.appid, &req.code).await?;
            Ok(LoginResponse {
                user: Some(user_message(silent.login.user)),
                tokens: token_pair(silent.login.tokens),
                session_id: silent.session.session_id,
                session_expires_at: timestamp(silent.session.expires_at),
            })
        })
        .await
    }

    async fn refresh_token(
        &self,
        request: Request<RefreshTokenRequest>,
    ) -> Result<Response<RefreshTokenResponse>, Status> {
        self.call(
            request,
            "RefreshToken",
            Some(Scope::Login),
            |req| async move {
                let refreshed = self.login.refresh(&req.refresh_token).await?;
                Ok(RefreshTokenResponse {
                    tokens: token_pair(refreshed.tokens),
                })
            },
        )
        .await
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        self.call(request, "Logout", Some(Scope::Login), |req| async move {
            self.login
                .logout(&req.access_token, &req.refresh_token)
                .await?;
            Ok(LogoutResponse {})
        })
        .await
    }

    async fn get_me(
        &self,
        request: Request<GetMeRequest>,
    ) -> Result<Response<GetMeResponse>, Status> {
        self.call(request, "GetMe", Some(Scope::Login), |req| async move {
            let user = self.login.me(&req.access_token).await?;
            Ok(GetMeResponse {
                user: Some(user_message(user)),
            })
        })
        .await
    }

    async fn validate_token(
        &self,
        request: Request<ValidateTokenRequest>,
    ) -> Result<Response<ValidateTokenResponse>, Status> {
        self.call(
            request,
            "ValidateToken",
            Some(Scope::Validate),
            |req| async move {
                let claims = self.login.validate(&req.token, &req.appid).await?;
                Ok(ValidateTokenResponse {
                    user_id: claims.sub.clone(),
                    appid: claims.aud.clone(),
                    openid: claims.openid.clone(),
                    unionid: claims.unionid.clone().unwrap_or_default(),
                    expires_at: timestamp(claims.exp),
                    session_id: claims.sid.clone(),
                    token_id: claims.jti.clone(),
                })
            },
        )
        .await
    }

    async fn get_jwks(
        &self,
        request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        self.call(request, "GetJwks", None, |_| async move {
            let jwks = self.login.jwks();
            Ok(GetJwksResponse {
                jwks_json: serde_json::to_string(jwks).map_err(AuthError::internal)?,
                kids: jwks.keys.iter().map(|key| key.kid.clone()).collect(),
            })
        })
        .await
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        self.call(request, "GetUser", Some(Scope::Admin), |req| async move {
            let user = self.login.get_user(&req.user_id).await?;
            Ok(GetUserResponse {
                user: Some(user_message(user)),
            })
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<RevokeUserSessionsRequest>,
    ) -> Result<Response<RevokeUserSessionsResponse>, Status> {
        self.call(
            request,
            "RevokeUserSessions",
            Some(Scope::Admin),
            |req| async move {
                let revoked = self.login.revoke_user(&req.user_id).await?;
                Ok(RevokeUserSessionsResponse {
                    revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
                })
            },
        )
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
