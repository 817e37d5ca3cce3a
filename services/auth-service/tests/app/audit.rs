//! The audit trail's background writer: what is queued when the service stops still reaches
//! the database, and what comes after is counted as dropped, never lost silently.

use std::sync::Arc;

use auth_service::{
    audit::AuditLog,
    domain::{AuditKind, CallContext, NewAuditEvent},
    metrics::Metrics,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

use crate::support::{APP, TestApp};

fn refusal(user_id: i64, n: usize) -> NewAuditEvent {
    NewAuditEvent {
        kind: AuditKind::LoginRefused,
        outcome: format!("REFUSED_{n}"),
        appid: Some(APP.into()),
        user_id: Some(user_id),
        openid_digest: None,
        family_id: None,
        context: CallContext {
            caller: Some("gateway".into()),
            client_addr: Some("192.0.2.7".into()),
            request_id: format!("rid-audit-{n}"),
        },
    }
}

/// `wxauth_audit_dropped_total` as exported.
fn dropped(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text.lines()
        .find(|line| line.starts_with("wxauth_audit_dropped_total "))
        .unwrap_or_else(|| panic!("no audit_dropped counter in:\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn events_queued_when_the_writer_stops_are_written_and_later_ones_counted() {
    let app = TestApp::spawn(&[]).await;
    let store = app.store();
    let (metrics, registry) = Metrics::new();
    let (log, writer) = AuditLog::new(store.clone(), Arc::new(metrics));
    let user_id = 7_000_000_001;
    for n in 0..3 {
        log.record(refusal(user_id, n));
    }

    // Told to stop before it took anything: all it writes is what the queue held then.
    writer.run(std::future::ready(())).await;

    let trail = store.audit_events_of(user_id, None, 10).await.unwrap();
    let outcomes: Vec<&str> = trail.iter().map(|event| event.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["REFUSED_2", "REFUSED_1", "REFUSED_0"],
        "{trail:?}"
    );
    assert_eq!(trail[0].request_id.as_deref(), Some("rid-audit-2"));
    assert_eq!(dropped(&registry), "wxauth_audit_dropped_total 0");

    // The queue is closed now: an event is refused at once and counted.
    log.record(refusal(user_id, 3));
    assert_eq!(dropped(&registry), "wxauth_audit_dropped_total 1");
    assert_eq!(
        store
            .audit_events_of(user_id, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}
