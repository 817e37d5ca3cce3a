//! The phone number by the code of the `getPhoneNumber` button, and the app access_token it
//! needs: fetched once per expiry across replicas, never reused once WeChat refused it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::stack::{APP, APP2, Options, Stack, sim_count};
use wxauth_proto::v1::{BindPhoneNumberRequest, ListAppAccessTokensRequest};

#[tokio::test]
async fn a_phone_number_is_bound_with_the_buttons_code_once() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-phone").await;
    let token = login["access_token"].as_str().unwrap();

    let code = stack.mint_phone_code(APP, "o-phone", "13800138000").await;
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["phone_number"], "13800138000");
    assert_eq!(body["data"]["pure_phone_number"], "13800138000");
    assert_eq!(body["data"]["phone_country_code"], "86");

    // The code works once: claimed like a login code, it never reaches WeChat again (each
    // success is paid for); its own envelope code, nothing changed.
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["errcode"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(10010), None),
        "{body}"
    );
    assert_eq!(stack.sim_stats().await["phone_calls"], 1);

    // WeChat's own example sends the country code as a number: it is kept as text.
    let numeric = stack
        .sim_post(
            "/sim/phone_code",
            json!({"appid": APP, "openid": "o-phone", "phone_number": "+852 61234567",
                   "pure_phone_number": "61234567", "country_code": "852",
                   "country_code_as_number": true}),
        )
        .await;
    let (status, body) = stack
        .bind_phone(Some(token), json!({ "code": numeric["code"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["phone_country_code"], "852");

    // One token served both calls.
    let stats = stack.sim_stats().await;
    assert_eq!(sim_count(&stats, "token_fetches", APP), 1, "{stats}");

    // Operators see the token's state, never the token.
    let listed = stack
        .grpc()
        .await
        .list_app_access_tokens(ListAppAccessTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    let entry = listed
        .tokens
        .iter()
        .find(|entry| entry.appid == APP)
        .unwrap();
    assert!(entry.has_token);
    assert_eq!(entry.refreshes, 1);
    assert_eq!(entry.last_outcome, "ok");
    assert!(entry.expires_at.is_some() && entry.fetched_at.is_some());
    assert!(!format!("{listed:?}").contains("sim-at-"), "{listed:?}");
    assert!(!stack.logs().contains("sim-at-"), "no token in any log");
}

#[tokio::test]
async fn phone_refusals_get_their_codes_and_write_nothing() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-phone-bad").await;
    let token = login["access_token"].as_str().unwrap();
    let other_user = stack
        .mint_phone_code(APP, "o-someone-else", "13900000000")
        .await;
    let other_app = stack
        .mint_phone_code(APP2, "o-phone-bad", "13900000001")
        .await;

    // WeChat cannot give a token: the call fails cleanly and operators see why.
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "stable_token", "errcode": -1}),
        )
        .await;
    let fresh = stack
        .mint_phone_code(APP, "o-phone-bad", "13700000000")
        .await;
    let (status, body) = stack
        .bind_phone(Some(token), json!({ "code": fresh }))
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10005)),
        "{body}"
    );
    let listed = stack
        .grpc()
        .await
        .list_app_access_tokens(ListAppAccessTokensRequest {})
        .await
        .unwrap()
        .into_inner();
    let entry = listed
        .tokens
        .iter()
        .find(|entry| entry.appid == APP)
        .unwrap();
    assert!(!entry.has_token);
    assert_eq!(entry.last_outcome, "errcode -1");

    let busy = stack
        .mint_phone_code(APP, "o-phone-bad", "13700000001")
        .await;
    let limited = stack
        .mint_phone_code(APP, "o-phone-bad", "13700000002")
        .await;
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "getuserphonenumber", "errcode": -1}),
        )
        .await;
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": busy })).await;
    assert_eq!(
        (status, body["code"].as_i64(), body["errcode"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10005), Some(-1)),
        "{body}"
    );
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "getuserphonenumber", "errcode": 45011}),
        )
        .await;
    let (status, body) = stack
        .bind_phone(Some(token), json!({ "code": limited }))
        .await;
    assert_eq!(
        (status, body["code"].as_i64(), body["errcode"].as_i64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(10006), Some(45011)),
        "{body}"
    );

    let cases: Vec<(&str, Option<&str>, Value, u16, i64)> = vec![
        (
            "another user's code",
            Some(token),
            json!({"code": other_user}),
            400,
            10010,
        ),
        (
            "another app's code",
            Some(token),
            json!({"code": other_app}),
            400,
            10010,
        ),
        (
            "an unknown code",
            Some(token),
            json!({"code": "nope"}),
            400,
            10010,
        ),
        ("no code", Some(token), json!({}), 400, 10001),
        (
            "a malformed code",
            Some(token),
            json!({"code": "a b"}),
            400,
            10001,
        ),
        ("no bearer", None, json!({"code": "abc"}), 401, 10007),
        (
            "a forged bearer",
            Some("x.y.z"),
            json!({"code": "abc"}),
            401,
            10007,
        ),
    ];
    for (case, bearer, body, status, code) in cases {
        let (got, answer) = stack.bind_phone(bearer, body).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_i64()),
            (status, Some(code)),
            "{case}: {answer}"
        );
    }
    let phones: i64 =
        sqlx::query_scalar("select count(*) from users where phone_number is not null")
            .fetch_one(&stack.db.pool().await)
            .await
            .unwrap();
    assert_eq!(phones, 0, "nothing half-written");
}

