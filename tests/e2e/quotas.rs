//! Quotas that protect WeChat's limits: each app's calls to WeChat (in the auth-service) and
//! each client's login requests (at the gateway). Over either: 429 with 10006 and
//! `retry-after`, and WeChat is not called.

use std::time::Duration;

use reqwest::StatusCode;
use wxauth_e2e::{
    eventually,
    stack::{APP, Options, Stack, envelope},
};

async fn get_session_key(
    stack: &Stack,
    code: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = stack
        .http
        .get(format!("{}/wxauth/getsessionkey", stack.gateway.url()))
        .query(&[("appid", APP), ("code", code)]);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_app_over_its_wechat_quota_is_refused_before_wechat_and_keeps_its_code() {
    // One call a second, two at once.
    let stack = Stack::start_with(Options {
        auth_env: vec![
            ("WXAUTH_WECHAT_CALLS_PER_SECOND", "1".into()),
            ("WXAUTH_WECHAT_CALLS_BURST", "2".into()),
        ],
        ..Options::default()
    })
    .await;
    for openid in ["o-q1", "o-q2"] {
        let code = stack.mint_code(APP, openid, None).await;
        let (status, body) = envelope(get_session_key(&stack, &code, None).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let exchanges = stack.exchanges().await;

    let code = stack.mint_code(APP, "o-q3", None).await;
    let response = get_session_key(&stack, &code, None).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a retry-after header");
    assert!(retry_after >= 1);
    let (status, body) = envelope(response).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(10006)),
        "{body}"
    );
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("WXAUTH_WECHAT_CALLS_PER_SECOND")
    );
    assert_eq!(stack.exchanges().await, exchanges, "WeChat was not called");

    // The refused code was not spent: sent again once the quota allows, it logs in.
    eventually(
        "the same code goes through later",
        Duration::from_secs(10),
        || async {
            let (status, body) = envelope(get_session_key(&stack, &code, None).await).await;
            status == StatusCode::OK && body["data"].is_string()
        },
    )
    .await;

    let metrics = stack.scrape(&stack.auth).await;
    assert!(
        metric(
            &metrics,
            &format!("wxauth_wechat_quota_refused_total{{appid=\"{APP}\"}}")
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_over_its_login_quota_gets_429_and_others_do_not() {
    let stack = Stack::start_with(Options {
        gateway_env: vec![
            ("GATEWAY_LOGIN_RATE_PER_MINUTE", "1".into()),
            ("GATEWAY_LOGIN_BURST", "2".into()),
        ],
        ..Options::default()
    })
    .await;
    // Two requests pass (they fail at WeChat: the codes are made up), the third is
    // refused at the gateway.
    for _ in 0..2 {
        let (status, _) = envelope(get_session_key(&stack, "made-up-code", None).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let exchanges = stack.exchanges().await;
    let response = get_session_key(&stack, "made-up-code", None).await;
    assert!(response.headers().get("retry-after").is_some());
    let (status, body) = envelope(response).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(10006)),
        "{body}"
    );
    assert_eq!(
        stack.exchanges().await,
        exchanges,
        "the auth-service was not called"
    );

    // Without a trusted proxy, x-forwarded-for does not buy a new bucket.
    let (status, _) = envelope(get_session_key(&stack, "c", Some("203.0.113.9")).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Routes that do not log in are not counted.
    let health = stack
        .http
        .get(format!("{}/healthz", stack.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = stack.scrape(&stack.gateway).await;
    assert!(
        metric(
            &metrics,
            "wxauth_gateway_rate_limited_total{route=\"/wxauth/getsessionkey\"}"
        ) >= 2.0,
        "{metrics}"
    );
}

/// A gateway whose login quota is one request per minute, behind `proxies` trusted proxies.
async fn behind_proxies(proxies: &str) -> Stack {
    Stack::start_with(Options {
        gateway_env: vec![
            ("GATEWAY_LOGIN_RATE_PER_MINUTE", "1".into()),
            ("GATEWAY_LOGIN_BURST", "1".into()),
            ("GATEWAY_TRUST_FORWARDED_FOR", "true".into()),
            ("GATEWAY_TRUSTED_PROXIES", proxies.into()),
        ],
        ..Options::default()
    })
    .await
}

/// The status of a login request (with a code WeChat refuses) sent with `forwarded` as its
/// `x-forwarded-for`.
async fn forwarded_status(stack: &Stack, forwarded: &str) -> StatusCode {
    envelope(get_session_key(stack, "c", Some(forwarded)).await)
        .await
        .0
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_quota() {
    // One proxy: it appends the address it saw; the client may have written hops before it.
    let stack = behind_proxies("1").await;
    let status = |forwarded| forwarded_status(&stack, forwarded);
    assert_eq!(status("203.0.113.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status("203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same client again"
    );
    assert_eq!(
        status("198.51.100.7, 203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a hop the client wrote itself buys no new bucket"
    );
    assert_eq!(
        status("203.0.113.2").await,
        StatusCode::UNAUTHORIZED,
        "another client behind the proxy"
    );
    // An IPv6 client may take any address of its /64: one bucket holds the /64.
    assert_eq!(status("2001:db8:1:2::1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status("2001:db8:1:2::99").await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address of the same /64"
    );
    assert_eq!(
        status("2001:db8:1:3::1").await,
        StatusCode::UNAUTHORIZED,
        "another /64"
    );

    // Two proxies: the client is the second hop from the right.
    let stack = behind_proxies("2").await;
    let status = |forwarded| forwarded_status(&stack, forwarded);
    assert_eq!(
        status("203.0.113.1, 10.0.0.1").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status("198.51.100.7, 203.0.113.1, 10.0.0.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same client, with a hop of its own"
    );
    assert_eq!(
        status("203.0.113.2, 10.0.0.1").await,
        StatusCode::UNAUTHORIZED,
        "another client behind the same two proxies"
    );
}
