//! Every answer of the gateway is in the envelope, its own refusals included, and says what
//! to do; `/v1/me` leaves out what is not known.

use reqwest::StatusCode;
use wxauth_e2e::stack::{APP, Stack, envelope};

#[tokio::test]
async fn the_gateways_own_refusals_are_enveloped_and_say_what_to_do() {
    let stack = Stack::start().await;
    let gateway = stack.gateway.url();

    let cases = [
        (
            "no such route",
            stack.http.get(format!("{gateway}/nope")),
            StatusCode::NOT_FOUND,
            "no such route",
        ),
        (
            "wrong method",
            stack.http.delete(format!("{gateway}/v1/login")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
        ),
        (
            "URL too long",
            stack.http.get(format!(
                "{gateway}/wxauth/getsessionkey?appid={APP}&code={}",
                "c".repeat(10_000)
            )),
            StatusCode::URI_TOO_LONG,
            "URL is longer",
        ),
        (
            "body too large",
            stack
                .http
                .post(format!("{gateway}/v1/login"))
                .header("content-type", "application/json")
                .body(format!("{{\"code\":\"{}\"}}", "c".repeat(70_000))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
        (
            "text, not JSON",
            stack
                .http
                .post(format!("{gateway}/v1/login"))
                .header("content-type", "text/plain")
                .body("appid=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "JSON labelled as a form (curl -d without -H)",
            stack
                .http
                .post(format!("{gateway}/wxauth/wxsmallusersave"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(r#"{"appid":"wx4f4bc4dec97d474b"}"#),
            StatusCode::BAD_REQUEST,
            "content-type: application/json",
        ),
    ];
    for (case, request, status, hint) in cases {
        let response = request.send().await.unwrap();
        assert!(
            response.headers().get("x-request-id").is_some(),
            "{case}: the request id is sent"
        );
        let (got, body) = envelope(response).await;
        assert_eq!(got, status, "{case}: {body}");
        assert_eq!(body["code"], 10001, "{case}: {body}");
        assert!(
            body["msg"].as_str().unwrap().contains(hint),
            "{case}: {body}"
        );
        assert!(body["request_id"].is_string(), "{case}: {body}");
    }
}

#[tokio::test]
async fn me_leaves_out_what_is_not_known() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-sparse").await;
    let (status, body) = envelope(
        stack
            .http
            .get(format!("{}/v1/me", stack.gateway.url()))
            .bearer_auth(login["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = body["data"].as_object().unwrap();
    assert!(user.contains_key("user_id") && user.contains_key("account_id"));
    for unknown in ["nickname", "avatar_url", "gender", "city", "phone_number"] {
        assert!(!user.contains_key(unknown), "{unknown} is left out: {body}");
    }
}

/// No shared cache in front of the gateway may keep an answer: they carry session ids,
/// tokens and phone numbers (RFC 6749 5.1). The public JWKS may be cached, briefly. And no
/// browser reads an answer as anything but what its content-type says.
#[tokio::test]
async fn no_answer_may_be_stored_by_a_cache_but_the_jwks() {
    let stack = Stack::start().await;
    let gateway = stack.gateway.url();
    let code = stack.mint_code(APP, "o-no-store", None).await;
    let session = stack
        .http
        .get(format!("{gateway}/wxauth/getsessionkey"))
        .query(&[("appid", APP), ("code", &code)])
        .send()
        .await
        .unwrap();
    let code = stack.mint_code(APP, "o-no-store", None).await;
    let login = stack
        .http
        .post(format!("{gateway}/v1/login"))
        .json(&serde_json::json!({"appid": APP, "code": code}))
        .send()
        .await
        .unwrap();
    let headers = |response: &reqwest::Response| {
        (
            response.headers().get("cache-control").cloned(),
            response.headers().get("pragma").cloned(),
            response.headers().get("x-content-type-options").cloned(),
        )
    };
    let answers = [
        (
            "a session id",
            headers(&session),
            session.status(),
            StatusCode::OK,
        ),
        (
            "a token pair",
            headers(&login),
            login.status(),
            StatusCode::OK,
        ),
    ];
    let tokens: serde_json::Value = login.json().await.unwrap();
    let access = tokens["data"]["access_token"].as_str().unwrap();
    let me = stack.get_me(Some(access)).await;
    let refused = stack.get_me(Some("not-a-token")).await;
    let unknown = stack
        .http
        .get(format!("{gateway}/nope"))
        .send()
        .await
        .unwrap();
    let answers = answers.into_iter().chain([
        ("the profile", headers(&me), me.status(), StatusCode::OK),
        (
            "a refusal",
            headers(&refused),
            refused.status(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no such route",
            headers(&unknown),
            unknown.status(),
            StatusCode::NOT_FOUND,
        ),
    ]);
    for (what, (cache_control, pragma, sniff), status, expected) in answers {
        assert_eq!(status, expected, "{what}");
        assert_eq!(sniff.unwrap(), "nosniff", "{what}");
        assert_eq!(
            (
                cache_control.as_ref().map(|v| v.to_str().unwrap()),
                pragma.as_ref().map(|v| v.to_str().unwrap())
            ),
            (Some("no-store"), Some("no-cache")),
            "{what} ({status})"
        );
    }
    let jwks = stack
        .http
        .get(format!("{gateway}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
    assert_eq!(jwks.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        jwks.headers().get("pragma"),
        None,
        "some caches read `Pragma: no-cache` as never caching"
    );
}

/// A refused access token is answered with the challenge of RFC 6750, which HTTP clients
/// read to tell "send a token", "log in again" and "refresh" apart.
#[tokio::test]
async fn a_refused_access_token_gets_a_bearer_challenge() {
    use base64::Engine as _;
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-challenge").await;
    let good = login["access_token"].as_str().unwrap();
    let payload = good.split('.').nth(1).unwrap();
    let mut claims: wxauth_token::Claims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims.exp = claims.iat - 60;
    claims.iat -= 120;
    let expired = stack.sign(&claims);
    let cases = [
        (None, "Bearer realm=\"wxauth\""),
        (
            Some("not-a-token"),
            "Bearer realm=\"wxauth\", error=\"invalid_token\"",
        ),
        (
            Some(expired.as_str()),
            "Bearer realm=\"wxauth\", error=\"invalid_token\", error_description=\"the access token expired\"",
        ),
        (Some(good), ""),
    ];
    for (token, challenge) in cases {
        let response = stack.get_me(token).await;
        let got = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (status, body) = envelope(response).await;
        assert_eq!(got, challenge, "{token:?}: {body}");
        if challenge.is_empty() {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(
                (status, body["code"].as_i64()),
                (StatusCode::UNAUTHORIZED, Some(10007)),
                "{token:?}: {body}"
            );
        }
    }
    // A refresh token is sent in the body, never in `authorization`: no challenge for it.
    let gateway = stack.gateway.url();
    let refused_refresh = [
        stack
            .http
            .post(format!("{gateway}/v1/token/refresh"))
            .json(&serde_json::json!({"refresh_token": "rt_not-a-token"})),
        stack
            .http
            .post(format!("{gateway}/v1/logout"))
            .json(&serde_json::json!({"refresh_token": "rt_not-a-token"})),
    ];
    for request in refused_refresh {
        let response = request.send().await.unwrap();
        let challenge = response.headers().get("www-authenticate").cloned();
        let (status, body) = envelope(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(challenge, None, "{body}");
    }
    let response = stack
        .http
        .post(format!("{gateway}/v1/logout"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"wxauth\", error=\"invalid_token\""
    );
}
