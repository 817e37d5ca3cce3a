//! Revocation that cannot go stale: a replica whose listener is silenced (not closed) stops
//! trusting its cache as soon as its heartbeat is missed, and a replica knows what it revoked
//! itself without waiting for its listener. A replica whose database goes silent says so
//! instead of holding its callers.

use std::time::Duration;

use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;
use wxauth_e2e::{
    db::with_address,
    eventually,
    process::Proc,
    proxy::Proxy,
    stack::{APP, Stack},
};
use wxauth_proto::v1::{RevokeUserSessionsRequest, ValidateTokenRequest};

/// ValidateToken of the access token a `/v1/login` answered.
fn validation_of(login: &Value) -> ValidateTokenRequest {
    ValidateTokenRequest {
        token: login["access_token"].as_str().unwrap().into(),
        appid: APP.into(),
    }
}

/// RevokeUserSessions of the user a `/v1/login` answered.
fn revocation_of(login: &Value) -> RevokeUserSessionsRequest {
    RevokeUserSessionsRequest {
        user_id: login["user"]["user_id"].as_str().unwrap().into(),
    }
}

/// RevokeUserSessions of the user of `login`, through the stack's own auth-service (not the
/// replica under test).
async fn revoke_on_the_other_replica(stack: &Stack, login: &Value) {
    stack
        .grpc()
        .await
        .revoke_user_sessions(revocation_of(login))
        .await
        .unwrap();
}

/// A refusal's code and reason.
fn refusal(status: &tonic::Status) -> (Code, Option<String>) {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone());
    (status.code(), reason)
}

#[tokio::test]
async fn a_silenced_listener_stops_the_cache_answering_and_a_revocation_elsewhere_holds() {
    let stack = Stack::start().await;
    let (_proxy, replica) = replica_with_a_silenced_listener(&stack, "200").await;
    let login = stack.v1_login(APP, "o-silenced").await;
    let behind = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    let validate = || {
        let (mut client, request) = (behind.clone(), validation_of(&login));
        async move { client.validate_token(request).await }
    };
    assert!(validate().await.is_ok());

    // The other replica revokes: its NOTIFY never reaches the silenced listener.
    revoke_on_the_other_replica(&stack, &login).await;
    eventually(
        "the replica behind the silenced listener refuses the revoked token",
        Duration::from_secs(5),
        || async {
            match validate().await {
                Ok(_) => false,
                Err(status) => {
                    assert_eq!(
                        refusal(&status),
                        (Code::Unauthenticated, Some("TOKEN_INVALID".into()))
                    );
                    true
                }
            }
        },
    )
    .await;
    eventually("the replica says why", Duration::from_secs(5), || async {
        replica.log().contains("missed its heartbeat")
    })
    .await;
    // And it keeps refusing.
    assert!(validate().await.is_err());
}

