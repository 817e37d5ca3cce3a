//! Webhook events: what a subscriber may hear of, and when a failed delivery is tried again.
//! The store writes events with the change that causes them; [`next_attempt`] is the rule
//! the delivery follows, decided without a network or a database.

use std::time::Duration;

use crate::clock::Timestamp;

/// What happened. The names are the `type` of the delivered payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A login made a new user.
    UserCreated,
    /// A user logged in (a new session family).
    UserLogin,
    /// A user filled in a nickname or an avatar.
    UserProfileUpdated,
    /// A user bound a phone number.
    UserPhoneBound,
    /// A session family ended: logout, an operator, a suspension, a deletion, reuse.
    SessionRevoked,
    /// A used refresh token came back: the family was revoked as stolen.
    SessionReuseDetected,
    /// An operator suspended a user.
    UserSuspended,
    /// A user's data was erased.
    UserDeleted,
}

impl EventKind {
    /// Every kind, in the order a change that causes several writes them.
    pub const ALL: [Self; 8] = [
        Self::UserCreated,
        Self::UserLogin,
        Self::UserProfileUpdated,
        Self::UserPhoneBound,
        Self::SessionReuseDetected,
        Self::SessionRevoked,
        Self::UserSuspended,
        Self::UserDeleted,
    ];

    /// The name subscribers see.
    pub const fn name(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserLogin => "user.login",
            Self::UserProfileUpdated => "user.profile_updated",
            Self::UserPhoneBound => "user.phone_bound",
            Self::SessionRevoked => "session.revoked",
            Self::SessionReuseDetected => "session.reuse_detected",
            Self::UserSuspended => "user.suspended",
            Self::UserDeleted => "user.deleted",
        }
    }

    /// The kind of a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// A subscription as the store writes events for it: whose, of what, and whether it may
/// read full phone numbers. (Where and how it is delivered is the delivery's business.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Its name, unique.
    pub name: String,
    /// The app whose users it hears of.
    pub appid: String,
    /// What it hears of.
    pub kinds: Vec<EventKind>,
    /// Whether its payloads carry full phone numbers (else masked).
    pub pii: bool,
}

/// Every subscription of the deployment.
#[derive(Debug, Clone, Default)]
pub struct Subscribers(Vec<Subscriber>);

/// The (subscription, kind) pairs a statement writes events for, as parallel columns the
/// statement unnests and joins on the app of the change: empty when nobody listens, and then
/// the statement writes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The subscription of each pair.
    pub names: Vec<String>,
    /// Its app.
    pub appids: Vec<String>,
    /// The kind.
    pub kinds: Vec<&'static str>,
    /// Whether it may read full phone numbers.
    pub pii: Vec<bool>,
}

impl Subscribers {
    /// The subscriptions.
    pub fn new(subscribers: Vec<Subscriber>) -> Self {
        Self(subscribers)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The subscriptions' names.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|sub| sub.name.clone()).collect()
    }

    /// Who hears of `kinds`: one pair per subscription and kind it takes, in the order of
    /// `kinds` (the order a change's events are written, and so delivered, in).
    pub fn wanting(&self, kinds: &[EventKind]) -> Wanted {
        let mut wanted = Wanted::default();
        for &kind in kinds {
            for sub in self.0.iter().filter(|sub| sub.kinds.contains(&kind)) {
                wanted.names.push(sub.name.clone());
                wanted.appids.push(sub.appid.clone());
                wanted.kinds.push(kind.name());
                wanted.pii.push(sub.pii);
            }
        }
        wanted
    }
}

/// How failed deliveries are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; each later wait doubles, up to `longest`.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub longest: Duration,
    /// How long after it entered the queue an event is still tried; then it is dead.
    pub window: Duration,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again then.
    At(Timestamp),
    /// The window has passed: the event is dead (a replay sends it again).
    Dead,
}

