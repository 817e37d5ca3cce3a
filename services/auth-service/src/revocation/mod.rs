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

/// How long an answer of the database stands in for the listener: the listener's own
/// promise, a revocation anywhere refused within a second.
const ASKED_FOR: Duration = Duration::from_secs(1);
/// The most families whose answer is remembered at once.
const ASKED_ENTRIES: u64 = 50_000;
/// How much longer than the access-token lifetime a revocation is kept: a replica whose
/// clock runs behind the issuer's accepts a token until its `exp` by its own clock, so a
/// revocation forgotten at exactly the lifetime would let that token through for the
/// difference. Also covers the database's clock, which stamps `revoked_at`.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

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
    /// While it is not: what the database said of each family asked about, for
    /// [`ASKED_FOR`]. Every validation would otherwise be a query, on a database that is
    /// likely struggling already (the listener fails with it), at the rate callers validate;
    /// this way it is one query per family a second, and callers asking about one family at
    /// once share it.
    asked: moka::future::Cache<i64, bool>,
    /// How long a revocation matters: the access-token lifetime and [`CLOCK_MARGIN`].
    pub(crate) window: Duration,
}

impl Revocations {
    /// An empty, not-yet-live cache for access tokens living `access_ttl`.
    pub fn new(access_ttl: Duration) -> Arc<Self> {
        let window = access_ttl.saturating_add(CLOCK_MARGIN);
        Arc::new(Self {
            revoked: Cache::builder().time_to_live(window).build(),
            live: AtomicBool::new(false),
            asked: moka::future::Cache::builder()
                .max_capacity(ASKED_ENTRIES)
                .time_to_live(ASKED_FOR)
                .build(),
            window,
        })
    }

    /// `Some(revoked)` when the cache can answer, `None` when the database must. A family
    /// this replica knows is revoked is revoked whether or not the cache is live.
    pub fn check(&self, family_id: i64) -> Option<bool> {
        if self.revoked.contains_key(&family_id) {
            return Some(true);
        }
        self.live.load(Ordering::Acquire).then_some(false)
    }

    /// Whether `family_id` is revoked: [`Self::check`], or else `ask` (the database), whose
    /// answer stands for a second and is shared by every caller asking meanwhile.
    pub async fn is_revoked<E: Send + Sync + 'static>(
        &self,
        family_id: i64,
        ask: impl Future<Output = Result<bool, E>>,
    ) -> Result<bool, Arc<E>> {
        match self.check(family_id) {
            Some(revoked) => Ok(revoked),
            None => self.asked.try_get_with(family_id, ask).await,
        }
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
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_cache_that_is_not_live_only_answers_for_what_it_knows_is_revoked() {
        let cache = Revocations::new(Duration::from_secs(900));
        cache.insert(1);
        assert_eq!(
            (cache.check(1), cache.check(2)),
            (Some(true), None),
            "a revocation is a fact; that nothing else was revoked is not known before the \
             listener is connected"
        );
        cache.set_live(true);
        assert_eq!((cache.check(1), cache.check(2)), (Some(true), Some(false)));
        cache.set_live(false);
        assert_eq!((cache.check(1), cache.check(2)), (Some(true), None));
    }

    #[test]
    fn a_revocation_outlives_the_access_token_lifetime_by_the_clock_margin() {
        // With tokens that live no time at all, the revocation must still be kept: a replica
        // whose clock is behind accepts a token until its own clock reaches `exp`.
        let cache = Revocations::new(Duration::ZERO);
        cache.set_live(true);
        cache.insert(1);
        assert_eq!(cache.check(1), Some(true));
        assert_eq!(cache.window, CLOCK_MARGIN);
    }

    #[tokio::test]
    async fn callers_asking_about_one_family_at_once_share_one_question() {
        let cache = Revocations::new(Duration::from_secs(900));
        let asked = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let ask = || {
            let (asked, mut released) = (asked.clone(), released.clone());
            async move {
                asked.fetch_add(1, Ordering::SeqCst);
                // Held until the others have arrived, so that they wait on this question
                // rather than find its answer.
                let _ = released.wait_for(|go| *go).await;
                Ok::<_, std::convert::Infallible>(false)
            }
        };
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, ask) = (cache.clone(), ask());
            callers.spawn(async move { cache.is_revoked(7, ask).await });
        }
        // Every caller runs until it waits (one thread: they all run before this resumes).
        tokio::task::yield_now().await;
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "one question while it is open"
        );
        release.send(true).unwrap();
        let answers = callers.join_all().await;
        assert!(answers.into_iter().all(|answer| answer == Ok(false)));
        assert_eq!(asked.load(Ordering::SeqCst), 1);

        // Asked again at once: the answer stands.
        assert_eq!(cache.is_revoked(7, ask()).await, Ok(false));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_database_is_not_asked_about_a_family_known_to_be_revoked() {
        let cache = Revocations::new(Duration::from_secs(900));
        cache.insert(7);
        let ask = async { panic!("asked the database about a family it knows is revoked") };
        assert_eq!(
            cache.is_revoked::<std::convert::Infallible>(7, ask).await,
            Ok(true)
        );
    }

    #[tokio::test]
    async fn a_failed_question_is_not_remembered() {
        let cache = Revocations::new(Duration::from_secs(900));
        let failed = cache.is_revoked(7, async { Err("unreachable") }).await;
        assert_eq!(failed.map_err(|err| *err), Err("unreachable"));
        assert_eq!(
            cache.is_revoked::<&str>(7, async { Ok(true) }).await,
            Ok(true)
        );
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
