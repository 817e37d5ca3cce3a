//! `/v1/me`: what a logged-in user reads and changes about themselves, with their bearer
//! token, which is checked before a body is read.

use axum::{
    extract::{Request, State},
    http::HeaderMap,
    response::Response,
};
use wxauth_proto::v1::{
    BindPhoneNumberRequest, DeleteMeRequest, ExportMeRequest, GetMeRequest, UpdateProfileRequest,
};

use crate::{
    bearer, body,
    envelope::{self, ApiError, Envelope, ErrorEnvelope},
    input,
    request_id::RequestId,
    state::AppState,
    views::{DeletedView, PhoneBody, ProfileBody, UserView},
};

/// `GET /v1/me` with `authorization: Bearer <access_token>`: the user.
#[utoipa::path(get, path = "/v1/me", tag = "v1",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the user", body = Envelope<UserView>),
        (status = 401, description = "10007: no token, or an invalid or expired one", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let message = GetMeRequest {
        access_token: bearer::checked(&state, &headers).await?,
    };
    let me = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(message.clone(), &request_id);
            async move { auth.get_me(request).await }
        })
        .await?
        .into_inner();
    Ok(envelope::ok(me.user.map(UserView::from)))
}

/// `POST /v1/me/profile` `{nickname?, avatar_url?}`: the user's own profile.
#[utoipa::path(post, path = "/v1/me/profile", tag = "v1",
    description = "The user fills in their nickname and avatar (chooseAvatar, the nickname input). Either or both; what is not sent is kept. A later login never overwrites them with WeChat's placeholder.",
    request_body = ProfileBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the user, as stored now", body = Envelope<UserView>),
        (status = 400, description = "10001: nickname or avatar_url breaks its rule (the avatar on a host the app does not keep avatars on), or neither was sent; 10012: WeChat's content check refused the nickname (ask for another)", body = ErrorEnvelope),
        (status = 401, description = "10007: no token, or an invalid or expired one", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 429, description = "10006: the app's quota of calls to WeChat (retry-after)", body = ErrorEnvelope),
        (status = 503, description = "10005: WeChat's content check could not be made (retry-after); 10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn update_profile(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let access_token = bearer::checked(&state, request.headers()).await?;
    let given: ProfileBody = body::parsed(&state, request).await?;
    let message = UpdateProfileRequest {
        access_token,
        nickname: given.nickname,
        avatar_url: given.avatar_url,
    };
    let updated = state
        .auth
        .clone()
        .update_profile(state.upstream(message, &request_id))
        .await?
        .into_inner();
    Ok(envelope::ok(updated.user.map(UserView::from)))
}

/// `POST /v1/me/phone` `{code}`: binds the phone number behind the `getPhoneNumber`
/// button's code to the user.
#[utoipa::path(post, path = "/v1/me/phone", tag = "v1",
    description = "Binds the phone number behind the code of the getPhoneNumber button (e.detail.code; not the login code) to the user. The code works once, for five minutes.",
    request_body = PhoneBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the user, with the phone number", body = Envelope<UserView>),
        (status = 400, description = "10001: code missing or malformed; 10010: WeChat refused the code (tap the button again)", body = ErrorEnvelope),
        (status = 401, description = "10007: no token, or an invalid or expired one", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 429, description = "10006: WeChat's rate limit, or a quota of this client or app (retry-after)", body = ErrorEnvelope),
        (status = 502, description = "10005: WeChat answered unexpectedly, or the app does not meet WeChat's requirements", body = ErrorEnvelope),
        (status = 503, description = "10005: WeChat busy or slow; 10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn bind_phone(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let access_token = bearer::checked(&state, request.headers()).await?;
    let given: PhoneBody = body::parsed(&state, request).await?;
    let message = BindPhoneNumberRequest {
        access_token,
        code: input::phone_code(given.code)?,
    };
    let bound = state
        .auth
        .clone()
        .bind_phone_number(state.upstream(message, &request_id))
        .await?
        .into_inner();
    Ok(envelope::ok(bound.user.map(UserView::from)))
}

/// `DELETE /v1/me`: the user cancels their account (注销).
#[utoipa::path(delete, path = "/v1/me", tag = "v1",
    description = "The user cancels their account (注销): every session ends at once (every token refused within a second), and their data is erased: nickname, avatar, phone, unionid and profile, their login sessions and kept session_key; the audit trail keeps kind and time only. A later wx.login makes a new user. With a cooling-off period configured, the erasure happens when it ends (`erase_at`) and an operator may undo it meanwhile.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "deleted (`erased`), or erased at `erase_at`", body = Envelope<DeletedView>),
        (status = 401, description = "10007: no token, or an invalid, expired or revoked one (a second deletion: the first ended every token)", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn delete_me(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let message = DeleteMeRequest {
        access_token: bearer::checked(&state, &headers).await?,
    };
    let deleted = state
        .auth
        .clone()
        .delete_me(state.upstream(message, &request_id))
        .await?
        .into_inner();
    Ok(envelope::ok(DeletedView::from(deleted)))
}

/// `GET /v1/me/export`: a copy of everything stored about the user.
#[utoipa::path(get, path = "/v1/me/export", tag = "v1",
    description = "A copy of everything stored about the user (PIPL art. 45), as a JSON document `wxauth.export.v1`: the user, their account, their sessions and their audit trail. Never a secret.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the document, as `data`", body = Envelope<serde_json::Value>),
        (status = 401, description = "10007: no token, or an invalid or expired one", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn export_me(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let message = ExportMeRequest {
        access_token: bearer::checked(&state, &headers).await?,
    };
    let exported = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(message.clone(), &request_id);
            async move { auth.export_me(request).await }
        })
        .await?
        .into_inner();
    let document: serde_json::Value = serde_json::from_str(&exported.json).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            envelope::Code::Internal,
            "internal error",
        )
    })?;
    Ok(envelope::ok(document))
}
