//! Profile fill-in: what `chooseAvatar` and the nickname input give, stored through
//! `POST /v1/me/profile` and never overwritten by WeChat's placeholder at a later login.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::stack::{APP, Stack, envelope};
use wxauth_proto::v1::UpdateProfileRequest;

async fn fill_in(stack: &Stack, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    stack.post_as("/v1/me/profile", body, token).await
}

async fn me(stack: &Stack, token: &str) -> Value {
    let (status, body) = envelope(stack.get_me(Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

#[tokio::test]
async fn a_filled_in_profile_is_stored_and_survives_the_placeholder() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-profile").await;
    let token = login["access_token"].as_str().unwrap();

    let avatar = "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132";
    let (status, body) = fill_in(
        &stack,
        Some(token),
        json!({"nickname": "小明 Ming", "avatar_url": avatar}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["nickname"], "小明 Ming");
    assert_eq!(body["data"]["avatar_url"], avatar);

    // One field alone changes only that field.
    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "Ming"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown = me(&stack, token).await;
    assert_eq!(shown["nickname"], "Ming");
    assert_eq!(shown["avatar_url"], avatar);

    // A later login whose wx.getUserInfo() gives WeChat's placeholder keeps what the user
    // filled in.
    let data = stack
        .login(
            APP,
            "o-profile",
            json!({"nickName": "微信用户", "avatarUrl": "https://thirdwx.qlogo.cn/grey/0", "gender": 0}),
        )
        .await;
    assert_eq!(data["user"]["nickname"], "Ming", "{data}");
    assert_eq!(data["user"]["avatar_url"], avatar, "{data}");

    // Over gRPC, as the gateway calls it: the same rules.
    let mut gateway = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let refused = gateway
        .update_profile(UpdateProfileRequest {
            access_token: token.into(),
            nickname: None,
            avatar_url: Some("http://insecure.example/a.png".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("https://"), "{refused:?}");
}

#[tokio::test]
async fn a_profile_that_breaks_its_rules_is_refused_and_nothing_changes() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-profile-bad").await;
    let token = login["access_token"].as_str().unwrap();
    let (status, _) = fill_in(&stack, Some(token), json!({"nickname": "Kept"})).await;
    assert_eq!(status, StatusCode::OK);

    let cases: Vec<(&str, Value, u16, i64)> = vec![
        ("nothing", json!({}), 400, 10001),
        ("nulls only", json!({"nickname": null}), 400, 10001),
        ("empty nickname", json!({"nickname": ""}), 400, 10001),
        (
            "control character",
            json!({"nickname": "a\u{7}b"}),
            400,
            10001,
        ),
        ("newline", json!({"nickname": "a\nb"}), 400, 10001),
        (
            "65 characters",
            json!({"nickname": "界".repeat(65)}),
            400,
            10001,
        ),
        (
            "http avatar",
            json!({"avatar_url": "http://a.example/x.png"}),
            400,
            10001,
        ),
        (
            "avatar too long",
            json!({"avatar_url": format!("https://a/{}", "x".repeat(1015))}),
            400,
            10001,
        ),
        (
            "avatar with a space",
            json!({"avatar_url": "https://a.example/x y.png"}),
            400,
            10001,
        ),
    ];
    for (case, body, status, code) in cases {
        let (got, answer) = fill_in(&stack, Some(token), body).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_i64()),
            (status, Some(code)),
            "{case}: {answer}"
        );
    }
    let (got, answer) = fill_in(&stack, None, json!({"nickname": "x"})).await;
    assert_eq!(
        (got, answer["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007))
    );
    let (got, _) = fill_in(&stack, Some("not.a.token"), json!({"nickname": "x"})).await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);

    assert_eq!(me(&stack, token).await["nickname"], "Kept");
}

/// WeChat passes on whatever the user typed; PostgreSQL's text cannot hold a NUL. Before,
/// such a nickname made every login of that user an internal error (500, 10500).
#[tokio::test]
async fn a_nul_in_wechats_profile_is_dropped_and_the_login_goes_through() {
    let stack = Stack::start().await;
    let data = stack
        .login(
            APP,
            "o-nul",
            json!({"nickName": "Ba\u{0}nd", "city": "\u{0}", "province": "Guangdong", "gender": 1}),
        )
        .await;
    assert_eq!(data["user"]["nickname"], "Band", "{data}");
    assert_eq!(data["user"]["city"], Value::Null, "{data}");
    assert_eq!(data["user"]["province"], "Guangdong", "{data}");
}

/// What operators see of the user's nickname check.
async fn nickname_check(stack: &Stack, user_id: &str) -> wxauth_proto::v1::NicknameCheck {
    stack
        .grpc()
        .await
        .get_user(wxauth_proto::v1::GetUserRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap()
        .nickname_check()
}

#[tokio::test]
async fn nicknames_go_through_wechats_content_check() {
    use wxauth_proto::v1::NicknameCheck;

    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-checked").await;
    let token = login["access_token"].as_str().unwrap();
    let user_id = login["user"]["user_id"].as_str().unwrap();
    let checks = || async { stack.sim_stats().await["content_checks"].as_u64().unwrap() };

    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "Ming"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(nickname_check(&stack, user_id).await, NicknameCheck::Passed);
    assert_eq!(checks().await, 1);

    // Risky: refused with its own code, nothing stored.
    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "来赌博"})).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(10012)),
        "{body}"
    );
    assert_eq!(me(&stack, token).await["nickname"], "Ming");

    // Review: stored, flagged for operators (the user is not told).
    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "加微信 xyz"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["nickname"], "加微信 xyz");
    assert_eq!(nickname_check(&stack, user_id).await, NicknameCheck::Review);

    // An avatar alone is not checked, and keeps the flag of the nickname.
    let before = checks().await;
    let (status, _) = fill_in(
        &stack,
        Some(token),
        json!({"avatar_url": "https://thirdwx.qlogo.cn/mmopen/x/132"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checks().await, before);
    assert_eq!(nickname_check(&stack, user_id).await, NicknameCheck::Review);

    // The check fails (WeChat busy; the user not seen within two hours): refused, retry
    // later, nothing stored.
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "msg_sec_check", "errcode": -1}),
        )
        .await;
    let answer = stack
        .http
        .post(format!("{}/v1/me/profile", stack.gateway.url()))
        .bearer_auth(token)
        .json(&json!({"nickname": "Busy"}))
        .send()
        .await
        .unwrap();
    assert!(answer.headers().contains_key("retry-after"));
    let (status, body) = envelope(answer).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10005)),
        "{body}"
    );
    stack
        .sim_post(
            "/sim/seen",
            json!({"appid": APP, "openid": "o-checked", "seconds_ago": 3 * 3600}),
        )
        .await;
    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "Away"})).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["errcode"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10005), Some(61010)),
        "{body}"
    );
    assert_eq!(me(&stack, token).await["nickname"], "加微信 xyz");
    let metrics = stack.scrape(&stack.auth).await;
    for outcome in ["pass", "review", "risky", "failed"] {
        assert!(
            metrics.contains(&format!(
                "wxauth_nickname_checks_total{{appid=\"{APP}\",outcome=\"{outcome}\"}}"
            )),
            "{outcome}"
        );
    }
}

