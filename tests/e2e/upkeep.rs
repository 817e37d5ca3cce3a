//! What a replica does in the background: health that follows the database, and purging.

use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wxauth_e2e::{
    db::TestDb,
    eventually,
    pg::Cluster,
    stack::{APP, Options, Stack, envelope},
};

async fn status(stack: &Stack, service: &str) -> i32 {
    HealthClient::new(stack.channel().await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|answer| answer.into_inner().status)
        .unwrap_or(-1)
}

/// The status of `GET /readyz` on the auth-service's metrics listener.
async fn readyz(stack: &Stack) -> u16 {
    let addr = stack.auth.metrics_addr().expect("the metrics address");
    stack
        .http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("the metrics listener answers")
        .status()
        .as_u16()
}

/// Waits until the AuthService's health says `want`.
async fn until_health(stack: &Stack, want: ServingStatus) {
    eventually(
        &format!("health says {want:?}"),
        Duration::from_secs(15),
        || async { status(stack, "wxauth.v1.AuthService").await == want as i32 },
    )
    .await;
}

/// Sets the whole server's `default_transaction_read_only` (`None`: back to its default)
/// and has every session read it again, as a provider gone read-only does.
async fn set_server_read_only(stack: &Stack, read_only: Option<bool>) {
    let statement = match read_only {
        Some(on) => format!("alter system set default_transaction_read_only = {on}"),
        None => "alter system reset default_transaction_read_only".to_owned(),
    };
    stack.db.admin(&statement).await;
    stack.db.admin("select pg_reload_conf()").await;
}

/// A seed login's first call for a fresh code of `openid`: status and envelope.
async fn fresh_login(stack: &Stack, openid: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let code = stack.mint_code(APP, openid, None).await;
    stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await
}

#[tokio::test]
async fn health_is_not_serving_while_the_database_is_unreachable() {
    let stack = Stack::start().await;
    assert_eq!(
        status(&stack, "wxauth.v1.AuthService").await,
        ServingStatus::Serving as i32
    );
    assert_eq!(readyz(&stack).await, 200);

    // Take the database away: no new connections, existing ones ended.
    stack
        .db
        .admin("alter database {db} allow_connections false")
        .await;
    stack
        .db
        .admin("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{db}'")
        .await;
    for service in ["", "wxauth.v1.AuthService"] {
        eventually(
            &format!("health of {service:?} says NOT_SERVING"),
            Duration::from_secs(15),
            || async { status(&stack, service).await == ServingStatus::NotServing as i32 },
        )
        .await;
    }
    // The plain-HTTP readiness says the same (it is set together with gRPC health).
    assert_eq!(readyz(&stack).await, 503);
    // Meanwhile a login is answered 503, not 500.
    let (http_status, body) = fresh_login(&stack, "o-outage").await;
    assert_eq!(
        (http_status.as_u16(), body["code"].as_i64()),
        (503, Some(10500)),
        "{body}"
    );

    stack
        .db
        .admin("alter database {db} allow_connections true")
        .await;
    until_health(&stack, ServingStatus::Serving).await;
    assert_eq!(readyz(&stack).await, 200);
    let (http_status, _) = fresh_login(&stack, "o-outage").await;
    assert_eq!(http_status.as_u16(), 200, "logins work again");
}

