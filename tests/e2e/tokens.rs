//! Access and refresh tokens end to end: the /v1 routes (refresh rotation is in `refresh`),
//! logout, operator revocation across replicas, forged tokens, and offline verification.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use wxauth_e2e::stack::{APP, APP2, Client, Options, SIGNING_KID, Stack, envelope};
use wxauth_proto::v1::{RevokeUserSessionsRequest, ValidateTokenRequest};
use wxauth_token::{Claims, Jwks, KeyPair, Verifier};

pub(crate) async fn validate(client: &mut Client, token: &str, appid: &str) -> Validation {
    client
        .validate_token(ValidateTokenRequest {
            token: token.into(),
            appid: appid.into(),
        })
        .await
        .map(|answer| answer.into_inner().user_id)
        .map_err(|status| {
            (
                status.code(),
                status
                    .get_error_details()
                    .error_info()
                    .map(|info| info.reason.clone())
                    .unwrap_or_default(),
            )
        })
}

/// What ValidateToken answered: the user id, or the code and reason of the refusal.
pub(crate) type Validation = Result<String, (Code, String)>;

pub(crate) fn refused(reason: &str) -> Validation {
    Err((Code::Unauthenticated, reason.to_owned()))
}

#[tokio::test]
async fn silent_login_refresh_me_and_logout_through_the_v1_routes() {
    let stack = Stack::start().await;
    let first = stack.v1_login(APP, "o-v1").await;
    assert_eq!(first["token_type"], "Bearer");
    let access = first["access_token"].as_str().unwrap();
    let (status, user) = envelope(stack.get_me(Some(access)).await).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["data"]["user_id"], first["user"]["user_id"]);

    let (status, refreshed) = stack.v1_refresh(&first["refresh_token"]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = &refreshed["data"];
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "refresh tokens rotate"
    );
    assert_ne!(second["access_token"], first["access_token"]);

    let (status, body) = stack
        .post_as("/v1/logout", json!({}), second["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = envelope(
        stack
            .get_me(Some(second["access_token"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007)),
        "{body}"
    );
    let (status, body) = stack.v1_refresh(&second["refresh_token"]).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007)),
        "{body}"
    );

    // Bad input on the v1 routes.
    let cases: Vec<(&str, StatusCode, Value)> = vec![
        (
            "login without code",
            stack
                .post_as("/v1/login", json!({"appid": APP}), None)
                .await
                .0,
            json!(400),
        ),
        (
            "refresh without token",
            stack.post_as("/v1/token/refresh", json!({}), None).await.0,
            json!(400),
        ),
        (
            "logout without anything",
            stack.post_as("/v1/logout", json!({}), None).await.0,
            json!(401),
        ),
        (
            "logout with an empty refresh token",
            stack
                .post_as("/v1/logout", json!({"refresh_token": ""}), None)
                .await
                .0,
            json!(400),
        ),
        (
            "refresh with a token too long to be one",
            stack.v1_refresh(&"r".repeat(1025)).await.0,
            json!(400),
        ),
        (
            "login with a code that cannot be WeChat's",
            stack
                .post_as("/v1/login", json!({"appid": APP, "code": "a code"}), None)
                .await
                .0,
            json!(400),
        ),
        (
            "me without bearer",
            envelope(
                stack
                    .http
                    .get(format!("{}/v1/me", stack.gateway.url()))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
            .0,
            json!(401),
        ),
    ];
    for (case, status, expected) in cases {
        assert_eq!(json!(status.as_u16()), expected, "case {case:?}");
    }
}

