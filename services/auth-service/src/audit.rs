//! The audit trail.
//!
//! - A change to a user's data (a login, a refresh, a revocation, a profile or phone update,
//!   a session_key reset) is recorded by the statement or transaction that makes it: it
//!   cannot be lost or outrun, and a change that did not commit has no row.
//! - Refusals (a refused login, refresh, phone bind or caller key) and operators' reads of
//!   user data are tallied here. Events of one minute that differ only in their time fold
//!   into one row with a `count`: the first is written within a second, and later ones add
//!   to its count. A flood of bad requests costs the database a row per distinct client,
//!   caller and outcome a minute, not one per request, and so cannot fill the table.
//! - Nothing is dropped. A tally the database refused is kept and written at the next try;
//!   past [`MAX_TALLIES`] distinct tallies in memory, new events fold into coarser ones (no
//!   client address, no user), which keeps the count and the memory bounded.

use std::{
    collections::HashMap,
    pin::pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use tracing::warn;

use crate::{
    clock::{SharedClock, Timestamp},
    domain::{AuditEvent, AuditFilter, AuditKind, NewAuditEvent},
    error::AuthError,
    metrics::Metrics,
    store::{PgStore, audit::NewTally},
};

/// How often tallies are written.
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// The most distinct tallies held in memory; past it, new events fold into coarser ones.
pub const MAX_TALLIES: usize = 10_000;
/// How long one tally gathers events.
const WINDOW_SECS: i64 = 60;

/// What a tally is kept by: everything of an event but its time, within one minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    window: i64,
    kind: AuditKind,
    outcome: String,
    appid: Option<String>,
    user_id: Option<i64>,
    family_id: Option<i64>,
    account_id: Option<i64>,
    actor: Option<String>,
    client_addr: Option<String>,
}

impl Key {
    fn of(event: &NewAuditEvent, window: i64) -> Self {
        Self {
            window,
            kind: event.kind,
            outcome: event.outcome.clone(),
            appid: event.appid.clone(),
            user_id: event.user_id,
            family_id: event.family_id,
            account_id: event.account_id,
            actor: event.context.caller.clone(),
            client_addr: event.context.client_addr.clone(),
        }
    }

    /// The same without what makes keys many: who the client was and which user.
    fn coarse(&self) -> Self {
        Self {
            user_id: None,
            family_id: None,
            account_id: None,
            client_addr: None,
            ..self.clone()
        }
    }
}

/// Events of one key.
#[derive(Debug)]
struct Tally {
    /// The first event, as it will be written.
    first: NewAuditEvent,
    /// When the first happened.
    at: Timestamp,
    /// Its row, once written.
    event_id: Option<i64>,
    /// Events counted but not yet in the database.
    unwritten: i64,
}

#[derive(Debug)]
struct Inner {
    store: PgStore,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tallies: Mutex<HashMap<Key, Tally>>,
}

/// The audit trail of this replica; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

/// The background writer of the tallies; run it for the life of the process.
#[derive(Debug)]
pub struct AuditWriter {
    inner: Arc<Inner>,
}

impl AuditLog {
    /// The log, and the writer that must run beside it.
    pub fn new(store: PgStore, clock: SharedClock, metrics: Arc<Metrics>) -> (Self, AuditWriter) {
        let inner = Arc::new(Inner {
            store,
            clock,
            metrics,
            tallies: Mutex::new(HashMap::new()),
        });
        (
            Self {
                inner: inner.clone(),
            },
            AuditWriter { inner },
        )
    }

    /// Counts a refusal or a read; it reaches the database within a second (or, while the
    /// database refuses, at the first write it takes). Never waits.
    pub fn tally(&self, mut event: NewAuditEvent) {
        let at = self.inner.clock.timestamp();
        let window = at.secs().div_euclid(WINDOW_SECS);
        let mut tallies = self.inner.lock();
        let mut key = Key::of(&event, window);
        if !tallies.contains_key(&key) && tallies.len() >= MAX_TALLIES {
            key = key.coarse();
            event.user_id = None;
            event.family_id = None;
            event.account_id = None;
            event.openid_digest = None;
            event.context.client_addr = None;
        }
        tallies
            .entry(key)
            .and_modify(|tally| tally.unwritten += 1)
            .or_insert(Tally {
                first: event,
                at,
                event_id: None,
                unwritten: 1,
            });
        self.inner.metrics.audit_unwritten(1);
    }

    /// An operator's read of user data: `method` names the RPC.
    pub fn read(
        &self,
        method: &'static str,
        user_id: Option<i64>,
        account_id: Option<i64>,
        context: &crate::domain::CallContext,
    ) {
        self.tally(NewAuditEvent {
            kind: AuditKind::AdminRead,
            outcome: method.to_owned(),
            appid: None,
            user_id,
            openid_digest: None,
            family_id: None,
            account_id,
            context: context.clone(),
        });
    }

