//! The audit trail's tallies of refusals and reads: a flood is one row per minute and client
//! with its count, nothing is dropped while the database refuses the writes, and what was
//! counted before a stop is written.

use std::sync::Arc;

use auth_service::{
    audit::{AuditLog, MAX_TALLIES},
    domain::{AuditFilter, AuditKind, CallContext, NewAuditEvent},
    metrics::Metrics,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

use crate::support::{APP, TestApp};

fn refusal(client: &str, n: usize) -> NewAuditEvent {
    NewAuditEvent {
        kind: AuditKind::LoginRefused,
        outcome: "CODE_REJECTED".into(),
        appid: Some(APP.into()),
        user_id: None,
        openid_digest: None,
        family_id: None,
        account_id: None,
        context: CallContext {
            caller: Some("gateway".into()),
            client_addr: Some(client.into()),
            request_id: format!("rid-{n}"),
            client_request_id: Some(format!("client-rid-{n}")),
            reach: Default::default(),
        },
    }
}

/// `wxauth_audit_unwritten` as exported.
fn unwritten(registry: &Registry) -> i64 {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("wxauth_audit_unwritten "))
        .unwrap_or_else(|| panic!("no audit_unwritten gauge in:\n{text}"))
        .parse()
        .unwrap()
}

fn refusals() -> AuditFilter {
    AuditFilter {
        kinds: vec![AuditKind::LoginRefused],
        limit: 500,
        ..AuditFilter::default()
    }
}

#[tokio::test]
async fn a_flood_is_one_row_per_client_and_minute_with_its_count() {
    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let store = app.store();
    let (metrics, registry) = Metrics::new();
    let (log, writer) = AuditLog::new(
        store.clone(),
        Arc::new(app.clock.clone()),
        Arc::new(metrics),
    );
    for n in 0..1_000 {
        log.tally(refusal("192.0.2.7", n));
    }
    log.tally(refusal("198.51.100.1", 1_000));
    assert_eq!(unwritten(&registry), 1_001);
    assert!(writer.write_now().await);
    assert_eq!(unwritten(&registry), 0);
    let rows = store.audit_events(&refusals()).await.unwrap();
    let mut seen: Vec<(Option<&str>, i64)> = rows
        .iter()
        .map(|row| (row.client_addr.as_deref(), row.count))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [(Some("192.0.2.7"), 1_000), (Some("198.51.100.1"), 1)]
    );
    let first = rows.iter().find(|row| row.count == 1_000).unwrap();
    assert_eq!(
        first.request_id.as_deref(),
        Some("rid-0"),
        "the first call's ids"
    );
    assert_eq!(first.client_request_id.as_deref(), Some("client-rid-0"));

    // More in the same minute add to the row; the next minute starts another.
    for n in 0..5 {
        log.tally(refusal("192.0.2.7", n));
    }
    assert!(writer.write_now().await);
    app.clock.advance(60);
    log.tally(refusal("192.0.2.7", 9));
    assert!(writer.write_now().await);
    let mut counts: Vec<i64> = store
        .audit_events(&refusals())
        .await
        .unwrap()
        .iter()
        .filter(|row| row.client_addr.as_deref() == Some("192.0.2.7"))
        .map(|row| row.count)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1_005]);
}

#[tokio::test]
async fn nothing_is_dropped_while_the_database_refuses_the_writes() {
    use sqlx::Connection as _;

    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let store = app.store();
    let (metrics, registry) = Metrics::new();
    let (log, writer) = AuditLog::new(
        store.clone(),
        Arc::new(app.clock.clone()),
        Arc::new(metrics),
    );
    let mut admin = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("alter table audit_events rename to audit_events_away")
        .execute(&mut admin)
        .await
        .unwrap();
    for n in 0..3 {
        log.tally(refusal("192.0.2.8", n));
    }
    assert!(!writer.write_now().await, "the database refuses");
    log.tally(refusal("192.0.2.8", 3));
    assert_eq!(unwritten(&registry), 4, "kept, not dropped");
    sqlx::query("alter table audit_events_away rename to audit_events")
        .execute(&mut admin)
        .await
        .unwrap();
    // Told to stop: it writes what it holds before it returns.
    writer.run(std::future::ready(())).await;
    assert_eq!(unwritten(&registry), 0);
    let rows = store.audit_events(&refusals()).await.unwrap();
    assert_eq!(
        rows.iter().map(|row| row.count).collect::<Vec<_>>(),
        [4],
        "{rows:?}"
    );
}

#[tokio::test]
async fn past_the_bound_new_clients_fold_into_one_coarse_row() {
    let app = TestApp::spawn(&["--purge-interval-secs=3600"]).await;
    let (metrics, _registry) = Metrics::new();
    let (log, writer) = AuditLog::new(app.store(), Arc::new(app.clock.clone()), Arc::new(metrics));
    let clients = MAX_TALLIES + 5;
    for n in 0..clients {
        log.tally(refusal(
            &format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255),
            n,
        ));
    }
    assert!(writer.write_now().await);
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&app.db.url).await.unwrap();
    let total: i64 = sqlx::query_scalar(
        "select sum(count)::bigint from audit_events where kind = 'login_refused'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(total, clients as i64, "every event counted");
    let coarse: Vec<(Option<String>, Option<i64>, i64)> = sqlx::query_as(
        "select client_addr, user_id, count from audit_events \
         where kind = 'login_refused' and client_addr is null",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(coarse.len(), 1, "{coarse:?}");
    assert_eq!(coarse[0], (None, None, 5));
}