#[tokio::test]
async fn replicas_fetch_one_token_per_expiry_and_drop_one_wechat_refused() {
    // Tokens that live 241 s are due for refresh (under 240 s left) a second after they are
    // fetched, and both replicas look for due tokens every 200 ms.
    let stack = Stack::start_with(Options {
        auth_env: vec![("WXAUTH_APP_TOKEN_CHECK_MS", "200".into())],
        sim_env: vec![("WECHAT_SIM_TOKEN_TTL_SECS", "241".into())],
        ..Options::default()
    })
    .await;
    let replica = stack.spawn_replica("auth-b");
    let mut via_a = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let mut via_b = stack.grpc_to(&replica, Some(&stack.keys.gateway)).await;
    let a_user = stack.v1_login(APP, "o-replica-a").await;
    let b_user = stack.v1_login(APP, "o-replica-b").await;
    let request = |user: &Value, code: String| BindPhoneNumberRequest {
        access_token: user["access_token"].as_str().unwrap().into(),
        code,
    };

    // Both replicas need the first token at once: one fetches it, the other reads it.
    let (code_a, code_b) = (
        stack
            .mint_phone_code(APP, "o-replica-a", "13800000001")
            .await,
        stack
            .mint_phone_code(APP, "o-replica-b", "13800000002")
            .await,
    );
    let (a, b) = tokio::join!(
        via_a.bind_phone_number(request(&a_user, code_a)),
        via_b.bind_phone_number(request(&b_user, code_b)),
    );
    a.unwrap();
    b.unwrap();
    let stats = stack.sim_stats().await;
    assert!(sim_count(&stats, "token_fetches", APP) >= 1, "{stats}");
    assert_eq!(
        sim_count(&stats, "token_fetches", APP),
        sim_count(&stats, "tokens_issued", APP),
        "the replica that waited for the lock read the token instead of fetching it: {stats}"
    );

    // WeChat invalidates the token: the first call to notice retries with a new one, and
    // the other replica reads that one instead of trying the dead token.
    stack.end_access_tokens(APP, "invalidate").await;
    let before = stack.sim_stats().await;
    let code = stack
        .mint_phone_code(APP, "o-replica-a", "13800000003")
        .await;
    via_a
        .bind_phone_number(request(&a_user, code))
        .await
        .expect("retried once with a current token");
    let code = stack
        .mint_phone_code(APP, "o-replica-b", "13800000004")
        .await;
    via_b
        .bind_phone_number(request(&b_user, code))
        .await
        .expect("the other replica uses the current token");
    let after = stack.sim_stats().await;
    assert!(
        after["token_refusals"].as_u64().unwrap() - before["token_refusals"].as_u64().unwrap() <= 1,
        "only the call that found out used the invalidated token: {after}"
    );

    // Expired tokens are refreshed ahead of time by one replica: a few refresh rounds
    // later, every fetch brought a new token (a fetch by the second replica would have
    // brought the same one back).
    let rounds = sim_count(&after, "token_fetches", APP) + 2;
    wxauth_e2e::eventually(
        "two more refreshes ahead of expiry",
        std::time::Duration::from_secs(30),
        || async { sim_count(&stack.sim_stats().await, "token_fetches", APP) >= rounds },
    )
    .await;
    let stats = stack.sim_stats().await;
    assert_eq!(
        sim_count(&stats, "token_fetches", APP),
        sim_count(&stats, "tokens_issued", APP),
        "one fetch per expiry across both replicas: {stats}"
    );
    drop(replica);
}
