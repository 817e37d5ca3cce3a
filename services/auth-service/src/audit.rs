//! The audit trail. Successful logins, refreshes and revocations are recorded by the very
//! statement that makes them (they cannot be lost or outrun); refusals (a refused login, a
//! refused caller key) are queued here and written in batches by a background task, so a
//! flood of bad requests costs the database one insert per batch, not one per request. If
//! the queue is full the event is dropped and counted (`wxauth_audit_dropped_total`).

use std::{pin::pin, sync::Arc};

use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    domain::{AuditEvent, NewAuditEvent},
    error::AuthError,
    metrics::Metrics,
    store::PgStore,
};

/// Events waiting for the writer at most.
const QUEUE: usize = 10_000;
/// Events written per statement at most.
const BATCH: usize = 500;

/// The audit trail of this replica.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<NewAuditEvent>,
    store: PgStore,
    metrics: Arc<Metrics>,
}

/// The background writer; run it for the life of the process.
#[derive(Debug)]
pub struct AuditWriter {
    queue: mpsc::Receiver<NewAuditEvent>,
    store: PgStore,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// The log, and the writer that must run beside it.
    pub fn new(store: PgStore, metrics: Arc<Metrics>) -> (Self, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (
            Self {
                queue: sender,
                store: store.clone(),
                metrics: metrics.clone(),
            },
            AuditWriter {
                queue: receiver,
                store,
                metrics,
            },
        )
    }

    /// Queues an event without waiting.
    pub fn record(&self, event: NewAuditEvent) {
        if self.queue.try_send(event).is_err() {
            self.metrics.audit_dropped();
        }
    }

    /// A user's events, newest first.
    pub async fn of_user(
        &self,
        user_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(self.store.audit_events_of(user_id, before, limit).await?)
    }
}

impl AuditWriter {
    /// Writes queued events in batches until `stop` completes (or every [`AuditLog`] is
    /// dropped). Then it closes the queue, so a later event is dropped and counted, and
    /// writes what is still in it: a refusal recorded just before a shutdown reaches the
    /// database instead of going down with the process.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut stop = pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                received = self.queue.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    self.write(&mut batch).await;
                }
            }
        }
        self.queue.close();
        while self.queue.recv_many(&mut batch, BATCH).await > 0 {
            self.write(&mut batch).await;
        }
    }

    async fn write(&self, batch: &mut Vec<NewAuditEvent>) {
        if let Err(err) = self.store.record_audit_events(batch).await {
            warn!(error = %err, events = batch.len(), "cannot write audit events; dropped");
            for _ in 0..batch.len() {
                self.metrics.audit_dropped();
            }
        }
        batch.clear();
    }
}
