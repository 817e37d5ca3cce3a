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
