//! Graceful shutdown: a call in flight when SIGTERM arrives completes.

use tokio::task::JoinHandle;
use wxauth_e2e::stack::{APP, Options, Stack};

/// Starts a login that WeChat answers after `wechat_delay_ms`, and returns once it is in
/// flight: it has reached WeChat (the simulator counts it).
async fn login_in_flight(
    stack: &Stack,
    wechat_delay_ms: u64,
) -> JoinHandle<reqwest::Result<reqwest::Response>> {
    stack.fault(None, wechat_delay_ms, 1).await;
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
    wxauth_e2e::eventually(
        "the login reaches WeChat",
        std::time::Duration::from_secs(10),
        || async { stack.exchanges().await > exchanges },
    )
    .await;
    in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_flight_when_sigterm_arrives_completes() {
    let mut stack = Stack::start_processes().await;
    // WeChat answers slowly, so the login is still in flight when the signals arrive.
    let in_flight = login_in_flight(&stack, 1_500).await;
    stack.gateway.process().send_term();
    stack.auth.process().send_term();

    let response = in_flight
        .await
        .unwrap()
        .expect("the gateway answered before stopping");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 10000, "{body}");
    // Waiting on the processes blocks; this runtime has a second worker for the client.
    let (gateway, auth) = tokio::task::block_in_place(|| {
        (
            stack.gateway.process().wait_exit(),
            stack.auth.process().wait_exit(),
        )
    });
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
        processes: true,
        ..Options::default()
    })
    .await;
    // WeChat takes 5 s: longer than the 1 s grace.
    let in_flight = login_in_flight(&stack, 5_000).await;
    stack.auth.process().send_term();
    // Waiting on the process blocks; this runtime has a second worker for the client.
    let exit = tokio::task::block_in_place(|| stack.auth.process().wait_exit());
    assert!(exit.success(), "{exit:?}");
    // The auth-service stopped before WeChat answered: the client gets 503, not a hang.
    let response = in_flight.await.unwrap().expect("the gateway answered");
    assert_eq!(response.status(), 503);
}
