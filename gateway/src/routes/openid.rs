//! OpenID Connect discovery (and its RFC 8414 twin) and the userinfo endpoint: what lets a
//! stock library find everything from the issuer URL alone.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use wxauth_proto::v1::{GetJwksRequest, GetMeRequest};

use crate::{
    bearer,
    envelope::{ApiError, Code, ErrorEnvelope},
    oauth::{
        CLAIM_ACCOUNT_ID, CLAIM_OPENID, CLAIM_UNIONID, GRANT_REFRESH, GRANT_TOKEN_EXCHANGE,
        OAuthErrorBody, UserInfo,
    },
    request_id::RequestId,
    state::AppState,
};

/// The issuer the auth-service names, or why discovery is off.
async fn issuer(state: &AppState, request_id: &RequestId) -> Result<String, ApiError> {
    let jwks = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(GetJwksRequest {}, request_id);
            async move { auth.get_jwks(request).await }
        })
        .await?
        .into_inner();
    if jwks.issuer.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Code::BadRequest,
            "OpenID Connect is off: set WXAUTH_ISSUER on the auth-service to the https URL of this gateway",
        ));
    }
    Ok(jwks.issuer)
}

/// The provider's metadata, under `issuer`.
fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "grant_types_supported": [GRANT_REFRESH, GRANT_TOKEN_EXCHANGE],
        // No authorization endpoint: a mini-program logs in with wx.login, not a redirect.
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "profile", "phone"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "azp", "name", "picture", "phone_number",
            "phone_number_verified", CLAIM_OPENID, CLAIM_UNIONID, CLAIM_ACCOUNT_ID,
        ],
    })
}

/// `GET /.well-known/openid-configuration`: OpenID Connect discovery.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    description = "OpenID Connect Discovery 1.0: the issuer (WXAUTH_ISSUER) and every endpoint, grant, scope, claim and algorithm (EdDSA). No envelope.",
    responses(
        (status = 200, description = "the provider's metadata", body = Object),
        (status = 404, description = "10001: OpenID Connect is off (no WXAUTH_ISSUER)", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn openid_configuration(
    State(state): State<AppState>,
    request_id: RequestId,
) -> Result<Response, ApiError> {
    let issuer = issuer(&state, &request_id).await?;
    Ok(discovery(&issuer))
}

/// `GET /.well-known/oauth-authorization-server`: the same, as RFC 8414 names it.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    description = "OAuth 2.0 Authorization Server Metadata (RFC 8414): the same document as the OpenID Connect discovery.",
    responses(
        (status = 200, description = "the server's metadata", body = Object),
        (status = 404, description = "10001: OpenID Connect is off (no WXAUTH_ISSUER)", body = ErrorEnvelope),
        (status = 503, description = "10500: the login service is unavailable", body = ErrorEnvelope),
    ))]
pub(crate) async fn authorization_server(
    State(state): State<AppState>,
    request_id: RequestId,
) -> Result<Response, ApiError> {
    let issuer = issuer(&state, &request_id).await?;
    Ok(discovery(&issuer))
}

fn discovery(issuer: &str) -> Response {
    let mut response = Json(metadata(issuer)).into_response();
    // It changes with the configuration only: a client may keep it a while.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The scopes an access token says it was granted (the token was verified already); a
/// token of before scopes had every scope.
fn granted(token: &str) -> Vec<String> {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let scope = token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|claims| {
            claims
                .get("scope")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    match scope {
        Some(scope) => scope.split(' ').map(str::to_owned).collect(),
        None => vec!["openid".into(), "profile".into(), "phone".into()],
    }
}

/// An RFC 6750 refusal of the userinfo endpoint's bearer token.
fn invalid_token(err: &ApiError) -> Response {
    let mut response = (
        err.status,
        Json(OAuthErrorBody {
            error: if err.status == StatusCode::UNAUTHORIZED {
                "invalid_token".into()
            } else {
                "temporarily_unavailable".into()
            },
            error_description: err.msg.clone(),
        }),
    )
        .into_response();
    if let Some(challenge) = err.challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(challenge),
        );
    }
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// `GET` or `POST /oauth/userinfo`: the standard claims of the bearer's user.
#[utoipa::path(method(get, post), path = "/oauth/userinfo", tag = "oauth",
    description = "OpenID Connect UserInfo: `sub`, with scope `profile` `name` (the nickname) and `picture`, with scope `phone` `phone_number` and `phone_number_verified`, and the namespaced `urn:wxauth:openid`, `urn:wxauth:unionid`, `urn:wxauth:account_id`.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the claims", body = UserInfo),
        (status = 401, description = "invalid_token: no token, or an invalid, expired or revoked one", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable (retry-after)", body = OAuthErrorBody),
    ))]
pub(crate) async fn userinfo(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Response {
    let token = match bearer::checked(&state, &headers).await {
        Ok(token) => token,
        Err(err) => return invalid_token(&err),
    };
    let scopes = granted(&token);
    let message = GetMeRequest {
        access_token: token,
    };
    let me = state
        .read_only(|| {
            let mut auth = state.auth.clone();
            let request = state.upstream(message.clone(), &request_id);
            async move { auth.get_me(request).await }
        })
        .await;
    let user = match me {
        Ok(me) => me.into_inner().user.unwrap_or_default(),
        Err(status) => return invalid_token(&ApiError::from(status)),
    };
    let has = |scope: &str| scopes.iter().any(|granted| granted == scope);
    let text = |value: String| (!value.is_empty()).then_some(value);
    let phone = has("phone")
        .then(|| text(user.phone_number.clone()))
        .flatten();
    let phone = phone.map(|number| match text(user.phone_country_code.clone()) {
        Some(code) if !number.starts_with('+') => format!("+{code} {}", user.pure_phone_number),
        _ => number,
    });
    let mut namespaced = Map::new();
    for (claim, value) in [
        (CLAIM_OPENID, user.openid),
        (CLAIM_UNIONID, user.unionid),
        (CLAIM_ACCOUNT_ID, user.account_id),
    ] {
        if let Some(value) = text(value) {
            namespaced.insert(claim.to_owned(), Value::String(value));
        }
    }
    Json(UserInfo {
        sub: user.user_id,
        name: has("profile").then(|| text(user.nickname)).flatten(),
        picture: has("profile").then(|| text(user.avatar_url)).flatten(),
        phone_number_verified: phone.as_ref().map(|_| true),
        phone_number: phone,
        namespaced,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_names_every_endpoint_under_the_issuer() {
        let doc = metadata("https://auth.example.com");
        for field in [
            "jwks_uri",
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
            "userinfo_endpoint",
        ] {
            assert!(
                doc[field]
                    .as_str()
                    .unwrap()
                    .starts_with("https://auth.example.com/"),
                "{field}"
            );
        }
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["EdDSA"])
        );
    }
}
