//! The one clock of the service. Every rule with an expiry asks it, the store included: the
//! time a row is stamped with and the time it is judged by are this clock's, passed into SQL
//! as a parameter, never PostgreSQL's `now()`. Tests inject a clock they move instead of
//! waiting (see `docs/architecture.md`, "Time").

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A point in time: Unix microseconds, the precision PostgreSQL keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const MICROS_PER_SEC: i64 = 1_000_000;

impl Timestamp {
    /// The time `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The time `secs` seconds after the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(MICROS_PER_SEC))
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down), as tokens and answers carry them.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SEC)
    }

    /// `secs` seconds later (earlier when negative), saturating.
    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(MICROS_PER_SEC)))
    }

    /// `span` later, saturating.
    pub fn plus(self, span: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(span.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

/// The time now, as the service sees it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn timestamp(&self) -> Timestamp;

    /// The current time in Unix seconds.
    fn now(&self) -> i64 {
        self.timestamp().secs()
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn timestamp(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// A clock that says what a test tells it; starts at the system's time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock set to the system's time now.
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(SystemClock.timestamp().micros())))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(MICROS_PER_SEC), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn timestamp(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The clock as the services share it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_also_before_the_epoch() {
        assert_eq!(Timestamp::from_micros(1_999_999).secs(), 1);
        assert_eq!(Timestamp::from_micros(-1).secs(), -1);
        assert_eq!(
            Timestamp::from_secs(5).plus_secs(-2),
            Timestamp::from_secs(3)
        );
        assert_eq!(
            Timestamp::from_secs(1)
                .plus(Duration::from_micros(7))
                .micros(),
            1_000_007
        );
        assert_eq!(
            Timestamp::from_secs(i64::MAX).plus_secs(1).micros(),
            i64::MAX
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let start = clock.timestamp();
        assert_eq!(clock.timestamp(), start);
        clock.advance(90);
        assert_eq!(clock.timestamp(), start.plus_secs(90));
        assert_eq!(clock.now(), start.plus_secs(90).secs());
    }
}
