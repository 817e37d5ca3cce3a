//! Which session families are revoked, known to every replica within a second and checked
//! without a database round trip.
//!
//! Each replica keeps the families revoked within the last access-token lifetime in memory
//! (older families only have expired access tokens left, which fail on expiry anyway). A
//! listener on the Postgres channel `wxauth_revoked` adds each new revocation as it is
//! committed, on any replica. While the listener is not known to hear the database the
//! cache is not trusted: validation asks the database instead, so a lost or silenced
//! connection never lets a revoked token pass.
//!
//! - [`follow`]: the listener, its heartbeat, and the periodic reload.

mod follow;

pub use follow::follow;

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// The revoked families a replica knows of.
#[derive(Debug)]
pub struct Revocations {
    revoked: RwLock<HashMap<i64, Instant>>,
    /// True while the listener is connected and the cache is complete.
    live: AtomicBool,
    /// How long a revocation matters: the access-token lifetime.
    pub(crate) window: Duration,
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

    /// Whether the cache hears the other replicas' revocations now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
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

    pub(crate) fn reload(&self, families: Vec<i64>) {
        let now = Instant::now();
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        revoked.extend(families.into_iter().map(|family| (family, now)));
    }

    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }
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
