//! The `AuthService` RPCs. Each one parses its request into checked input, calls one flow,
//! and builds the answer; nothing else.

use tonic::{Request, Response, Status};
use wxauth_proto::v1::{
    BindPhoneNumberRequest, BindPhoneNumberResponse, CheckSessionKeyRequest,
    CheckSessionKeyResponse, CompleteLoginRequest, CompleteLoginResponse, CreateSessionRequest,
    CreateSessionResponse, DeleteMeRequest, DeleteMeResponse, DeleteUserRequest,
    DeleteUserResponse, ExportMeRequest, ExportMeResponse, ExportUserRequest, ExportUserResponse,
    FindUsersRequest, FindUsersResponse, GetJwksRequest, GetJwksResponse, GetMeRequest,
    GetMeResponse, GetUserRequest, GetUserResponse, IntrospectTokenRequest,
    IntrospectTokenResponse, ListAccountUsersRequest, ListAccountUsersResponse,
    ListAppAccessTokensRequest, ListAppAccessTokensResponse, ListAuditEventsRequest,
    ListAuditEventsResponse, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse,
    RefreshTokenRequest, RefreshTokenResponse, ReplayEventsRequest, ReplayEventsResponse,
    ResetSessionKeyRequest, ResetSessionKeyResponse, RestoreUserRequest, RestoreUserResponse,
    RevokeUserSessionsRequest, RevokeUserSessionsResponse, SetUserStatusRequest,
    SetUserStatusResponse, UpdateProfileRequest, UpdateProfileResponse, ValidateTokenRequest,
    ValidateTokenResponse, auth_service_server::AuthService,
};

use wxauth_wechat::PhoneCode;

