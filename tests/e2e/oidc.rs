//! The OAuth 2.0 / OpenID Connect surface as a library sees it: discovery under the issuer,
//! the `wx.login()` code exchanged at the token endpoint, refresh, introspection, revocation
//! and userinfo; RFC errors for bad input, never a 500.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::{
    jwt_claims, refused_within_a_second,
    stack::{APP, APP2, Options, Stack},
};
use wxauth_proto::v1::{IntrospectTokenRequest, ValidateTokenRequest};
use wxauth_token::{Claims, LEGACY_ISSUER};

pub(crate) const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const WX_CODE: &str = "urn:wxauth:params:oauth:token-type:wx-login-code";

pub(crate) fn oidc_stack() -> Options {
    Options {
        issuer_on_gateway: true,
        ..Options::default()
    }
}

/// `POST path` with a form body (and Basic credentials when given): status and JSON body
/// (`Null` when there is none).
pub(crate) async fn form(
    stack: &Stack,
    path: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut request = stack
        .http
        .post(format!("{}{path}", stack.gateway.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some((name, key)) = basic {
        request = request.basic_auth(name, Some(key));
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The token endpoint's exchange of a fresh code of `openid`, asking for `scope`.
pub(crate) async fn exchange(stack: &Stack, openid: &str, scope: &str) -> (StatusCode, Value) {
    let code = stack
        .mint_code(APP, openid, Some(&format!("u-{openid}")))
        .await;
    form(
        stack,
        "/oauth/token",
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &code),
            ("subject_token_type", WX_CODE),
            ("client_id", APP),
            ("scope", scope),
        ],
        None,
    )
    .await
}

fn header_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn discovery_the_token_endpoint_and_userinfo_speak_the_standards() {
    let stack = Stack::start_with(oidc_stack()).await;
    let issuer = stack.gateway.url();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = stack
            .http
            .get(format!("{issuer}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], issuer.as_str(), "{path}");
        assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth/token"));
        assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["EdDSA"])
        );
        assert!(
            doc["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(EXCHANGE))
        );
    }

    // The code exchanged: an RFC 9068 access token, a refresh token, an ID token.
    let (status, tokens) = exchange(&stack, "o-oidc", "openid profile").await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert_eq!(
        tokens["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let expires_in = tokens["expires_in"].as_i64().unwrap();
    assert!((895..=900).contains(&expires_in), "{expires_in}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(header_of(access)["typ"], "at+jwt");
    let claims = jwt_claims(access);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["client_id"], APP);
    assert_eq!(claims["aud"], APP);
    assert_eq!(claims["scope"], "openid profile");
    for claim in ["sub", "exp", "iat", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim}");
    }
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (
            id_token["iss"].as_str(),
            id_token["aud"].as_str(),
            id_token["sub"].as_str()
        ),
        (Some(issuer.as_str()), Some(APP), claims["sub"].as_str())
    );
    assert!(id_token.get("sid").is_none() && id_token.get("jti").is_none());

    // Userinfo gives what the scopes allow.
    let mut gateway = stack.grpc_as(Some(&stack.keys.gateway)).await;
    gateway
        .update_profile(wxauth_proto::v1::UpdateProfileRequest {
            access_token: access.into(),
            nickname: Some("OIDC".into()),
            avatar_url: None,
        })
        .await
        .unwrap();
    let code = stack.mint_phone_code(APP, "o-oidc", "13800138000").await;
    stack.bind_phone(Some(access), json!({"code": code})).await;
    let info: Value = stack
        .http
        .get(format!("{issuer}/oauth/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["name"], "OIDC");
    assert_eq!(info["urn:wxauth:openid"], "o-oidc");
    assert_eq!(info["urn:wxauth:unionid"], "u-o-oidc");
    assert!(info.get("phone_number").is_none(), "no phone scope: {info}");
    let (_, all) = exchange(&stack, "o-oidc", "openid phone").await;
    let info: Value = stack
        .http
        .get(format!("{issuer}/oauth/userinfo"))
        .bearer_auth(all["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["phone_number"], "+86 13800138000");
    assert_eq!(info["phone_number_verified"], true);
    assert!(info.get("name").is_none(), "no profile scope: {info}");
    let refused = stack
        .http
        .get(format!("{issuer}/oauth/userinfo"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Refresh: rotated as /v1/token/refresh does; the scope is the login's, never more.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = form(
        &stack,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["scope"], "openid profile");
    assert!(
        refreshed["id_token"].is_string(),
        "openid was granted: a new ID token"
    );
    let (status, wider) = form(
        &stack,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
            ("scope", "openid phone"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, wider["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // A token of before (iss `wxauth`, no client_id or scope) still validates.
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    let genuine: Claims = serde_json::from_value(claims.clone()).unwrap();
    let legacy = stack.sign(&Claims {
        iss: LEGACY_ISSUER.into(),
        client_id: None,
        scope: None,
        ..genuine
    });
    service
        .validate_token(ValidateTokenRequest {
            token: legacy,
            appid: APP.into(),
        })
        .await
        .expect("a token signed before issuers were URLs");
}

/// A form body as name/value pairs.
type Form<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn bad_input_gets_the_rfcs_errors_never_a_500() {
    let stack = Stack::start_with(oidc_stack()).await;
    let code_of_another_app = stack.mint_code(APP2, "o-other", None).await;
    let cases: Vec<(Form<'_>, u16, &str)> = vec![
        (vec![], 400, "invalid_request"),
        (
            vec![("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "authorization_code"), ("code", "x")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "refresh_token")],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "wxrt_unknown"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "abc"),
                ("client_id", APP),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "abc"),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("client_id", APP),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "abc"),
                ("subject_token_type", WX_CODE),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", &code_of_another_app),
                ("subject_token_type", WX_CODE),
                ("client_id", APP),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "abc"),
                ("subject_token_type", WX_CODE),
                ("client_id", "wx9999999999999999"),
            ],
            400,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "abc"),
                ("subject_token_type", WX_CODE),
                ("client_id", APP),
                ("scope", "openid email"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (fields, status, error) in cases {
        let (got, body) = form(&stack, "/oauth/token", &fields, None).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(error)),
            "{fields:?}: {body}"
        );
        assert!(body["error_description"].is_string());
    }
    // A body that is not a form or JSON.
    let answer = stack
        .http
        .post(format!("{}/oauth/token", stack.gateway.url()))
        .header("content-type", "text/plain")
        .body("grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // Introspection wants Basic credentials of a validate caller; a malformed header is 401.
    let (_, tokens) = exchange(&stack, "o-bad", "").await;
    let access = tokens["access_token"].as_str().unwrap();
    for basic in [
        None,
        Some(("orders", "wrong-key-0123456789abcdef")),
        Some(("ops", stack.keys.service.as_str())),
    ] {
        let (status, body) = form(&stack, "/oauth/introspect", &[("token", access)], basic).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{basic:?}"
        );
    }
    let answer = stack
        .http
        .post(format!("{}/oauth/introspect", stack.gateway.url()))
        .header("authorization", "Basic %%%")
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers()["www-authenticate"],
        "Basic realm=\"wxauth\""
    );
    let gateway_key = stack.keys.gateway.clone();
    let (status, body) = form(
        &stack,
        "/oauth/introspect",
        &[("token", access)],
        Some(("gateway", &gateway_key)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "no validate scope"
    );
    let service_key = stack.keys.service.clone();
    let (status, body) = form(
        &stack,
        "/oauth/introspect",
        &[],
        Some(("orders", &service_key)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn introspection_and_revocation_agree_across_replicas_within_a_second() {
    let stack = Stack::start_with(oidc_stack()).await;
    let replica = stack.spawn_replica("auth-introspected");
    let (_, tokens) = exchange(&stack, "o-introspect", "openid").await;
    let (access, refresh) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    let service = ("orders", stack.keys.service.clone());
    let basic = Some((service.0, service.1.as_str()));
    let (status, found) = form(&stack, "/oauth/introspect", &[("token", access)], basic).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["active"], true);
    assert_eq!(found["token_type"], "access_token");
    assert_eq!(found["client_id"], APP);
    assert_eq!(found["scope"], "openid");
    assert_eq!(found["iss"], stack.gateway.url().as_str());
    assert_eq!(found["urn:wxauth:openid"], "o-introspect");
    let (_, found) = form(
        &stack,
        "/oauth/introspect",
        &[("token", refresh), ("token_type_hint", "refresh_token")],
        basic,
    )
    .await;
    assert_eq!(
        (found["active"].as_bool(), found["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );
    for garbage in ["x", "wxrt_unknown", "a.b.c"] {
        let (status, found) = form(&stack, "/oauth/introspect", &[("token", garbage)], basic).await;
        assert_eq!(
            (status, found),
            (StatusCode::OK, json!({"active": false})),
            "{garbage}"
        );
    }

    // Revoked through the gateway's replica; the other replica reads it inactive in a second.
    let on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    let introspect_on_replica = |token: &str| {
        let (mut client, token) = (on_replica.clone(), token.to_owned());
        async move {
            client
                .introspect_token(IntrospectTokenRequest {
                    token,
                    ..IntrospectTokenRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .active
        }
    };
    assert!(introspect_on_replica(access).await);
    let (status, body) = form(&stack, "/oauth/revoke", &[("token", refresh)], None).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null));
    let revoked_at = Instant::now();
    refused_within_a_second(&mut on_replica.clone(), access, revoked_at).await;
    assert!(!introspect_on_replica(access).await);
    assert!(!introspect_on_replica(refresh).await);
    let (_, found) = form(&stack, "/oauth/introspect", &[("token", access)], basic).await;
    assert_eq!(found, json!({"active": false}));

    // An unknown token is revoked too, as far as the client can tell; a missing one is not.
    let (status, _) = form(
        &stack,
        "/oauth/revoke",
        &[("token", "wxrt_never-was")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = form(&stack, "/oauth/revoke", &[], None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // The access token alone ends its family too.
    let (_, second) = exchange(&stack, "o-introspect-2", "").await;
    let access = second["access_token"].as_str().unwrap();
    let (status, _) = form(
        &stack,
        "/oauth/revoke",
        &[("token", access), ("token_type_hint", "access_token")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!introspect_on_replica(access).await);
    let (status, body) = stack.v1_refresh(&second["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn without_an_issuer_discovery_says_how_to_turn_it_on() {
    let stack = Stack::start().await;
    let answer = stack
        .http
        .get(format!(
            "{}/.well-known/openid-configuration",
            stack.gateway.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["msg"].as_str().unwrap().contains("WXAUTH_ISSUER"),
        "{body}"
    );
    // Tokens say `wxauth`, as before.
    let login = stack.v1_login(APP, "o-no-issuer").await;
    assert_eq!(
        jwt_claims(login["access_token"].as_str().unwrap())["iss"],
        LEGACY_ISSUER
    );
}