#[tokio::test]
async fn a_lenient_deployment_stores_an_unchecked_nickname_and_avatars_stay_on_the_apps_hosts() {
    use wxauth_proto::v1::NicknameCheck;

    let stack = Stack::start_with(wxauth_e2e::stack::Options {
        auth_env: vec![
            ("WXAUTH_NICKNAME_CHECK", "fail-open".into()),
            (
                "WXAUTH_AVATAR_HOSTS",
                format!("{APP}:cdn.example.com|.img.example.org"),
            ),
        ],
        ..wxauth_e2e::stack::Options::default()
    })
    .await;
    let login = stack.v1_login(APP, "o-lenient").await;
    let token = login["access_token"].as_str().unwrap();
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "msg_sec_check", "errcode": -1}),
        )
        .await;
    let (status, body) = fill_in(&stack, Some(token), json!({"nickname": "Lenient"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        nickname_check(&stack, login["user"]["user_id"].as_str().unwrap()).await,
        NicknameCheck::Unchecked
    );
    // A risky one is still refused: the policy is about a check that could not be made.
    let (status, _) = fill_in(&stack, Some(token), json!({"nickname": "代开发票"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for (url, accepted) in [
        ("https://cdn.example.com/a.png", true),
        ("https://x.img.example.org/a.png", true),
        ("https://thirdwx.qlogo.cn/mmopen/x/132", false),
        ("https://cdn.example.com.evil.test/a.png", false),
    ] {
        let (status, body) = fill_in(&stack, Some(token), json!({"avatar_url": url})).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
        } else {
            assert_eq!(
                (status, body["code"].as_i64()),
                (StatusCode::BAD_REQUEST, Some(10001)),
                "{url}"
            );
            assert!(
                body["msg"]
                    .as_str()
                    .unwrap()
                    .contains("WXAUTH_AVATAR_HOSTS"),
                "{body}"
            );
        }
    }
    // Another app without a list takes any https host.
    let other = stack.v1_login(wxauth_e2e::stack::APP2, "o-lenient").await;
    let (status, _) = fill_in(
        &stack,
        other["access_token"].as_str(),
        json!({"avatar_url": "https://thirdwx.qlogo.cn/mmopen/x/132"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
