//! The seed-compatible routes. Each one only translates: parse the mini-program's request,
//! call the auth-service, wrap the answer in the envelope.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::Response,
};
use wxauth_proto::v1::{CompleteLoginRequest, CreateSessionRequest, DataKind};

use crate::{
    envelope::{self, ApiError, Code, ErrorEnvelope},
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
    let headers: HeaderMap = request.headers().clone();
    let bytes = Bytes::from_request(request, &state)
        .await
        .map_err(body_rejection)?;
    let body = parse_body(&headers, &bytes)?;
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

pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
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

/// JSON (the default of `wx.request`) or a form. A form is decoded properly, so a `+` sent
/// as `%2B` stays a `+`; JSON is taken as it is, so base64 is never mangled.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<SaveUserBody, ApiError> {
    parse_any(headers, bytes)
}

/// Parses a JSON or form body into `T`.
pub(crate) fn parse_any<T: serde::de::DeserializeOwned>(
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

/// Any other path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, Code::BadRequest, "no such route")
}

/// `GET /healthz`: the gateway is up (it does not call the auth-service).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the gateway is up", body = envelope::Envelope<Option<String>>)))]
pub(crate) async fn healthz() -> Response {
    envelope::ok(serde_json::Value::Null)
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadRequest,
        "this route does not take that method",
    )
}
