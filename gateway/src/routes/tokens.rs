//! `/v1` tokens: the silent login, refresh and logout.

use axum::{
    extract::{Request, State},
    response::Response,
};
use wxauth_proto::v1::{LoginRequest, LogoutRequest, RefreshTokenRequest};

use crate::{
    bearer, body,
    envelope::{self, ApiError, Envelope, ErrorEnvelope},
    input,
    request_id::RequestId,
    state::AppState,
    views::{LoginBody, LogoutBody, RefreshBody, SilentLogin, TokenPairView, UserView},
};

/// `POST /v1/login` `{appid, code}`: a `wx.login()` code straight to a token pair.
#[utoipa::path(post, path = "/v1/login", tag = "v1",
    description = "The silent login: a wx.login() code straight to a token pair. The user is created on first login.",
    request_body = LoginBody,
    responses(
        (status = 200, description = "the tokens, a session for later encrypted data, and the user", body = Envelope<SilentLogin>),
        (status = 400, description = "10001: appid or code missing or malformed", body = ErrorEnvelope),
        (status = 401, description = "10003: WeChat rejected the code, or it was already used", body = ErrorEnvelope),
        (status = 403, description = "10003: WeChat blocked this user (errcode 40226)", body = ErrorEnvelope),
        (status = 404, description = "10008: appid not served here", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 429, description = "10006: WeChat's rate limit, or a quota of this client or app (retry-after)", body = ErrorEnvelope),
        (status = 502, description = "10005: WeChat answered unexpectedly or refused our credentials", body = ErrorEnvelope),
        (status = 503, description = "10005: WeChat busy or slow; 10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let given: LoginBody = body::parsed(&state, request).await?;
    let message = LoginRequest {
        appid: input::appid(given.appid)?,
        code: input::code(given.code)?,
        scope: String::new(),
    };
    let logged_in = state
        .auth
        .clone()
        .login(state.upstream(message, &request_id))
        .await?
        .into_inner();
    Ok(envelope::ok(SilentLogin {
        tokens: TokenPairView::from(logged_in.tokens.unwrap_or_default()),
        session_id: logged_in.session_id,
        user: logged_in.user.map(UserView::from),
    }))
}

/// `POST /v1/token/refresh` `{refresh_token}`: a new pair; the old refresh token is used up.
#[utoipa::path(post, path = "/v1/token/refresh", tag = "v1",
    description = "Trades a refresh token for a new pair. Presenting a used refresh token again revokes its whole session.",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "the new pair", body = Envelope<TokenPairView>),
        (status = 400, description = "10001: refresh_token missing or too long", body = ErrorEnvelope),
        (status = 401, description = "10007: unknown, used, expired or revoked refresh token (log in again)", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 429, description = "10006: this client is over its login quota (retry-after)", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    let given: RefreshBody = body::parsed(&state, request).await?;
    let message = RefreshTokenRequest {
        refresh_token: input::bounded(
            "refresh_token",
            given.refresh_token,
            input::MAX_TOKEN_CHARS,
        )?,
        scope: String::new(),
    };
    let refreshed = state
        .auth
        .clone()
        .refresh_token(state.upstream(message, &request_id))
        .await
        .map_err(|status| ApiError::from(status).without_challenge())?
        .into_inner();
    Ok(envelope::ok(TokenPairView::from(
        refreshed.tokens.unwrap_or_default(),
    )))
}

/// `POST /v1/logout`, with `authorization: Bearer <access_token>` or a body
/// `{refresh_token}`: ends the session.
#[utoipa::path(post, path = "/v1/logout", tag = "v1",
    description = "Ends the session: with the access token as a bearer, or with the refresh token in the body.",
    request_body(content = Option<LogoutBody>, description = "the refresh token, when no bearer token is sent"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "the session is over", body = Envelope<Option<String>>),
        (status = 400, description = "10001: refresh_token sent empty or too long", body = ErrorEnvelope),
        (status = 401, description = "10007: no token, or an invalid one", body = ErrorEnvelope),
        (status = 413, description = "10001: the body is too large", body = ErrorEnvelope),
        (status = 415, description = "10001: not JSON or a form", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable or busy", body = ErrorEnvelope),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, ApiError> {
    // A bearer, when sent, is checked before the body is read; without one, the body's
    // refresh token is the credential.
    let access_token = match bearer::header(request.headers()) {
        Ok(_) => Ok(bearer::checked(&state, request.headers()).await?),
        Err(missing) => Err(missing),
    };
    let (headers, bytes) = body::read(&state, request).await?;
    // A body, when sent, must be the documented one, bearer or not (JSON `null` is none).
    let given: Option<LogoutBody> = if bytes.is_empty() {
        None
    } else {
        body::parse(&headers, &bytes)?
    };
    let refresh_token = input::omissible(
        "refresh_token",
        given.and_then(|given| given.refresh_token),
        input::MAX_TOKEN_CHARS,
    )?;
    let message = match (access_token, refresh_token) {
        (Ok(access_token), _) => LogoutRequest {
            access_token,
            refresh_token: String::new(),
        },
        (Err(_), Some(refresh_token)) => LogoutRequest {
            access_token: String::new(),
            refresh_token,
        },
        (Err(no_bearer), None) => return Err(no_bearer),
    };
    let by_bearer = !message.access_token.is_empty();
    state
        .auth
        .clone()
        .logout(state.upstream(message, &request_id))
        .await
        .map_err(|status| match ApiError::from(status) {
            refused if by_bearer => refused,
            refused => refused.without_challenge(),
        })?;
    Ok(envelope::ok(serde_json::Value::Null))
}
