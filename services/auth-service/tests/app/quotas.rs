//! The quota toward WeChat is the deployment's, not each replica's: three replicas share a
//! limit of L calls a second, on the service's clock (frozen, then moved a second).

use std::time::Duration;

use tonic::Code;
use wxauth_harness::eventually;
use wxauth_proto::v1::LoginRequest;

use crate::support::{APP, TestApp};

const LIMIT: u64 = 6;

#[tokio::test]
async fn three_replicas_together_stay_within_the_apps_limit_and_refusals_spend_no_code() {
    let limit = format!("--wechat-calls-per-second={LIMIT}");
    let burst = format!("--wechat-calls-burst={LIMIT}");
    let first = TestApp::spawn(&[&limit, &burst]).await;
    let replicas = [first.replica().await, first.replica().await];
    let all = [&first, &replicas[0], &replicas[1]];
    for app in all {
        eventually(
            "every replica counts three",
            Duration::from_secs(10),
            || async { app.metric("wxauth_replicas_alive").await == Some(3.0) },
        )
        .await;
    }
    let mut clients = Vec::new();
    for app in all {
        clients.push(app.client(0).await);
    }

    // 5L logins offered in the same (frozen) second, spread over the replicas.
    let exchanges = || async { first.sim_stats().await["exchanges"].as_u64().unwrap() };
    let before = exchanges().await;
    let mut refused = Vec::new();
    let mut logged_in = 0;
    for at in 0..5 * LIMIT {
        let openid = format!("o-quota-{at}");
        let code = first.code(&openid);
        let client = &mut clients[usize::try_from(at).unwrap() % 3];
        match client
            .login(LoginRequest {
                scope: String::new(),
                appid: APP.into(),
                code: code.clone(),
            })
            .await
        {
            Ok(_) => logged_in += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused.push(code);
            }
        }
    }
    let spent = exchanges().await - before;
    assert_eq!(
        spent, logged_in,
        "only the logins let through reached WeChat"
    );
    assert!(
        spent <= LIMIT,
        "{spent} calls reached WeChat in one second (limit {LIMIT})"
    );
    assert!(
        spent >= LIMIT / 2,
        "the replicas' shares add up to most of the limit: {spent}"
    );

    // A second later, the refused codes are still good: nothing refused was spent.
    first.clock.advance(1);
    let code = refused.pop().unwrap();
    clients[0]
        .login(LoginRequest {
            scope: String::new(),
            appid: APP.into(),
            code,
        })
        .await
        .expect("a refused code works once the quota allows");
}
