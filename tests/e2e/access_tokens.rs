//! The app access_token behind the phone number and the session_key checks: what WeChat says
//! of it is believed only within reason, and calls that need it while it is being fetched
//! share one fetch, waiting without holding database connections.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wxauth_e2e::{
    eventually,
    process::Proc,
    stack::{APP, CallerKey, Stack, channel_to, sim_count},
};
use wxauth_proto::v1::{
    BindPhoneNumberRequest, BindPhoneNumberResponse, CreateSessionRequest,
    auth_service_client::AuthServiceClient,
};

/// A token said to live longer than WeChat's two hours is kept for two hours at most. Before,
/// a lifetime past the database's interval range made the call an internal error.
#[tokio::test]
async fn a_token_lifetime_longer_than_wechats_is_not_believed() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-phone-long").await;
    let token = login["access_token"].as_str().unwrap();
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "stable_token",
                   "body": format!(r#"{{"access_token":"not-the-sims","expires_in":{}}}"#, i64::MAX)}),
        )
        .await;
    // The token is not one the simulator issued: WeChat's 40001 makes the service fetch a
    // real one and call again, so the bind goes through.
    let code = stack
        .mint_phone_code(APP, "o-phone-long", "13800138000")
        .await;
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The long-lived one was kept and used (WeChat refused it once), then a real one fetched.
    let stats = stack.sim_stats().await;
    assert_eq!(stats["token_refusals"], 1, "{stats}");
    assert_eq!(sim_count(&stats, "token_fetches", APP), 1, "{stats}");
}

/// WeChat refusing the app's token again right after a fresh one was fetched is an outage
/// that passes, not an unknown error: UNAVAILABLE with a retry delay, 503 and `retry-after`
/// at the gateway, and the phone code is not spent.
#[tokio::test]
async fn a_token_refused_again_after_a_fresh_fetch_is_unavailable_with_a_retry_delay() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-phone-refused").await;
    let token = login["access_token"].as_str().unwrap();
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "getuserphonenumber", "errcode": 40001, "times": 2}),
        )
        .await;
    let code = stack
        .mint_phone_code(APP, "o-phone-refused", "13800138000")
        .await;
    let response = stack
        .http
        .post(format!("{}/v1/me/phone", stack.gateway.url()))
        .bearer_auth(token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (status, body["code"].as_i64(), body["errcode"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10005), Some(40001)),
        "{body}"
    );
    assert!(retry_after.is_some(), "503 says when to retry");
    let stats = stack.sim_stats().await;
    assert_eq!(
        stats["token_refusals"], 0,
        "the refusals were the queued ones: {stats}"
    );
    // Both faults were spent: the next bind goes through.
    let code = stack
        .mint_phone_code(APP, "o-phone-refused", "13800138000")
        .await;
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A replica whose calls to WeChat are watched, with `changes` to its settings, a user's
/// access token, and `n` fresh phone codes of that user.
async fn replica_with_codes(
    stack: &Stack,
    changes: &[(&'static str, String)],
    n: usize,
) -> (Proc, String, Vec<String>) {
    let login = stack.v1_login(APP, "o-phone-wait").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let replica = stack.spawn_replica_with("auth-watched", changes);
    let mut codes = Vec::new();
    for n in 0..n {
        let number = format!("1380013800{n}");
        codes.push(stack.mint_phone_code(APP, "o-phone-wait", &number).await);
    }
    (replica, token, codes)
}

/// BindPhoneNumber with each code at once on `replica`.
async fn bind_at_once(
    stack: &Stack,
    replica: &Proc,
    token: &str,
    codes: Vec<String>,
) -> Vec<tokio::task::JoinHandle<Result<tonic::Response<BindPhoneNumberResponse>, tonic::Status>>> {
    let channel = channel_to(replica).await;
    codes
        .into_iter()
        .map(|code| {
            let mut client = AuthServiceClient::with_interceptor(
                channel.clone(),
                CallerKey::new(&stack.keys.gateway).unwrap(),
            );
            let access_token = token.to_owned();
            tokio::spawn(async move {
                client
                    .bind_phone_number(BindPhoneNumberRequest { access_token, code })
                    .await
            })
        })
        .collect()
}

/// While WeChat is slow to give a token, the calls that need it wait on the replica for the
/// one refresh in flight, holding no database connection: before, each waited for the
/// database's refresh lock on a connection of its own, so a burst of them emptied the pool
/// under the logins and failed at the statement timeout.
#[tokio::test]
async fn calls_waiting_for_a_token_share_one_refresh_and_leave_the_pool_to_logins() {
    let stack = Stack::start().await;
    let (narrow, token, codes) = replica_with_codes(
        &stack,
        &[
            ("WXAUTH_DB_MAX_CONNECTIONS", "2".into()),
            ("WXAUTH_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
        ],
        4,
    )
    .await;
    // No token is stored yet, and WeChat takes 2.5 s to give one.
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "stable_token", "delay_ms": 2500}),
        )
        .await;
    let binds = bind_at_once(&stack, &narrow, &token, codes).await;
    // The refresh is in flight: a backend holds the app's refresh lock.
    let pool = stack.db.pool().await;
    eventually(
        "the refresh lock is taken",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_locks where locktype = 'advisory' and granted",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                > 0
        },
    )
    .await;

    // A login on the same replica meanwhile goes through.
    let code = stack.mint_code(APP, "o-login-meanwhile", None).await;
    stack
        .grpc_to(&narrow, Some(&stack.keys.gateway))
        .await
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code,
        })
        .await
        .expect("a login is not starved by calls waiting for a token");

    for bind in binds {
        let bound = bind.await.unwrap();
        assert!(
            bound.is_ok(),
            "every waiting call gets the token: {bound:?}"
        );
    }
    let stats = stack.sim_stats().await;
    assert_eq!(sim_count(&stats, "token_fetches", APP), 1, "{stats}");
}

/// When WeChat fails the refresh that calls were waiting for, they fail with it (503, retry
/// later) instead of asking WeChat again one after another, each as slowly.
#[tokio::test]
async fn calls_waiting_for_a_token_share_the_failure_of_its_refresh() {
    let stack = Stack::start().await;
    let (replica, token, codes) = replica_with_codes(&stack, &[], 4).await;
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "stable_token", "errcode": -1, "delay_ms": 1500, "times": 4}),
        )
        .await;
    for bind in bind_at_once(&stack, &replica, &token, codes).await {
        let status = bind.await.unwrap().expect_err("no token could be had");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let metrics = stack.scrape(&replica).await;
    let asked: f64 = metrics
        .lines()
        .filter(|line| line.starts_with(r#"wxauth_wechat_calls_total{api="stable_token""#))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(asked, 1.0, "WeChat was asked once: {metrics}");
}