/// A replica whose database connections pass through a proxy, once its revocation cache is
/// live.
async fn replica_behind_a_proxy(
    stack: &Stack,
    heartbeat_ms: &str,
    settings: &[(&'static str, String)],
) -> (Proxy, Proc) {
    let upstream = stack
        .db
        .tcp_address()
        .expect("this test needs DATABASE_URL over TCP");
    let proxy = Proxy::start(upstream);
    let mut changes = vec![
        ("DATABASE_URL", with_address(&stack.db.url, proxy.addr)),
        ("WXAUTH_REVOCATION_HEARTBEAT_MS", heartbeat_ms.into()),
    ];
    changes.extend_from_slice(settings);
    let replica = stack.spawn_replica_with("auth-behind-proxy", &changes);
    eventually(
        "the replica's cache is live",
        Duration::from_secs(10),
        || async { replica.log().contains("revocation listener connected") },
    )
    .await;
    (proxy, replica)
}

/// The same, with its LISTEN connection silenced by the proxy: open, carrying nothing.
async fn replica_with_a_silenced_listener(stack: &Stack, heartbeat_ms: &str) -> (Proxy, Proc) {
    let (proxy, replica) = replica_behind_a_proxy(stack, heartbeat_ms, &[]).await;
    // The replica's LISTEN connection, as the database sees it: its client port is the
    // proxy's upstream side.
    let pool = stack.db.pool().await;
    eventually("the replica listens", Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i32>(
            "select client_port from pg_stat_activity \
             where datname = current_database() and query ilike 'listen%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .any(|port| proxy.silence(port as u16))
    })
    .await;
    (proxy, replica)
}

#[tokio::test]
async fn the_replica_that_revokes_a_user_refuses_the_tokens_at_once() {
    let stack = Stack::start().await;
    // A heartbeat far longer than the test: the cache stays trusted throughout and no
    // notification arrives, so only what the replica knows of its own revocation can refuse.
    let (_proxy, replica) = replica_with_a_silenced_listener(&stack, "600000").await;
    let login = stack.v1_login(APP, "o-revoked-here").await;
    let mut ops = stack.grpc_to(&replica, Some(&stack.keys.ops)).await;
    assert!(
        ops.validate_token(validation_of(&login)).await.is_ok(),
        "valid before the revocation (and now in the replica's cache of verified tokens)"
    );

    let revoked = ops
        .revoke_user_sessions(revocation_of(&login))
        .await
        .unwrap()
        .into_inner()
        .revoked;
    assert_eq!(revoked, 1);

    let refused = ops
        .validate_token(validation_of(&login))
        .await
        .expect_err("the replica that revoked the user must refuse its token straight away");
    assert_eq!(
        refusal(&refused),
        (Code::Unauthenticated, Some("TOKEN_INVALID".into()))
    );
    assert!(
        !replica.log().contains("missed its heartbeat"),
        "the cache was trusted all along: the refusal came from it, not from the database"
    );
}

#[tokio::test]
async fn a_replica_whose_every_connection_goes_silent_stops_trusting_its_cache() {
    let stack = Stack::start().await;
    let (proxy, replica) = replica_behind_a_proxy(&stack, "200", &[]).await;
    let login = stack.v1_login(APP, "o-all-silent").await;
    let mut behind = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    assert!(behind.validate_token(validation_of(&login)).await.is_ok());

    // Every connection of the replica to the database goes silent at once (a flushed NAT
    // table, a failover): its heartbeat's own statement hangs with the rest, and must not
    // hang the check.
    proxy.silence_all();
    eventually(
        "the replica notices its heartbeat is gone",
        Duration::from_secs(10),
        || async { replica.log().contains("missed its heartbeat") },
    )
    .await;

    // A revocation it cannot hear is not honoured from its cache.
    revoke_on_the_other_replica(&stack, &login).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        behind.validate_token(validation_of(&login)),
    )
    .await;
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "a replica that hears nothing must not vouch for a revoked token"
    );
}

#[tokio::test]
async fn a_replica_whose_database_goes_silent_answers_unavailable_instead_of_hanging() {
    let stack = Stack::start().await;
    let (proxy, replica) = replica_behind_a_proxy(
        &stack,
        "200",
        &[("WXAUTH_DB_STATEMENT_TIMEOUT_MS", "300".into())],
    )
    .await;
    let (first, second) = (
        stack.v1_login(APP, "o-silent-db-1").await,
        stack.v1_login(APP, "o-silent-db-2").await,
    );
    let mut ops = stack.grpc_to(&replica, Some(&stack.keys.ops)).await;
    // A write through the replica's pool, so its connection is in steady use (not one the
    // pool would ping before handing it out).
    ops.revoke_user_sessions(revocation_of(&first))
        .await
        .unwrap();

    // Every connection goes silent: open, carrying nothing, as after a flushed NAT table.
    proxy.silence_all();
    // The server would have ended the statement at 300 ms; with no answer long after that,
    // the replica says "unavailable" (a client can try another replica) instead of holding
    // the caller until its deadline, here the service's own ceiling of 30 s.
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        ops.revoke_user_sessions(revocation_of(&second)),
    )
    .await
    .expect("an answer long before the caller's deadline");
    let status = answer.expect_err("nothing was revoked");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // The silenced connection was closed, not handed to the next call: new connections
    // flow, so the replica answers again.
    eventually(
        "the replica revokes again over a fresh connection",
        Duration::from_secs(10),
        || {
            let (mut ops, request) = (ops.clone(), revocation_of(&second));
            async move { ops.revoke_user_sessions(request).await.is_ok() }
        },
    )
    .await;
}