/// A database that answers but takes no writes (the old primary after a failover, or a
/// managed server gone read-only with a full disk) cannot serve a login either. Before, the
/// health ping (`select 1`) passed, so the replica stayed SERVING while every login failed,
/// and each failure was a 500 "internal error" a client does not retry.
#[tokio::test]
async fn a_database_that_takes_no_writes_is_not_serving_and_logins_are_503() {
    // Its own server: the setting is the whole server's, as a provider's would be.
    let cluster = Cluster::start();
    let stack = Stack::start_on(TestDb::create_on(cluster.url()).await, Options::default()).await;
    set_server_read_only(&stack, Some(true)).await;
    until_health(&stack, ServingStatus::NotServing).await;
    assert_eq!(readyz(&stack).await, 503);
    let code = stack.mint_code(APP, "o-read-only", None).await;
    let response = stack
        .get_session_key_answer(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (http_status, body) = envelope(response).await;
    assert_eq!(
        (http_status.as_u16(), body["code"].as_i64()),
        (503, Some(10500)),
        "{body}"
    );
    assert!(body["msg"].as_str().unwrap().contains("retry"), "{body}");

    set_server_read_only(&stack, None).await;
    until_health(&stack, ServingStatus::Serving).await;
    // The code was refused before WeChat saw it (its claim could not be written): it works.
    let (http_status, body) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(http_status.as_u16(), 200, "{body}");
}

/// A failover as a replica sees it: the connections it holds reach the old primary, now
/// read-only, and every new one reaches the writable new primary. It must let go of all of
/// them, the health ping's own included, and serve again. Before, the ping kept its
/// connection to the old primary, and the replica stayed NOT_SERVING for as long as that
/// server lived.
#[tokio::test]
async fn after_a_failover_the_replica_reconnects_and_serves_again() {
    let cluster = Cluster::start();
    let stack = Stack::start_on(TestDb::create_on(cluster.url()).await, Options::default()).await;
    // The health ping has opened its connection (it reports the database up after its first
    // ping): it is one of those the failover must turn read-only.
    eventually("the first health ping", Duration::from_secs(5), || async {
        stack
            .scrape(&stack.auth)
            .await
            .lines()
            .any(|line| line == "wxauth_database_up 1")
    })
    .await;
    // New connections are writable: a setting of the database, read when a session starts.
    stack
        .db
        .admin("alter database {db} set default_transaction_read_only = off")
        .await;
    // Open ones turn read-only: the server's setting, read at a reload, which the database's
    // setting outranks only in sessions that start after it.
    set_server_read_only(&stack, Some(true)).await;
    eventually(
        "the replica saw the read-only server, then serves again",
        Duration::from_secs(20),
        || async {
            let log = stack.auth.log();
            log.find("database cannot serve logins")
                .is_some_and(|at| log[at..].contains("takes writes again: serving"))
        },
    )
    .await;
    assert_eq!(
        status(&stack, "wxauth.v1.AuthService").await,
        ServingStatus::Serving as i32
    );
    let (http_status, body) = fresh_login(&stack, "o-failed-over").await;
    assert_eq!(http_status.as_u16(), 200, "{body}");
}

#[tokio::test]
async fn expired_rows_are_purged_and_live_ones_kept() {
    let stack = Stack::start_with(Options {
        purge_interval_secs: Some(1),
        ..Options::default()
    })
    .await;
    let first = stack.v1_login(APP, "o-kept").await;
    // o-kept's family has a used token and its live successor; only the used one expires,
    // and the family stays with the live one.
    let (status, kept) = stack.v1_refresh(&first["refresh_token"]).await;
    assert_eq!(status, 200, "{kept}");
    let kept = kept["data"].clone();
    stack.v1_login(APP, "o-gone").await;
    // Age what belongs to o-gone, and every code.
    stack
        .execute("update used_codes set created_at = now() - interval '1 hour'")
        .await;
    stack.execute("update login_sessions set expires_at = now() - interval '1 second' where openid = 'o-gone'").await;
    stack
        .execute(
            "update refresh_tokens set expires_at = now() - interval '1 second' where family_id in \
             (select f.family_id from token_families f join users u using (user_id) where u.openid = 'o-gone') \
             or used_at is not null",
        )
        .await;
    stack
        .execute("update token_families set created_at = now() - interval '1 hour'")
        .await;

    eventually(
        "the purge removes what expired",
        Duration::from_secs(15),
        || async {
            stack.count("used_codes").await == 0 && stack.count("token_families").await == 1
        },
    )
    .await;
    assert_eq!(stack.count("login_sessions").await, 1);
    assert_eq!(stack.count("refresh_tokens").await, 1);
    assert_eq!(stack.count("users").await, 2, "users are never purged");
    // The kept login still works.
    let response = stack
        .http
        .get(format!("{}/v1/me", stack.gateway.url()))
        .bearer_auth(kept["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
