//! Graceful shutdown: a call in flight when SIGTERM arrives completes.

use wxauth_e2e::stack::{APP, Options, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_flight_when_sigterm_arrives_completes() {
    let mut stack = Stack::start().await;
    // WeChat answers slowly, so the login is still in flight when the signals arrive.
    stack.fault(None, 1_500, 1).await;
    let code = stack.mint_code(APP, "o-inflight", None).await;
    let exchanges = stack.exchanges().await;
    let http = stack.http.clone();
    let url = format!("{}/wxauth/getsessionkey", stack.gateway.url());
    let in_flight = tokio::spawn(async move {
        http.get(url)
            .query(&[("appid", APP), ("code", code.as_str())])
            .send()
            .await
    });
    // The call is in flight once it has reached WeChat (the simulator counts it).
    while stack.exchanges().await == exchanges {
        tokio::task::yield_now().await;
    }
    stack.gateway.send_term();
    stack.auth.send_term();

    let response = in_flight
        .await
        .unwrap()
        .expect("the gateway answered before stopping");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 10000, "{body}");
    let (gateway, auth) =
        tokio::task::spawn_blocking(move || (stack.gateway.wait_exit(), stack.auth.wait_exit()))
            .await
            .unwrap();
    assert!(
        gateway.success() && auth.success(),
        "gateway {gateway:?}, auth-service {auth:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_is_bounded_by_the_grace_period() {
    let mut stack = Stack::start_with(Options {
        wechat_timeout_ms: 10_000,
        shutdown_grace_secs: Some(1),
        ..Options::default()
    })
    .await;
    // WeChat takes 5 s: longer than the 1 s grace.
    stack.fault(None, 5_000, 1).await;
    let code = stack.mint_code(APP, "o-slow-stop", None).await;
    let exchanges = stack.exchanges().await;
    let http = stack.http.clone();
    let url = format!("{}/wxauth/getsessionkey", stack.gateway.url());
    let in_flight = tokio::spawn(async move {
        http.get(url)
            .query(&[("appid", APP), ("code", code.as_str())])
            .send()
            .await
    });
    while stack.exchanges().await == exchanges {
        tokio::task::yield_now().await;
    }
    stack.auth.send_term();
    // Waiting on the process blocks; this runtime has a second worker for the client.
    let exit = tokio::task::block_in_place(|| stack.auth.wait_exit());
    assert!(exit.success(), "{exit:?}");
    // The auth-service stopped before WeChat answered: the client gets 503, not a hang.
    let response = in_flight.await.unwrap().expect("the gateway answered");
    assert_eq!(response.status(), 503);
}
