//! Which session families are revoked, known to every replica within a second and checked
//! without a database round trip.
//!
//! Each replica keeps the families revoked within the last access-token lifetime in memory
//! (older families only have expired access tokens left, which fail on expiry anyway). A
//! listener on the Postgres channel `wxauth_revoked` adds each new revocation as it is
//! committed, on any replica. While the listener is not connected the cache is not trusted:
//! validation asks the database instead, so a lost connection never lets a revoked token pass.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::store::{PgStore, StoreError};

/// The revoked families a replica knows of.
#[derive(Debug)]
pub struct Revocations {
    revoked: RwLock<HashMap<i64, Instant>>,
    /// True while the listener is connected and the cache is complete.
    live: AtomicBool,
    /// How long a revocation matters: the access-token lifetime.
    window: Duration,
}

impl Revocations {
    /// An empty, not-yet-live cache for access tokens living `window`.
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            revoked: RwLock::new(HashMap::new()),
            live: AtomicBool::new(false),
            window,
        })
    }

    /// `Some(revoked)` when the cache can answer, `None` when the database must.
    pub fn check(&self, family_id: i64) -> Option<bool> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(revoked.contains_key(&family_id))
    }

    /// Records a revocation (from this replica, or from a notification).
    pub fn insert(&self, family_id: i64) {
        let now = Instant::now();
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        revoked.insert(family_id, now);
        let window = self.window;
        revoked.retain(|_, at| now.duration_since(*at) <= window);
    }

    fn reload(&self, families: Vec<i64>) {
        let now = Instant::now();
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        revoked.extend(families.into_iter().map(|family| (family, now)));
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }
}

/// Keeps `revocations` in step with the database for as long as the process runs:
/// listens first, then loads what was revoked recently (so nothing falls in between), and
/// starts over after a lost connection.
pub async fn follow(store: PgStore, revocations: Arc<Revocations>) {
    let window_secs = i64::try_from(revocations.window.as_secs()).unwrap_or(i64::MAX) + 60;
    loop {
        match listen_once(&store, &revocations, window_secs).await {
            Ok(()) => warn!(
                "revocation listener lost its connection; validating against the database until it is back"
            ),
            Err(err) => {
                warn!(error = %err, "revocation listener failed; validating against the database until it is back")
            }
        }
        revocations.set_live(false);
        // Back off before reconnecting, so a database outage is not hammered.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    store: &PgStore,
    revocations: &Revocations,
    window_secs: i64,
) -> Result<(), StoreError> {
    let mut feed = store.listen_revocations().await?;
    let recent = store.recently_revoked(window_secs).await?;
    revocations.reload(recent);
    revocations.set_live(true);
    info!("revocation listener connected");
    while let Some(family_id) = feed.next().await? {
        revocations.insert(family_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_that_is_not_live_does_not_answer() {
        let cache = Revocations::new(Duration::from_secs(900));
        cache.insert(1);
        assert_eq!(
            cache.check(1),
            None,
            "not trusted before the listener is connected"
        );
        cache.set_live(true);
        assert_eq!((cache.check(1), cache.check(2)), (Some(true), Some(false)));
        cache.set_live(false);
        assert_eq!(cache.check(1), None);
    }

    #[test]
    fn a_reload_adds_to_what_notifications_brought() {
        let cache = Revocations::new(Duration::from_secs(900));
        cache.insert(1);
        cache.reload(vec![2, 3]);
        cache.set_live(true);
        assert_eq!(
            [1, 2, 3, 4].map(|family| cache.check(family)),
            [Some(true), Some(true), Some(true), Some(false)]
        );
    }
}
