//! The refresh-rotation rule: what presenting a refresh token does, decided from the rows
//! the store read under lock and the time. The store reads, calls [`decide`], and writes the
//! decision in the same transaction; the rule itself needs no database to be tested.

use crate::clock::Timestamp;

/// How refresh tokens age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRules {
    /// How long after a rotation the old token still yields the same successor, seconds.
    pub grace_secs: i64,
    /// How long a refresh token lives unused: the family's idle limit, seconds.
    pub idle_secs: i64,
    /// The longest a family lives, however often it is refreshed, seconds.
    pub family_max_age_secs: i64,
}

/// The presented refresh token, its family and its successor, as read under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    /// When it was traded for its successor, if it was.
    pub used_at: Option<Timestamp>,
    /// When it stops working unused.
    pub expires_at: Timestamp,
    /// When its family started (the login).
    pub family_created_at: Timestamp,
    /// Whether its family was revoked.
    pub family_revoked: bool,
    /// Whether its user may not hold tokens now (suspended, being deleted).
    pub user_barred: bool,
    /// Its successor, when it was used and the successor is still on record.
    pub successor: Option<Successor>,
}

/// The token a rotation gave in exchange, as it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Successor {
    /// Whether the successor has itself been used.
    pub used: bool,
    /// When the successor stops working unused.
    pub expires_at: Timestamp,
    /// Whether the successor is still kept sealed (the purge drops it after the grace).
    pub sealed_kept: bool,
}

/// Why a refresh token is refused without consequence for its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such token.
    Unknown,
    /// Its family was revoked (logout, reuse, an operator).
    Revoked,
    /// Its user is suspended, or waits out a deletion.
    Barred,
    /// Its family is older than the absolute lifetime.
    FamilyTooOld,
    /// It sat unused past its idle limit.
    Expired,
}

impl Refusal {
    /// The name recorded in the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Barred => "barred",
            Self::FamilyTooOld => "family_too_old",
            Self::Expired => "expired",
        }
    }
}

/// What presenting the token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is live: mark it used and store a successor that expires at `successor_expires_at`.
    Rotate {
        /// The idle limit from now, never past the family's absolute lifetime.
        successor_expires_at: Timestamp,
    },
    /// It was used moments ago and its successor is untouched: hand out the same successor.
    Replay,
    /// It was used before and this is not a retry: the token was stolen, or the client is
    /// broken. The whole family is revoked.
    Reuse,
    /// Refused; nothing changes.
    Refuse(Refusal),
}