    /// Events, newest first, as `filter` selects them.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(self.inner.store.audit_events(filter).await?)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Tally>> {
        // A panic while the lock was held cannot leave the map half-changed in a way that
        // matters (counts only grow): keep using it.
        self.tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes what is unwritten: new tallies as rows, more events as counts added to their
    /// row. Tallies of past minutes that are fully written are forgotten. On a failure,
    /// everything stays for the next write. Returns whether it all reached the database.
    async fn write(&self) -> bool {
        let (new_keys, new_rows, grown_keys, grown_ids, grown_by) = {
            let tallies = self.lock();
            let mut new_keys = Vec::new();
            let mut new_rows = Vec::new();
            let mut grown_keys = Vec::new();
            let mut grown_ids = Vec::new();
            let mut grown_by = Vec::new();
            for (key, tally) in tallies.iter().filter(|(_, tally)| tally.unwritten > 0) {
                match tally.event_id {
                    None => {
                        new_keys.push(key.clone());
                        new_rows.push(NewTally {
                            event: tally.first.clone(),
                            at: tally.at,
                            count: tally.unwritten,
                        });
                    }
                    Some(id) => {
                        grown_keys.push(key.clone());
                        grown_ids.push(id);
                        grown_by.push(tally.unwritten);
                    }
                }
            }
            (new_keys, new_rows, grown_keys, grown_ids, grown_by)
        };
        let mut complete = true;
        match self.store.insert_tallies(&new_rows).await {
            Ok(ids) => {
                let mut tallies = self.lock();
                for ((key, row), id) in new_keys.iter().zip(&new_rows).zip(ids) {
                    if let Some(tally) = tallies.get_mut(key) {
                        tally.event_id = Some(id);
                        tally.unwritten -= row.count;
                    }
                    self.metrics.audit_unwritten(-row.count);
                }
            }
            Err(err) => {
                warn!(error = %err, tallies = new_rows.len(), "cannot write audit tallies; kept for the next try");
                complete = false;
            }
        }
        match self.store.count_up_tallies(&grown_ids, &grown_by).await {
            Ok(()) => {
                let mut tallies = self.lock();
                for (key, more) in grown_keys.iter().zip(&grown_by) {
                    if let Some(tally) = tallies.get_mut(key) {
                        tally.unwritten -= more;
                    }
                    self.metrics.audit_unwritten(-more);
                }
            }
            Err(err) => {
                warn!(error = %err, tallies = grown_ids.len(), "cannot count up audit tallies; kept for the next try");
                complete = false;
            }
        }
        let window = self.clock.now().div_euclid(WINDOW_SECS);
        self.lock().retain(|key, tally| {
            key.window >= window || tally.unwritten > 0 || tally.event_id.is_none()
        });
        complete
    }
}

impl AuditWriter {
    /// Writes the tallies every second until `stop` completes, then once more, so what was
    /// counted just before a shutdown reaches the database instead of going down with the
    /// process.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = pin!(stop);
        let mut every = tokio::time::interval(WRITE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = every.tick() => {
                    self.inner.write().await;
                }
            }
        }
        self.inner.write().await;
    }

    /// Writes what is unwritten now; whether all of it reached the database. For tests and
    /// for a shutdown that cannot wait for the next tick.
    pub async fn write_now(&self) -> bool {
        self.inner.write().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallContext;

    fn refusal(client: &str) -> NewAuditEvent {
        NewAuditEvent {
            kind: AuditKind::LoginRefused,
            outcome: "CODE_REJECTED".into(),
            appid: Some("wx4f4bc4dec97d474b".into()),
            user_id: None,
            openid_digest: None,
            family_id: None,
            account_id: None,
            context: CallContext {
                caller: Some("gateway".into()),
                client_addr: Some(client.into()),
                request_id: "rid".into(),
                client_request_id: None,
                reach: Default::default(),
            },
        }
    }

    #[test]
    fn events_differing_only_in_time_share_a_key_and_a_flood_folds_into_coarse_ones() {
        let a = Key::of(&refusal("192.0.2.1"), 7);
        assert_eq!(a, Key::of(&refusal("192.0.2.1"), 7));
        assert_ne!(a, Key::of(&refusal("192.0.2.2"), 7), "per client");
        assert_ne!(a, Key::of(&refusal("192.0.2.1"), 8), "per minute");
        assert_eq!(
            Key::of(&refusal("192.0.2.1"), 7).coarse(),
            Key::of(&refusal("198.51.100.9"), 7).coarse(),
            "the coarse key forgets the client"
        );
    }
}