/// When to try again after `attempts` failed attempts, the last at `now`, of an event whose
/// window started at `window_start`. `jitter` (0..1) spreads the wait over 80-120% of its
/// nominal length, so the events a receiver's outage held back do not return at once.
pub fn next_attempt(
    policy: RetryPolicy,
    attempts: u32,
    window_start: Timestamp,
    now: Timestamp,
    jitter: f64,
) -> Retry {
    let doublings = attempts.saturating_sub(1).min(30);
    let nominal = policy
        .first
        .saturating_mul(1u32 << doublings)
        .min(policy.longest);
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    let wait = nominal.mul_f64(spread);
    let at = now.plus(wait);
    if at > window_start.plus(policy.window) {
        Retry::Dead
    } else {
        Retry::At(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        first: Duration::from_secs(5),
        longest: Duration::from_secs(3600),
        window: Duration::from_secs(86_400),
    };
    const START: Timestamp = Timestamp::from_secs(1_000_000);

    fn wait_after(attempts: u32, jitter: f64) -> i64 {
        match next_attempt(POLICY, attempts, START, START, jitter) {
            Retry::At(at) => at.micros() - START.micros(),
            Retry::Dead => panic!("dead after {attempts}"),
        }
    }

    #[test]
    fn the_wait_doubles_from_the_first_up_to_the_longest() {
        assert_eq!(wait_after(1, 0.5), 5_000_000);
        assert_eq!(wait_after(2, 0.5), 10_000_000);
        assert_eq!(wait_after(5, 0.5), 80_000_000);
        assert_eq!(wait_after(11, 0.5), 3_600_000_000);
        assert_eq!(wait_after(40, 0.5), 3_600_000_000);
    }

    #[test]
    fn jitter_spreads_the_wait_over_a_fifth_either_side() {
        assert_eq!(wait_after(1, 0.0), 4_000_000);
        assert_eq!(wait_after(1, 1.0), 6_000_000);
        // Out of range is held to the range, never a negative wait.
        assert_eq!(wait_after(1, -3.0), 4_000_000);
        assert_eq!(wait_after(1, 7.0), 6_000_000);
    }

    #[test]
    fn an_event_is_dead_once_its_next_attempt_would_fall_outside_the_window() {
        let late = START.plus_secs(86_400 - 10);
        assert_eq!(next_attempt(POLICY, 3, START, late, 0.5), Retry::Dead);
        let early = START.plus_secs(86_400 - 100);
        assert_eq!(
            next_attempt(POLICY, 3, START, early, 0.5),
            Retry::At(early.plus_secs(20))
        );
    }

    #[test]
    fn a_day_of_failures_is_about_thirty_attempts() {
        let mut now = START;
        let mut attempts = 1;
        while let Retry::At(at) = next_attempt(POLICY, attempts, START, now, 0.5) {
            now = at;
            attempts += 1;
        }
        assert!((30..=35).contains(&attempts), "{attempts} attempts");
    }

    #[test]
    fn only_subscriptions_taking_a_kind_want_it_in_the_order_asked() {
        let subscribers = Subscribers::new(vec![
            Subscriber {
                name: "crm".into(),
                appid: "wx1".into(),
                kinds: vec![EventKind::UserLogin, EventKind::UserCreated],
                pii: false,
            },
            Subscriber {
                name: "risk".into(),
                appid: "wx2".into(),
                kinds: vec![EventKind::UserLogin],
                pii: true,
            },
        ]);
        let wanted = subscribers.wanting(&[EventKind::UserCreated, EventKind::UserLogin]);
        assert_eq!(wanted.names, ["crm", "crm", "risk"]);
        assert_eq!(wanted.kinds, ["user.created", "user.login", "user.login"]);
        assert_eq!(wanted.appids, ["wx1", "wx1", "wx2"]);
        assert_eq!(wanted.pii, [false, false, true]);
        assert_eq!(
            subscribers.wanting(&[EventKind::UserDeleted]),
            Wanted::default()
        );
        assert!(
            Subscribers::default()
                .wanting(&EventKind::ALL)
                .names
                .is_empty()
        );
    }

    #[test]
    fn every_name_parses_back_to_its_kind() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::parse("user.*"), None);
    }
}
