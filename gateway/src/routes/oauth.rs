//! The OAuth 2.0 endpoints, for the libraries teams already run: the token endpoint (a
//! refresh, and the `wx.login()` code as an RFC 8693 token exchange), introspection (RFC
//! 7662) and revocation (RFC 7009). Their errors are OAuth's (`{"error": ...}`), not the
//! envelope. Public clients: a mini-program holds no secret; the code is the credential.

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use wxauth_proto::v1::{
    IntrospectTokenRequest, LoginRequest, LogoutRequest, RefreshTokenRequest, TokenPair,
};

use crate::{
    body, input,
    oauth::{
        ACCESS_TOKEN_TYPE, GRANT_REFRESH, GRANT_TOKEN_EXCHANGE, Introspection, OAuthError,
        OAuthErrorBody, TokenAnswer, TokenForm, TokenRefForm, WX_LOGIN_CODE, known,
    },
    request_id::RequestId,
    state::AppState,
};

/// The longest scope parameter.
const MAX_SCOPE_CHARS: usize = 256;
/// The longest token taken at introspection or revocation.
const MAX_TOKEN_CHARS: usize = 4096;

/// The answer of the token endpoint for a pair, `now` being the service's idea of the time
/// the pair was issued.
fn answer(tokens: TokenPair, exchanged: bool) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let expires_in = tokens
        .access_token_expires_at
        .map_or(0, |at| (at.seconds - now).max(0));
    Json(TokenAnswer {
        access_token: tokens.access_token,
        token_type: "Bearer".into(),
        expires_in,
        refresh_token: tokens.refresh_token,
        scope: tokens.scope,
        id_token: known(tokens.id_token),
        issued_token_type: exchanged.then(|| ACCESS_TOKEN_TYPE.to_owned()),
    })
    .into_response()
}

/// A parameter present and not empty, at most `max` characters.
fn required(name: &str, value: Option<String>, max: usize) -> Result<String, OAuthError> {
    let value = value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))?;
    if value.chars().count() > max {
        return Err(OAuthError::invalid_request(format!(
            "{name} is longer than {max} characters"
        )));
    }
    Ok(value)
}

/// `POST /oauth/token`: a refresh, or a `wx.login()` code exchanged for tokens.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    description = "The token endpoint (RFC 6749). `grant_type=refresh_token` rotates a refresh token as /v1/token/refresh does (grace, reuse detection). `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with `subject_token=<wx.login() code>`, `subject_token_type=urn:wxauth:params:oauth:token-type:wx-login-code` and `client_id=<appid>` logs the user in as /v1/login does (RFC 8693). With `openid` in `scope`, an ID token comes too. Public clients: no client authentication.",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the tokens", body = TokenAnswer),
        (status = 400, description = "invalid_request, invalid_grant (a refused or used code, an unknown, used or revoked refresh token, a suspended user), invalid_client (an appid not served), unsupported_grant_type, invalid_scope", body = OAuthErrorBody),
        (status = 413, description = "10001: the body is too large", body = crate::envelope::ErrorEnvelope),
        (status = 415, description = "invalid_request: not a form (or JSON)", body = OAuthErrorBody),
        (status = 429, description = "temporarily_unavailable: WeChat's or this app's rate limit; 10006: this client's login quota (retry-after)", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable: WeChat or the login service unavailable (retry-after)", body = OAuthErrorBody),
    ))]
