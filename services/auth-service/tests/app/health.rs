//! gRPC health as an orchestrator watches it.

use std::{sync::Arc, time::Duration};

use auth_service::{
    metrics::Metrics,
    quotas::WeChatQuota,
    revocation::Revocations,
    upkeep::{Health, Replica, report_health},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use wxauth_harness::eventually;
use wxauth_process::metrics::Readiness;

use crate::support::{TestApp, store_of_one_connection};

/// The status line of `GET /readyz` on the metrics listener (HTTP/1.1 by hand: one request).
async fn readyz(app: &TestApp) -> String {
    let mut stream = TcpStream::connect(app.metrics_addr).await.unwrap();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: wxauth\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_health_name_and_readyz_turn_not_ready_when_shutdown_starts() {
    let mut app = TestApp::spawn(&[]).await;
    assert_eq!(readyz(&app).await, "HTTP/1.1 200 OK");
    let mut watches = Vec::new();
    for service in ["", "wxauth.v1.AuthService"] {
        let mut stream = HealthClient::new(app.channel().await)
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap().status;
        assert_eq!(
            first,
            ServingStatus::Serving as i32,
            "{service:?} serves first"
        );
        watches.push((service, stream));
    }
    app.begin_stop();
    for (service, mut stream) in watches {
        let next = stream.message().await.unwrap().unwrap().status;
        assert_eq!(
            next,
            ServingStatus::NotServing as i32,
            "{service:?} on shutdown"
        );
    }
    // Readiness turns with gRPC health (before it, in fact), for an HTTP probe.
    assert_eq!(readyz(&app).await, "HTTP/1.1 503 Service Unavailable");
    app.stop().await;
}

#[tokio::test]
async fn a_pool_with_no_connection_to_spare_is_load_not_an_unreachable_database() {
    let (db, pool, store) = store_of_one_connection().await;
    let (reporter, _service) = tonic_health::server::health_reporter();
    let readiness = Readiness::new();
    let health = Health::new(reporter, readiness.clone());
    health.set(tonic_health::ServingStatus::Serving).await;
    let metrics = Arc::new(Metrics::new().0);
    let replica = Replica {
        id: "r-health".into(),
        quota: Arc::new(WeChatQuota::new(
            0,
            0,
            Arc::new(auth_service::clock::SystemClock),
            metrics.clone(),
        )),
    };
    let reporting = tokio::spawn(report_health(
        store,
        health,
        metrics,
        Revocations::new(Duration::from_secs(900)),
        replica,
    ));

    // Every connection of the pool busy (a burst of logins), for longer than a ping may take
    // (2 s): pings still answered, on a connection of their own, after that.
    let held = pool.lease().await.unwrap();
    let observer = db.pool().await;
    let held_at: f64 = sqlx::query_scalar("select extract(epoch from clock_timestamp())::float8")
        .fetch_one(&observer)
        .await
        .unwrap();
    eventually(
        "a ping answered more than 2.5 s after the pool was exhausted",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, bool>(
                "select exists (select 1 from pg_stat_activity where datname = current_database() \
                 and query in ($2, $3) and state = 'idle' \
                 and extract(epoch from state_change) > $1 + 2.5)",
            )
            .bind(held_at)
            .bind(auth_service::store::upkeep::PING)
            .bind(auth_service::store::upkeep::REPLICA_BEAT)
            .fetch_one(&observer)
            .await
            .unwrap()
        },
    )
    .await;
    assert!(readiness.is_ready(), "a busy pool is not an outage");
    drop(held);
    reporting.abort();
}
