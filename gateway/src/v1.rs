//! The versioned REST API for new mini-programs: silent login, refresh, logout, the current
//! user, and the public keys that verify access tokens.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use wxauth_proto::{
    v1::{GetJwksRequest, GetMeRequest, LoginRequest, LogoutRequest, RefreshTokenRequest},
    wire,
};

use crate::{
    envelope::{self, ApiError, Code, Envelope, ErrorEnvelope},
    input,
    request_id::RequestId,
    routes::{body_rejection, parse_any},
    state::AppState,
    views::{LoginBody, LogoutBody, RefreshBody, SilentLogin, TokenPairView, UserView},
};

/// The request's body, read (within the body limit) and parsed as JSON or a form.
pub(crate) async fn body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<T, ApiError> {
    let headers = request.headers().clone();
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(body_rejection)?;
    parse_any(&headers, &bytes)
}

/// The access token of the one `authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    wire::bearer_token(headers)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::TokenInvalid,
                "send the access token as one `authorization: Bearer <access_token>` header",
            )
            .challenge(envelope::BEARER_MISSING)
        })
}

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
    let given: LoginBody = body(&state, request).await?;
    let message = LoginRequest {
        appid: input::appid(given.appid)?,
        code: input::code(given.code)?,
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
    let given: RefreshBody = body(&state, request).await?;
    let message = RefreshTokenRequest {
        refresh_token: input::bounded(
            "refresh_token",
            given.refresh_token,
            input::MAX_TOKEN_CHARS,
        )?,
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
    let access_token = bearer(request.headers());
    let headers = request.headers().clone();
    let bytes = Bytes::from_request(request, &state)
        .await
        .map_err(body_rejection)?;
    // A body, when sent, must be the documented one, bearer or not (JSON `null` is none).
    let given: Option<LogoutBody> = if bytes.is_empty() {
        None
    } else {
        parse_any(&headers, &bytes)?
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
        access_token: bearer(&headers)?,
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

/// `GET /.well-known/jwks.json`: the public keys, as a plain JWK Set (no envelope: JWKS
/// consumers expect the standard document).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "v1",
    description = "The public keys that verify access tokens, as a JWK Set (RFC 7517), without envelope.",
    responses(
        (status = 200, description = "the JWK Set", content_type = "application/jwk-set+json", body = Object),
        (status = 503, description = "10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn jwks(
    State(state): State<AppState>,
    request_id: RequestId,
) -> Result<Response, ApiError> {
    let jwks = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(GetJwksRequest {}, &request_id);
            async move { auth.get_jwks(request).await }
        })
        .await?
        .into_inner();
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        )],
        jwks.jwks_json,
    )
        .into_response();
    // Keys rotate rarely and verifiers refetch on an unknown kid: a short cache is safe.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