use super::{
    AuthApi, Rpc,
    convert::{self, PhoneShown, timestamp, token_pair, user_message},
};
use crate::{
    callers::Scope,
    domain::{AuditKind, Bearer, FilledProfile, scope::Scopes},
    error::AuthError,
};

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        self.call(
            request,
            Rpc::login("CreateSession", |req: &CreateSessionRequest| &req.appid),
            |req, _| async move {
                let (appid, code) = (convert::appid(&req.appid)?, convert::code(&req.code)?);
                let created = self.logins.create_session(&appid, &code).await?;
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
            Rpc::login("CompleteLogin", |req: &CompleteLoginRequest| &req.appid),
            |req, context| async move {
                let completed = self
                    .logins
                    .complete(convert::complete_request(req)?, &context)
                    .await?;
                Ok(CompleteLoginResponse {
                    user: Some(user_message(completed.user, PhoneShown::Full)),
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
        let rpc = Rpc::login("Login", |req: &LoginRequest| &req.appid);
        self.call(request, rpc, |req, context| async move {
            let (appid, code) = (convert::appid(&req.appid)?, convert::code(&req.code)?);
            let asked = Scopes::parse(&req.scope)?;
            let silent = self
                .logins
                .silent(&appid, &code, asked.as_ref(), &context)
                .await?;
            Ok(LoginResponse {
                user: Some(user_message(silent.login.user, PhoneShown::Full)),
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
            Rpc::new("RefreshToken", Some(Scope::Login)),
            |req, context| async move {
                let presented = Bearer::parse("refresh_token", req.refresh_token)?;
                let asked = Scopes::parse(&req.scope)?;
                let refreshed = self
                    .tokens
                    .refresh(&presented, asked.as_ref(), &context)
                    .await?;
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
        let rpc = Rpc::new("Logout", Some(Scope::Login));
        self.call(request, rpc, |req, context| async move {
            self.tokens.logout(convert::logout(req)?, &context).await?;
            Ok(LogoutResponse {})
        })
        .await
    }

    async fn get_me(
        &self,
        request: Request<GetMeRequest>,
    ) -> Result<Response<GetMeResponse>, Status> {
        let rpc = Rpc::new("GetMe", Some(Scope::Login));
        self.call(request, rpc, |req, context| async move {
            let token = Bearer::parse("access_token", req.access_token)?;
            Ok(GetMeResponse {
                user: Some(user_message(
                    self.users.me(&token, &context).await?,
                    PhoneShown::Full,
                )),
            })
        })
        .await
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<UpdateProfileResponse>, Status> {
        let rpc = Rpc::new("UpdateProfile", Some(Scope::Login));
        self.call(request, rpc, |req, context| async move {
            let token = Bearer::parse("access_token", req.access_token)?;
            let filled = FilledProfile::parse(req.nickname, req.avatar_url)?;
            Ok(UpdateProfileResponse {
                user: Some(user_message(
                    self.profiles.update(&token, &filled, &context).await?,
                    PhoneShown::Full,
                )),
            })
        })
        .await
    }

    async fn bind_phone_number(
        &self,
        request: Request<BindPhoneNumberRequest>,
    ) -> Result<Response<BindPhoneNumberResponse>, Status> {
        let rpc = Rpc::audited("BindPhoneNumber", Scope::Login, AuditKind::PhoneBindRefused);
        self.call(request, rpc, |req, context| async move {
            let token = Bearer::parse("access_token", req.access_token)?;
            let code = PhoneCode::parse("code", &req.code)?;
            let user = self
                .wechat_calls
                .bind_phone(&token, &code, &context)
                .await?;
            Ok(BindPhoneNumberResponse {
                user: Some(user_message(user, PhoneShown::Full)),
            })
        })
        .await
    }

    async fn list_app_access_tokens(
        &self,
        request: Request<ListAppAccessTokensRequest>,
    ) -> Result<Response<ListAppAccessTokensResponse>, Status> {
        let rpc = Rpc::new("ListAppAccessTokens", Some(Scope::Admin));
        self.call(request, rpc, |_, context| async move {
            let statuses = self.wechat_calls.app_tokens().await?;
            Ok(ListAppAccessTokensResponse {
                tokens: statuses
                    .into_iter()
                    .filter(|status| context.reach.app(&status.appid).is_ok())
                    .map(convert::app_token_status)
                    .collect(),
            })
        })
        .await
    }

    async fn check_session_key(
        &self,
        request: Request<CheckSessionKeyRequest>,
    ) -> Result<Response<CheckSessionKeyResponse>, Status> {
        let rpc = Rpc::new("CheckSessionKey", Some(Scope::Validate));
        self.call(request, rpc, |req, context| async move {
            let state = self
                .wechat_calls
                .check_session_key(convert::user_id(&req.user_id)?, &context)
                .await?;
            Ok(CheckSessionKeyResponse {
                state: convert::key_state(state).into(),
            })
        })
        .await
    }

    async fn reset_session_key(
        &self,
        request: Request<ResetSessionKeyRequest>,
    ) -> Result<Response<ResetSessionKeyResponse>, Status> {
        let rpc = Rpc::new("ResetSessionKey", Some(Scope::Admin));
        self.call(request, rpc, |req, context| async move {
            self.wechat_calls
                .reset_session_key(convert::user_id(&req.user_id)?, &context)
                .await?;
            Ok(ResetSessionKeyResponse {})
        })
        .await
    }

    async fn list_account_users(
        &self,
        request: Request<ListAccountUsersRequest>,
    ) -> Result<Response<ListAccountUsersResponse>, Status> {
        let rpc = Rpc::new("ListAccountUsers", Some(Scope::Admin));
        self.call(request, rpc, |req, context| async move {
            let account_id = convert::account_id(&req.account_id)?;
            let users = self.users.of_account(account_id, &context).await?;
            self.audit
                .read("ListAccountUsers", None, Some(account_id), &context);
            let shown = PhoneShown::to(&context);
            Ok(ListAccountUsersResponse {
                users: users
                    .into_iter()
                    .map(|user| user_message(user, shown))
                    .collect(),
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
            Rpc::new("ValidateToken", Some(Scope::Validate)),
            |req, context| async move {
                let token = Bearer::parse("token", req.token)?;
                let claims = self
                    .tokens
                    .validate(&token, convert::audience(&req.appid))
                    .await?;
                context.reach.app(&claims.aud)?;
                Ok(ValidateTokenResponse {
                    user_id: claims.sub.clone(),
                    appid: claims.aud.clone(),
                    openid: claims.openid.clone(),
                    unionid: claims.unionid.clone().unwrap_or_default(),
                    expires_at: timestamp(claims.exp),
                    session_id: claims.sid.clone(),
                    token_id: claims.jti.clone(),
                    account_id: claims.acc.clone().unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_jwks(
        &self,
        request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        self.call(request, Rpc::new("GetJwks", None), |_, _| async move {
            let jwks = self.tokens.jwks();
            Ok(GetJwksResponse {
                jwks_json: serde_json::to_string(jwks).map_err(AuthError::internal)?,
                kids: jwks.keys.iter().map(|key| key.kid.clone()).collect(),
                issuer: self.tokens.issuer().unwrap_or_default().to_owned(),
            })
        })
        .await
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let rpc = Rpc::new("GetUser", Some(Scope::Admin));
        self.call(request, rpc, |req, context| async move {
            let user = self
                .users
                .get_within_reach(convert::user_id(&req.user_id)?, &context)
                .await?;
            self.audit.read("GetUser", Some(user.id), None, &context);
            Ok(GetUserResponse {
                user: Some(user_message(user, PhoneShown::to(&context))),
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
            Rpc::new("RevokeUserSessions", Some(Scope::Admin)),
            |req, context| async move {
                let revoked = self
                    .users
                    .revoke_sessions(convert::user_id(&req.user_id)?, &context)
                    .await?;
                Ok(RevokeUserSessionsResponse {
                    revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
                })
            },
        )
        .await
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        self.call(
            request,
            Rpc::new("ListAuditEvents", Some(Scope::Admin)),
            |req, context| async move {
                let mut filter = convert::audit_filter(&req)?;
                filter.apps = context.reach.apps().map(<[String]>::to_vec);
                let events = self.users.audit_trail(&filter, &context).await?;
                self.audit
                    .read("ListAuditEvents", filter.user_id, None, &context);
                let next_before_event_id = if events.len() as i64 == filter.limit {
                    events.last().map_or(0, |event| event.id)
                } else {
                    0
                };
                Ok(ListAuditEventsResponse {
                    events: events.into_iter().map(convert::audit_event).collect(),
                    next_before_event_id,
                })
            },
        )
        .await
    }

    async fn delete_me(
        &self,
        request: Request<DeleteMeRequest>,
    ) -> Result<Response<DeleteMeResponse>, Status> {
        let rpc = Rpc::new("DeleteMe", Some(Scope::Login));
        self.call(request, rpc, |req, context| {
            self.delete_me_rpc(req, context)
        })
        .await
    }

    async fn export_me(
        &self,
        request: Request<ExportMeRequest>,
    ) -> Result<Response<ExportMeResponse>, Status> {
        let rpc = Rpc::new("ExportMe", Some(Scope::Login));
        self.call(request, rpc, |req, context| {
            self.export_me_rpc(req, context)
        })
        .await
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let rpc = Rpc::new("DeleteUser", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.delete_user_rpc(req, context)
        })
        .await
    }

    async fn restore_user(
        &self,
        request: Request<RestoreUserRequest>,
    ) -> Result<Response<RestoreUserResponse>, Status> {
        let rpc = Rpc::new("RestoreUser", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.restore_user_rpc(req, context)
        })
        .await
    }

    async fn export_user(
        &self,
        request: Request<ExportUserRequest>,
    ) -> Result<Response<ExportUserResponse>, Status> {
        let rpc = Rpc::new("ExportUser", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.export_user_rpc(req, context)
        })
        .await
    }

    async fn set_user_status(
        &self,
        request: Request<SetUserStatusRequest>,
    ) -> Result<Response<SetUserStatusResponse>, Status> {
        let rpc = Rpc::new("SetUserStatus", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.set_user_status_rpc(req, context)
        })
        .await
    }

    async fn find_users(
        &self,
        request: Request<FindUsersRequest>,
    ) -> Result<Response<FindUsersResponse>, Status> {
        let rpc = Rpc::new("FindUsers", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.find_users_rpc(req, context)
        })
        .await
    }

    async fn introspect_token(
        &self,
        request: Request<IntrospectTokenRequest>,
    ) -> Result<Response<IntrospectTokenResponse>, Status> {
        let rpc = Rpc::new("IntrospectToken", Some(Scope::Validate));
        self.call(request, rpc, |req, context| {
            self.introspect_token_rpc(req, context)
        })
        .await
    }

    async fn replay_events(
        &self,
        request: Request<ReplayEventsRequest>,
    ) -> Result<Response<ReplayEventsResponse>, Status> {
        let rpc = Rpc::new("ReplayEvents", Some(Scope::Admin));
        self.call(request, rpc, |req, context| {
            self.replay_events_rpc(req, context)
        })
        .await
    }
}
