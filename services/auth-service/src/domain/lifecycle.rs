//! Where a user stands in their life in the service, and what that allows: pure rules, the
//! store asks them (and writes their SQL form where a statement must decide alone, tested to
//! agree with them).

use crate::clock::Timestamp;

/// A user's status, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Logs in and uses tokens as usual.
    Active,
    /// Suspended by an operator: no login, no token (until `suspended_until`, when set).
    Suspended,
    /// Deletion asked for, waiting out the cooling-off (`delete_after`): suspended meanwhile,
    /// restorable.
    Deleting,
    /// Erased: a tombstone with only its id.
    Deleted,
}

impl Status {
    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }

    /// The status of a stored name; an unknown one (a newer release's) counts as suspended,
    /// the safe side.
    pub fn parse(name: &str) -> Self {
        match name {
            "active" => Self::Active,
            "deleting" => Self::Deleting,
            "deleted" => Self::Deleted,
            _ => Self::Suspended,
        }
    }
}

/// A user's standing: the status and what qualifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// As stored.
    pub status: Status,
    /// Why an operator suspended them or why they are being deleted.
    pub reason: Option<String>,
    /// When a suspension ends by itself.
    pub suspended_until: Option<Timestamp>,
    /// When a deletion's cooling-off ends and the data is erased.
    pub delete_after: Option<Timestamp>,
}

impl Standing {
    /// An active user's.
    pub fn active() -> Self {
        Self {
            status: Status::Active,
            reason: None,
            suspended_until: None,
            delete_after: None,
        }
    }

    /// The status in effect at `now`: a suspension whose time has passed is over.
    pub fn effective(&self, now: Timestamp) -> Status {
        match (self.status, self.suspended_until) {
            (Status::Suspended, Some(until)) if until <= now => Status::Active,
            (status, _) => status,
        }
    }
}

/// Why a user may not log in or hold tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barred {
    /// Suspended by an operator.
    Suspended,
    /// Waiting out a deletion's cooling-off.
    Deleting,
}

/// Whether a user standing so may log in at `now`. A deleted user has no openid left, so a
/// login of the same person never finds them: it makes a new user.
pub fn barred(standing: &Standing, now: Timestamp) -> Option<Barred> {
    match standing.effective(now) {
        Status::Suspended => Some(Barred::Suspended),
        Status::Deleting => Some(Barred::Deleting),
        Status::Active | Status::Deleted => None,
    }
}

/// What an operator may set with SetUserStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// Suspend, until a time or until lifted.
    Suspend {
        /// Why.
        reason: String,
        /// When it ends by itself.
        until: Option<Timestamp>,
    },
    /// Lift a suspension.
    Lift {
        /// Why.
        reason: String,
    },
}

/// Why a status change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefused {
    /// The user is deleted, or waits out a deletion (restore them instead).
    Deleted,
    /// A suspension that would end before it starts.
    UntilPassed,
}

/// Whether `change` may be made to a user standing so at `now`.
pub fn may_change(
    standing: &Standing,
    change: &StatusChange,
    now: Timestamp,
) -> Result<(), ChangeRefused> {
    if matches!(standing.status, Status::Deleted | Status::Deleting) {
        return Err(ChangeRefused::Deleted);
    }
    match change {
        StatusChange::Suspend {
            until: Some(until), ..
        } if *until <= now => Err(ChangeRefused::UntilPassed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn standing(status: Status, until: Option<i64>) -> Standing {
        Standing {
            status,
            reason: None,
            suspended_until: until.map(|secs| NOW.plus_secs(secs)),
            delete_after: None,
        }
    }

    #[test]
    fn who_may_log_in() {
        let cases = [
            ("active", standing(Status::Active, None), None),
            (
                "suspended until lifted",
                standing(Status::Suspended, None),
                Some(Barred::Suspended),
            ),
            (
                "suspended for another minute",
                standing(Status::Suspended, Some(60)),
                Some(Barred::Suspended),
            ),
            (
                "a suspension ending this instant is over",
                standing(Status::Suspended, Some(0)),
                None,
            ),
            (
                "a suspension that ended",
                standing(Status::Suspended, Some(-1)),
                None,
            ),
            (
                "waiting out a deletion",
                standing(Status::Deleting, None),
                Some(Barred::Deleting),
            ),
            (
                "deleted (never found by a login)",
                standing(Status::Deleted, None),
                None,
            ),
        ];
        for (case, standing, expected) in cases {
            assert_eq!(barred(&standing, NOW), expected, "{case}");
        }
    }

    #[test]
    fn what_an_operator_may_change() {
        let suspend = |until: Option<i64>| StatusChange::Suspend {
            reason: "r".into(),
            until: until.map(|secs| NOW.plus_secs(secs)),
        };
        let lift = StatusChange::Lift { reason: "r".into() };
        let active = standing(Status::Active, None);
        assert_eq!(may_change(&active, &suspend(None), NOW), Ok(()));
        assert_eq!(may_change(&active, &suspend(Some(60)), NOW), Ok(()));
        assert_eq!(
            may_change(&active, &suspend(Some(0)), NOW),
            Err(ChangeRefused::UntilPassed)
        );
        assert_eq!(
            may_change(&standing(Status::Suspended, None), &lift, NOW),
            Ok(())
        );
        for gone in [Status::Deleting, Status::Deleted] {
            assert_eq!(
                may_change(&standing(gone, None), &lift, NOW),
                Err(ChangeRefused::Deleted)
            );
        }
    }

    #[test]
    fn statuses_round_trip_and_an_unknown_one_is_the_safe_side() {
        for status in [
            Status::Active,
            Status::Suspended,
            Status::Deleting,
            Status::Deleted,
        ] {
            assert_eq!(Status::parse(status.name()), status);
        }
        assert_eq!(Status::parse("archived"), Status::Suspended);
    }
}