pub(crate) async fn token(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OAuthError> {
    let form: TokenForm = body::parsed(&state, request).await?;
    let scope = form
        .scope
        .map(|scope| {
            if scope.chars().count() > MAX_SCOPE_CHARS {
                Err(OAuthError::invalid_request(
                    "scope is longer than 256 characters",
                ))
            } else {
                Ok(scope)
            }
        })
        .transpose()?
        .unwrap_or_default();
    match form.grant_type.as_deref().filter(|grant| !grant.is_empty()) {
        Some(GRANT_REFRESH) => {
            let message = RefreshTokenRequest {
                refresh_token: required(
                    "refresh_token",
                    form.refresh_token,
                    input::MAX_TOKEN_CHARS,
                )?,
                scope,
            };
            let refreshed = state
                .auth
                .clone()
                .refresh_token(state.upstream(message, &request_id))
                .await?
                .into_inner();
            Ok(answer(refreshed.tokens.unwrap_or_default(), false))
        }
        Some(GRANT_TOKEN_EXCHANGE) => {
            match form.subject_token_type.as_deref() {
                Some(WX_LOGIN_CODE) => {}
                None | Some("") => {
                    return Err(OAuthError::invalid_request(format!(
                        "subject_token_type is required: {WX_LOGIN_CODE}"
                    )));
                }
                Some(_) => {
                    return Err(OAuthError::invalid_request(format!(
                        "subject_token_type must be {WX_LOGIN_CODE}: the subject token is a wx.login() code"
                    )));
                }
            }
            if form
                .requested_token_type
                .as_deref()
                .is_some_and(|kind| !kind.is_empty() && kind != ACCESS_TOKEN_TYPE)
            {
                return Err(OAuthError::invalid_request(format!(
                    "requested_token_type may only be {ACCESS_TOKEN_TYPE}"
                )));
            }
            let appid = required("client_id", form.client_id, 64)?;
            let code = required("subject_token", form.subject_token, input::MAX_CODE_CHARS)?;
            let message = LoginRequest {
                appid: input::appid(Some(appid))
                    .map_err(|err| OAuthError::invalid_request(err.msg))?,
                code: input::code(Some(code))
                    .map_err(|err| OAuthError::invalid_request(err.msg))?,
                scope,
            };
            let logged_in = state
                .auth
                .clone()
                .login(state.upstream(message, &request_id))
                .await?
                .into_inner();
            Ok(answer(logged_in.tokens.unwrap_or_default(), true))
        }
        Some(other) => Err(OAuthError::bad(
            "unsupported_grant_type",
            format!(
                "grant_type {:?} is not supported: use refresh_token or {GRANT_TOKEN_EXCHANGE}",
                other.chars().take(64).collect::<String>()
            ),
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// The caller name and key of `authorization: Basic ...` (RFC 6749 2.3.1: each
/// form-urlencoded, then joined by `:` and base64-encoded).
fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), OAuthError> {
    let missing = || {
        OAuthError::invalid_client(
            "authenticate with HTTP Basic: the caller's name and key (a caller with the validate scope)",
        )
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(missing());
    };
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(missing)?;
    let (name, key) = decoded.split_once(':').ok_or_else(missing)?;
    let (name, key) = (
        percent_decode(name).ok_or_else(missing)?,
        percent_decode(key).ok_or_else(missing)?,
    );
    if name.is_empty() || key.is_empty() {
        return Err(missing());
    }
    Ok((name, key))
}

/// `text` with its `%XX` escapes (and `+` as a space) decoded, when it is well-formed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = text.get(at + 1..at + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /oauth/introspect`: what a token is (RFC 7662), for a caller with `validate`.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    description = "Token introspection (RFC 7662). The client authenticates with HTTP Basic: a caller's name and key from WXAUTH_CALLERS with the validate scope. An access token (signature, expiry, revocation on every replica) or a refresh token (unused, unexpired, its session live) answers `active: true` with its claims; anything else `{\"active\": false}`.",
    request_body(content = TokenRefForm, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "what the token is", body = Introspection),
        (status = 400, description = "invalid_request: token missing or too long", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: no Basic credentials, or not those of a caller with the validate scope", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable (retry-after)", body = OAuthErrorBody),
    ))]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OAuthError> {
    let (name, key) = basic_credentials(request.headers())?;
    let form: TokenRefForm = body::parsed(&state, request).await?;
    let message = IntrospectTokenRequest {
        token: required("token", form.token, MAX_TOKEN_CHARS)?,
        token_type_hint: form.token_type_hint.unwrap_or_default(),
        client_name: name,
    };
    let call = state
        .upstream_as(message, &request_id, &key)
        .ok_or_else(|| OAuthError::invalid_client("the client key must be printable ASCII"))?;
    let found = state
        .auth_as_client
        .clone()
        .introspect_token(call)
        .await?
        .into_inner();
    if !found.active {
        return Ok(Json(Introspection::default()).into_response());
    }
    Ok(Json(Introspection {
        active: true,
        token_type: known(found.token_type),
        scope: known(found.scope),
        client_id: known(found.client_id),
        sub: known(found.sub),
        aud: known(found.aud),
        iss: known(found.iss),
        exp: found.exp.map(|at| at.seconds),
        iat: found.iat.map(|at| at.seconds),
        jti: known(found.jti),
        sid: known(found.session_id),
        openid: known(found.openid),
        unionid: known(found.unionid),
        account_id: known(found.account_id),
    })
    .into_response())
}

/// `POST /oauth/revoke`: ends the session of an access or refresh token (RFC 7009).
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    description = "Token revocation (RFC 7009): a refresh token or an access token ends its session family (every token of that login, on every replica within a second). An unknown, expired or already revoked token answers 200 too. Public clients: no authentication.",
    request_body(content = TokenRefForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or nothing to revoke"),
        (status = 400, description = "invalid_request: token missing or too long", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable (retry-after)", body = OAuthErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OAuthError> {
    let form: TokenRefForm = body::parsed(&state, request).await?;
    let token = required("token", form.token, MAX_TOKEN_CHARS)?;
    let refresh = match form.token_type_hint.as_deref() {
        Some("refresh_token") => true,
        Some("access_token") => false,
        _ => !token.contains('.'),
    };
    let message = if refresh {
        LogoutRequest {
            access_token: String::new(),
            refresh_token: token,
        }
    } else {
        LogoutRequest {
            access_token: token,
            refresh_token: String::new(),
        }
    };
    match state
        .auth
        .clone()
        .logout(state.upstream(message, &request_id))
        .await
    {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(status) => {
            let err = OAuthError::from_status(&status);
            // An unknown or expired token has nothing left to revoke (RFC 7009 2.2).
            if matches!(err.error, "invalid_grant" | "invalid_request") {
                Ok(StatusCode::OK.into_response())
            } else {
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_decoded_and_anything_else_is_invalid_client() {
        let encoded = STANDARD.encode("orders:key%2Bwith%3Acolon");
        assert_eq!(
            basic_credentials(&with(&format!("Basic {encoded}"))).unwrap(),
            ("orders".to_owned(), "key+with:colon".to_owned())
        );
        for bad in [
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode(":key")),
            format!("Basic {}", STANDARD.encode("name:%zz")),
        ] {
            let err = basic_credentials(&with(&bad)).unwrap_err();
            assert_eq!(
                (err.status, err.error),
                (StatusCode::UNAUTHORIZED, "invalid_client"),
                "{bad}"
            );
        }
        assert!(basic_credentials(&HeaderMap::new()).is_err());
    }
}
