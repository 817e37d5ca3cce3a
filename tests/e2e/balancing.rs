//! Many replicas behind one gateway: calls are balanced across them, a replica that dies
//! costs no read-only call (it is retried on another), a restarted one takes traffic again,
//! and one that cannot use its database takes none while another can.

use std::time::Duration;

use reqwest::StatusCode;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wxauth_e2e::{
    db::TestDb,
    eventually,
    process::{Listening as _, Proc},
    stack::{APP, Stack, channel_to},
};

/// How many GetMe calls a replica has answered, from its metrics.
async fn get_me_calls(stack: &Stack, replica: &Proc) -> f64 {
    stack
        .scrape(replica)
        .await
        .lines()
        .filter(|line| line.starts_with("wxauth_rpc_requests_total{method=\"GetMe\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn me(stack: &Stack, gateway: &Proc, token: &str) -> StatusCode {
    stack
        .http
        .get(format!("{}/v1/me", gateway.url()))
        .bearer_auth(token)
        .send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |response| response.status())
}

/// A gateway balancing over the replicas listening on `ports`, with no login quota.
fn balanced_gateway(stack: &Stack, ports: [u16; 2]) -> Proc {
    let urls: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    Proc::spawn_named(
        "gateway",
        "gateway-balanced",
        &[
            ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
            ("GATEWAY_METRICS_ADDR", "127.0.0.1:0".into()),
            ("AUTH_GRPC_URL", urls.join(",")),
            ("AUTH_CALLER_KEY", stack.keys.gateway.clone()),
            ("GATEWAY_LOGIN_RATE_PER_MINUTE", "0".into()),
        ],
        stack.dir(),
    )
}

#[tokio::test]
async fn a_gateway_balances_across_replicas_and_survives_one_dying() {
    let stack = Stack::start().await;
    let token = stack.v1_login(APP, "o-balanced").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each replica binds a port of its own choosing and says which: a port picked first
    // and bound later could be taken in between by a test running beside this one.
    let replica = |name: &str, port: u16| {
        stack.spawn_replica_with(name, &[("WXAUTH_GRPC_ADDR", format!("127.0.0.1:{port}"))])
    };
    let a = replica("auth-a", 0);
    let b = replica("auth-b", 0);
    let port_a = a.addr().port();
    let gateway = balanced_gateway(&stack, [port_a, b.addr().port()]);

    for _ in 0..60 {
        assert_eq!(me(&stack, &gateway, &token).await, StatusCode::OK);
    }
    assert!(get_me_calls(&stack, &a).await > 0.0, "replica a took calls");
    assert!(get_me_calls(&stack, &b).await > 0.0, "replica b took calls");

    // Replica a dies without a word (SIGKILL); calls keep being answered, 8 at a time.
    let mut a = a;
    a.kill_hard();
    for _ in 0..20 {
        let answers = futures_join(&stack, &gateway, &token, 8).await;
        assert!(
            answers.iter().all(|status| *status == StatusCode::OK),
            "every read-only call is answered while a replica is down: {answers:?}"
        );
    }
    drop(a);

    // Restarted on its address, it takes traffic again.
    let a = replica("auth-a-restarted", port_a);
    eventually(
        "the restarted replica takes calls",
        Duration::from_secs(20),
        || async {
            for _ in 0..10 {
                assert_eq!(me(&stack, &gateway, &token).await, StatusCode::OK);
            }
            get_me_calls(&stack, &a).await > 0.0
        },
    )
    .await;
}

/// `n` GetMe calls at once; their statuses.
async fn futures_join(stack: &Stack, gateway: &Proc, token: &str, n: usize) -> Vec<StatusCode> {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url, token) = (
            stack.http.clone(),
            format!("{}/v1/me", gateway.url()),
            token.to_owned(),
        );
        calls.spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .map_or(StatusCode::BAD_GATEWAY, |response| response.status())
        });
    }
    calls.join_all().await
}

#[tokio::test]
async fn a_gateway_follows_the_addresses_of_a_dns_name() {
    let stack = Stack::start().await;
    let token = stack.v1_login(APP, "o-dns").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = stack.auth.addr().port();
    let gateway = Proc::spawn_named(
        "gateway",
        "gateway-dns",
        &[
            ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
            ("GATEWAY_METRICS_ADDR", "127.0.0.1:0".into()),
            ("AUTH_GRPC_URL", format!("http://localhost:{port}")),
            ("AUTH_GRPC_RESOLVE_SECS", "1".into()),
            ("AUTH_CALLER_KEY", stack.keys.gateway.clone()),
        ],
        stack.dir(),
    );
    eventually(
        "the name's addresses are looked up and used",
        Duration::from_secs(10),
        || async { me(&stack, &gateway, &token).await == StatusCode::OK },
    )
    .await;
    for _ in 0..20 {
        assert_eq!(me(&stack, &gateway, &token).await, StatusCode::OK);
    }
}

/// A replica that cannot use its database says NOT_SERVING, and the gateway leaves it out
/// while another serves: no login lands on it. Before, the balancer only checked that a
/// replica accepted TCP connections, and every login sent to it failed with 503.
#[tokio::test]
async fn a_replica_that_cannot_use_its_database_takes_no_logins_while_another_serves() {
    let stack = Stack::start().await;
    // Replica a has a database of its own, which it is then cut off from.
    let own = TestDb::create().await;
    let a = stack.spawn_replica_with("auth-a", &[("DATABASE_URL", own.url.clone())]);
    let b = stack.spawn_replica("auth-b");
    let gateway = balanced_gateway(&stack, [a.addr().port(), b.addr().port()]);
    own.admin("alter database {db} allow_connections false")
        .await;
    own.admin("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{db}'")
        .await;
    let health = HealthClient::new(channel_to(&a).await);
    eventually(
        "replica a says NOT_SERVING",
        Duration::from_secs(15),
        || {
            let mut health = health.clone();
            async move {
                health
                    .check(HealthCheckRequest {
                        service: "wxauth.v1.AuthService".into(),
                    })
                    .await
                    .is_ok_and(|answer| {
                        answer.into_inner().status == ServingStatus::NotServing as i32
                    })
            }
        },
    )
    .await;

    let login = |n: usize| {
        let (stack, gateway) = (&stack, &gateway);
        async move {
            let code = stack.mint_code(APP, &format!("o-shunned-{n}"), None).await;
            stack
                .http
                .get(format!("{}/wxauth/getsessionkey", gateway.url()))
                .query(&[("appid", APP), ("code", code.as_str())])
                .send()
                .await
                .map_or(StatusCode::BAD_GATEWAY, |response| response.status())
        }
    };
    let mut n = 0;
    eventually(
        "ten logins in a row land on the replica that serves",
        Duration::from_secs(20),
        || {
            n += 10;
            let first = n;
            async move {
                for n in first..first + 10 {
                    if login(n).await != StatusCode::OK {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
}
