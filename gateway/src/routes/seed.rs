//! The seed-compatible routes: a code to a session id, then the encrypted data to tokens.

use axum::{
    extract::{Request, State},
    response::Response,
};
use wxauth_proto::v1::{CompleteLoginRequest, CreateSessionRequest, DataKind};

use crate::{
    body,
    envelope::{self, ApiError, ErrorEnvelope},
    input,
    request_id::RequestId,
    state::AppState,
    views::{SaveUserBody, SavedLogin, SessionKeyQuery, UserView},
};

/// `GET /wxauth/getsessionkey?appid=..&code=..`: trades a `wx.login()` code for a session
/// id; `data` is the id.
#[utoipa::path(get, path = "/wxauth/getsessionkey", tag = "seed", params(SessionKeyQuery),
    description = "Trades a wx.login() code for a login session id (the \"uuid\"). Each code works once.",
    responses(
        (status = 200, description = "`data` is the session id", body = envelope::Envelope<String>),
        (status = 400, description = "10001: appid or code missing or malformed", body = ErrorEnvelope),
        (status = 401, description = "10003: WeChat rejected the code, or it was already used", body = ErrorEnvelope),
        (status = 403, description = "10003: WeChat blocked this user (errcode 40226)", body = ErrorEnvelope),
        (status = 404, description = "10008: appid not served here", body = ErrorEnvelope),
        (status = 429, description = "10006: WeChat's rate limit, or a quota of this client or app (retry-after)", body = ErrorEnvelope),
        (status = 502, description = "10005: WeChat answered unexpectedly or refused our credentials", body = ErrorEnvelope),
        (status = 503, description = "10005: WeChat busy or slow; 10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn get_session_key(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let query: SessionKeyQuery = serde_urlencoded::from_str(request.uri().query().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("the query string is malformed: send appid and code"))?;
    let message = CreateSessionRequest {
        appid: input::appid(query.appid)?,
        code: input::code(query.code)?,
    };
    let created = state
        .auth
        .clone()
        .create_session(state.upstream(message, &request_id))
        .await?
        .into_inner();
    Ok(envelope::ok(created.session_id))
}

/// `POST /wxauth/wxsmallusersave` with JSON or a form: finishes the login with the data of
/// `wx.getUserInfo()` (`type=userinfo`) or the legacy `getPhoneNumber` (`type=phone`);
/// `data` holds the token and the user.
#[utoipa::path(post, path = "/wxauth/wxsmallusersave", tag = "seed",
    description = "Finishes a login with the encrypted data of wx.getUserInfo() or the legacy getPhoneNumber.",
    request_body(content(
        (SaveUserBody = "application/json"),
        (SaveUserBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "the tokens and the user", body = envelope::Envelope<SavedLogin>),
        (status = 400, description = "10001: a field is missing or malformed; 10004: the data does not decrypt or verify (log in again)", body = ErrorEnvelope),
        (status = 401, description = "10002: unknown or expired session (log in again)", body = ErrorEnvelope),
        (status = 404, description = "10008: appid not served here", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 429, description = "10006: this client is over its login quota (retry-after)", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn save_user(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let body: SaveUserBody = body::parsed(&state, request).await?;
    let kind = match input::bounded("type", body.kind, 8)?.as_str() {
        "userinfo" => DataKind::UserInfo,
        "phone" => DataKind::Phone,
        _ => return Err(ApiError::bad_request("type must be userinfo or phone")),
    };
    let message = CompleteLoginRequest {
        appid: input::appid(body.appid)?,
        session_id: input::bounded("uuid", body.uuid, input::MAX_TOKEN_CHARS)?,
        kind: kind.into(),
        encrypted_data: input::bounded(
            "encryptedData",
            body.encrypted_data,
            input::MAX_ENCRYPTED_DATA_CHARS,
        )?,
        iv: input::bounded("iv", body.iv, input::MAX_IV_CHARS)?,
        raw_data: input::optional("rawData", body.raw_data, input::MAX_RAW_DATA_CHARS)?,
        signature: input::optional("signature", body.signature, input::MAX_SIGNATURE_CHARS)?,
    };
    let completed = state
        .auth
        .clone()
        .complete_login(state.upstream(message, &request_id))
        .await?
        .into_inner();
    let tokens = completed.tokens.unwrap_or_default();
    Ok(envelope::ok(SavedLogin {
        token: tokens.access_token,
        expires_at: tokens.access_token_expires_at.map(|at| at.seconds),
        refresh_token: tokens.refresh_token,
        refresh_token_expires_at: tokens.refresh_token_expires_at.map(|at| at.seconds),
        user: completed.user.map(UserView::from),
    }))
}