/// Decides what presenting a refresh token does at `now`. `None` for `presented` is a token
/// that is not on record.
///
/// A refused family is refused before anything else is looked at: an expired token or a dead
/// family can no longer trip reuse detection (there is nothing left to protect), and never
/// gets a successor.
pub fn decide(presented: Option<&Presented>, now: Timestamp, rules: RefreshRules) -> Decision {
    let Some(presented) = presented else {
        return Decision::Refuse(Refusal::Unknown);
    };
    let family_ends = presented
        .family_created_at
        .plus_secs(rules.family_max_age_secs);
    if presented.user_barred {
        return Decision::Refuse(Refusal::Barred);
    }
    if presented.family_revoked {
        return Decision::Refuse(Refusal::Revoked);
    }
    if family_ends <= now {
        return Decision::Refuse(Refusal::FamilyTooOld);
    }
    if presented.expires_at <= now {
        return Decision::Refuse(Refusal::Expired);
    }
    let Some(used_at) = presented.used_at else {
        return Decision::Rotate {
            successor_expires_at: now.plus_secs(rules.idle_secs).min(family_ends),
        };
    };
    let in_grace = now < used_at.plus_secs(rules.grace_secs);
    let successor_untouched = presented.successor.is_some_and(|successor| {
        !successor.used && successor.sealed_kept && now < successor.expires_at
    });
    if in_grace && successor_untouched {
        Decision::Replay
    } else {
        Decision::Reuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: RefreshRules = RefreshRules {
        grace_secs: 10,
        idle_secs: 30 * 86_400,
        family_max_age_secs: 90 * 86_400,
    };
    const LOGIN: Timestamp = Timestamp::from_secs(1_800_000_000);

    /// A token of a family that started at [`LOGIN`], rotated last at `issued`, live.
    fn live(issued: Timestamp) -> Presented {
        Presented {
            used_at: None,
            expires_at: issued.plus_secs(RULES.idle_secs),
            family_created_at: LOGIN,
            family_revoked: false,
            user_barred: false,
            successor: None,
        }
    }

    /// The same token, used at `used_at` for a successor in the state given.
    fn used(issued: Timestamp, used_at: Timestamp, successor: Successor) -> Presented {
        Presented {
            used_at: Some(used_at),
            successor: Some(successor),
            ..live(issued)
        }
    }

    fn untouched_successor(used_at: Timestamp) -> Successor {
        Successor {
            used: false,
            expires_at: used_at.plus_secs(RULES.idle_secs),
            sealed_kept: true,
        }
    }

    #[test]
    fn every_branch_of_the_rule() {
        let at = |secs: i64| LOGIN.plus_secs(secs);
        let day = 86_400;
        let used_at = at(100);
        let cases: Vec<(&str, Option<Presented>, Timestamp, Decision)> = vec![
            (
                "unknown token",
                None,
                at(1),
                Decision::Refuse(Refusal::Unknown),
            ),
            (
                "live: rotated, the successor lives the idle limit",
                Some(live(LOGIN)),
                at(60),
                Decision::Rotate {
                    successor_expires_at: at(60 + RULES.idle_secs),
                },
            ),
            (
                "live near the end of the family: the successor stops at the absolute limit",
                Some(live(at(80 * day))),
                at(85 * day),
                Decision::Rotate {
                    successor_expires_at: at(RULES.family_max_age_secs),
                },
            ),
            (
                "idle: unused past its expiry",
                Some(live(LOGIN)),
                at(RULES.idle_secs),
                Decision::Refuse(Refusal::Expired),
            ),
            (
                "idle by a microsecond",
                Some(live(LOGIN)),
                at(RULES.idle_secs).plus(std::time::Duration::from_micros(1)),
                Decision::Refuse(Refusal::Expired),
            ),
            (
                "absolute: the family is too old, however fresh the token",
                Some(live(at(RULES.family_max_age_secs - 1))),
                at(RULES.family_max_age_secs),
                Decision::Refuse(Refusal::FamilyTooOld),
            ),
            (
                "revoked family",
                Some(Presented {
                    family_revoked: true,
                    ..live(LOGIN)
                }),
                at(60),
                Decision::Refuse(Refusal::Revoked),
            ),
            (
                "revoked wins over reuse: a dead family is not revoked again",
                Some(Presented {
                    family_revoked: true,
                    ..used(LOGIN, used_at, untouched_successor(used_at))
                }),
                at(200),
                Decision::Refuse(Refusal::Revoked),
            ),
            (
                "a suspended user's token is refused as such, whatever else holds",
                Some(Presented {
                    user_barred: true,
                    family_revoked: true,
                    ..used(LOGIN, used_at, untouched_successor(used_at))
                }),
                at(105),
                Decision::Refuse(Refusal::Barred),
            ),
            (
                "grace: presented again at once, the successor untouched",
                Some(used(LOGIN, used_at, untouched_successor(used_at))),
                at(105),
                Decision::Replay,
            ),
            (
                "grace ends exactly at grace_secs",
                Some(used(LOGIN, used_at, untouched_successor(used_at))),
                at(110),
                Decision::Reuse,
            ),
            (
                "reuse after the grace",
                Some(used(LOGIN, used_at, untouched_successor(used_at))),
                at(500),
                Decision::Reuse,
            ),
            (
                "reuse within the grace once the successor was used",
                Some(used(
                    LOGIN,
                    used_at,
                    Successor {
                        used: true,
                        ..untouched_successor(used_at)
                    },
                )),
                at(101),
                Decision::Reuse,
            ),
            (
                "reuse within the grace once the sealed successor is gone",
                Some(used(
                    LOGIN,
                    used_at,
                    Successor {
                        sealed_kept: false,
                        ..untouched_successor(used_at)
                    },
                )),
                at(101),
                Decision::Reuse,
            ),
            (
                "reuse within the grace when the successor is not on record",
                Some(Presented {
                    successor: None,
                    ..used(LOGIN, used_at, untouched_successor(used_at))
                }),
                at(101),
                Decision::Reuse,
            ),
            (
                "an expired used token is refused, not treated as reuse",
                Some(used(LOGIN, used_at, untouched_successor(used_at))),
                at(RULES.idle_secs + 1),
                Decision::Refuse(Refusal::Expired),
            ),
        ];
        for (case, presented, now, expected) in cases {
            assert_eq!(decide(presented.as_ref(), now, RULES), expected, "{case}");
        }
    }

    #[test]
    fn without_a_grace_a_second_presentation_is_always_reuse() {
        let rules = RefreshRules {
            grace_secs: 0,
            ..RULES
        };
        let used_at = LOGIN.plus_secs(1);
        let presented = used(LOGIN, used_at, untouched_successor(used_at));
        assert_eq!(decide(Some(&presented), used_at, rules), Decision::Reuse);
    }
}