/// Two `authorization` headers are refused by the gateway, in either order, even when one
/// of them carries a good token; one of them alone is taken.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-two-headers").await;
    let good = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let me_with = |values: Vec<String>| {
        let mut request = stack.http.get(format!("{}/v1/me", stack.gateway.url()));
        for value in values {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        async move { envelope(request.send().await.unwrap()).await }
    };
    for values in [
        vec![good.clone(), "Bearer junk".to_owned()],
        vec!["Bearer junk".to_owned(), good.clone()],
    ] {
        let (status, body) = me_with(values).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], 10007, "{body}");
        assert!(
            body["msg"].as_str().unwrap().contains("one `authorization"),
            "{body}"
        );
    }
    let (status, body) = me_with(vec![good]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn forged_expired_wrong_key_wrong_app_and_revoked_tokens_are_refused() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-forge").await;
    let good = login["access_token"].as_str().unwrap().to_owned();
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    let user_id = validate(&mut service, &good, APP)
        .await
        .expect("a genuine token passes");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let genuine = Verifier::from_jwks(&jwks(&stack).await)
        .verify(&good, now, Some(APP))
        .unwrap();
    let expired = stack.sign(&Claims {
        iat: now - 7200,
        exp: now - 3600,
        ..genuine.clone()
    });
    let wrong_key = KeyPair::from_seed(SIGNING_KID, &[7; 32]).sign(&genuine);
    let unknown_kid = KeyPair::from_seed("k-unknown", &[7; 32]).sign(&genuine);
    let (_, rest) = good.split_once('.').unwrap();
    let alg_none = format!("{}.{rest}", base64_url(br#"{"alg":"none","kid":"k1"}"#));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = base64_url(
        serde_json::to_string(&Claims {
            sub: "999999".into(),
            ..genuine.clone()
        })
        .unwrap()
        .as_bytes(),
    );
    let other_user = parts.join(".");
    assert_ne!(
        other_user, good,
        "the forged token differs from the genuine one"
    );
    let cases: Vec<(&str, String, &str, Validation)> = vec![
        (
            "garbage",
            "not-a-token".into(),
            "",
            refused("TOKEN_INVALID"),
        ),
        ("alg none", alg_none, "", refused("TOKEN_INVALID")),
        ("claims changed", other_user, "", refused("TOKEN_INVALID")),
        (
            "signed by another key with our kid",
            wrong_key,
            "",
            refused("TOKEN_INVALID"),
        ),
        ("unknown kid", unknown_kid, "", refused("TOKEN_INVALID")),
        ("expired", expired, "", refused("TOKEN_EXPIRED")),
        (
            "for another appid",
            good.clone(),
            APP2,
            refused("TOKEN_INVALID"),
        ),
        (
            "empty",
            String::new(),
            "",
            Err((Code::InvalidArgument, "INVALID_ARGUMENT".into())),
        ),
    ];
    for (case, token, appid, expected) in cases {
        assert_eq!(
            validate(&mut service, &token, appid).await,
            expected,
            "case {case:?}"
        );
    }

    // Revoked: logout through the gateway, then the same token is refused, although it was
    // verified (and remembered) above.
    let (status, _) = stack
        .post_as(
            "/v1/logout",
            json!({"refresh_token": login["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        validate(&mut service, &good, APP).await,
        refused("TOKEN_INVALID")
    );
    assert_eq!(user_id, genuine.sub);
}

#[tokio::test]
async fn a_revocation_reaches_another_replica_within_a_second() {
    let stack = Stack::start().await;
    let replica = stack.spawn_replica("auth-service-2");
    let login = stack.v1_login(APP, "o-replica").await;
    let access = login["access_token"].as_str().unwrap();
    let user_id = login["user"]["user_id"].as_str().unwrap();
    let mut on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    assert!(
        validate(&mut on_replica, access, "").await.is_ok(),
        "the replica accepts the token first"
    );

    // An operator revokes the user on the first replica.
    let revoked = stack
        .grpc()
        .await
        .revoke_user_sessions(RevokeUserSessionsRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .revoked;
    assert_eq!(revoked, 1);
    let revoked_at = Instant::now();
    // The requirement is "within one second": poll the replica until it refuses, and fail
    // if it still accepts after that second.
    loop {
        match validate(&mut on_replica, access, "").await {
            Err(refusal) => {
                assert_eq!(refusal, (Code::Unauthenticated, "TOKEN_INVALID".to_owned()));
                break;
            }
            Ok(_) => assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "the replica still accepts a revoked token after one second"
            ),
        }
        tokio::task::yield_now().await;
    }
    let (status, _) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn services_verify_tokens_offline_with_the_published_jwks() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-offline").await;
    let response = stack
        .http
        .get(format!("{}/.well-known/jwks.json", stack.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    let published: Jwks = response.json().await.unwrap();
    assert_eq!(published.keys.len(), 1);
    assert_eq!(published.keys[0].kid, SIGNING_KID);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Verifier::from_jwks(&published)
        .verify(login["access_token"].as_str().unwrap(), now, Some(APP))
        .unwrap();
    assert_eq!(
        (claims.openid.as_str(), claims.unionid.as_deref()),
        ("o-offline", Some("u-o-offline"))
    );
    assert_eq!(claims.sub, login["user"]["user_id"].as_str().unwrap());
}

async fn jwks(stack: &Stack) -> Jwks {
    stack
        .http
        .get(format!("{}/.well-known/jwks.json", stack.gateway.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// ValidateToken remembers verified tokens; one that expires while remembered is refused from
/// the second of its expiry on, and never answered as valid after it.
#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    let stack = Stack::start_with(Options {
        access_ttl_secs: Some(2),
        ..Options::default()
    })
    .await;
    let login = stack.v1_login(APP, "o-short").await;
    let token = login["access_token"].as_str().unwrap();
    let exp = login["expires_at"].as_i64().unwrap();
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let mut accepted = 0;
    loop {
        let sent = unix_now();
        match validate(&mut service, token, APP).await {
            Ok(_) => {
                assert!(
                    sent < exp,
                    "accepted a token sent at {sent}, expired at {exp}"
                );
                accepted += 1;
            }
            Err(refusal) => {
                assert_eq!(refusal, (Code::Unauthenticated, "TOKEN_EXPIRED".to_owned()));
                assert!(unix_now() >= exp, "refused as expired before its expiry");
                break;
            }
        }
        assert!(
            unix_now() <= exp + 5,
            "still accepted long after its expiry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        accepted > 1,
        "the token was validated (and remembered) before it expired"
    );
    assert_eq!(
        validate(&mut service, token, APP).await,
        refused("TOKEN_EXPIRED"),
        "and stays refused"
    );
}
