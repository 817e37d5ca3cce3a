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
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use moka::sync::Cache;

/// The revoked families a replica knows of.
#[derive(Debug)]
pub struct Revocations {
    /// Each family for `window` after this replica learned of it. No capacity: an entry
    /// evicted early would let a revoked token through. Adding one costs the same however
    /// many there are (a map pruned on every insert took 0.45 ms, write-locked against every
    /// validation, with 100,000 revocations in the window).
    revoked: Cache<i64, ()>,
    /// True while the listener is connected and the cache is complete.
    live: AtomicBool,
    /// How long a revocation matters: the access-token lifetime.
    pub(crate) window: Duration,
}

impl Revocations {
    /// An empty, not-yet-live cache for access tokens living `window`.
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            revoked: Cache::builder().time_to_live(window).build(),
            live: AtomicBool::new(false),
            window,
        })
    }

    /// `Some(revoked)` when the cache can answer, `None` when the database must.
    pub fn check(&self, family_id: i64) -> Option<bool> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        Some(self.revoked.contains_key(&family_id))
    }

    /// Whether the cache hears the other replicas' revocations now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Records a revocation (from this replica, or from a notification).
    pub fn insert(&self, family_id: i64) {
        self.revoked.insert(family_id, ());
    }

    /// Adds what the database says was revoked recently (a family already known starts its
    /// window again: kept too long is harmless, too short is not).
    pub(crate) fn reload(&self, families: Vec<i64>) {
        for family_id in families {
            self.revoked.insert(family_id, ());
        }
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
