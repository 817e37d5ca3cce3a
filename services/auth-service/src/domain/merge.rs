//! The account rule: which account a user belongs to after a login, decided from what the
//! store read under lock (the user as stored, the account of the unionid WeChat gave) and
//! that unionid. Users of different mini-programs that share a unionid (one Open Platform
//! account) share an account, whichever app they came through first, and also when the
//! unionid arrives late.

/// The user of (appid, openid) as stored before this login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// Their account.
    pub account_id: i64,
    /// Their unionid, when one was known.
    pub unionid: Option<String>,
}

/// What the rule is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The user, when they logged in before.
    pub stored: Option<&'a StoredUser>,
    /// The unionid WeChat gave with this login, when the app is bound to an Open Platform
    /// account.
    pub unionid: Option<&'a str>,
    /// The account already made for that unionid, when there is one.
    pub unionid_account: Option<i64>,
}

/// What the rule is given, owned, as read together at one moment: carried from the
/// statement that read it (the one that stored the login session) to the one that writes
/// the login, which checks that the user's account is still what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// The user, when they logged in before.
    pub stored: Option<StoredUser>,
    /// The unionid `unionid_account` is the account of.
    pub unionid: Option<String>,
    /// The account of that unionid, when there is one.
    pub unionid_account: Option<i64>,
    /// Where the stored user stands (not part of the rule: a login the user may not make is
    /// refused before the rule is asked).
    pub standing: Option<super::lifecycle::Standing>,
}

impl AccountState {
    /// The facts, for [`decide`].
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            stored: self.stored.as_ref(),
            unionid: self.unionid.as_deref(),
            unionid_account: self.unionid_account,
        }
    }

    /// The user's account as read, which the write checks is still theirs.
    pub fn stored_account(&self) -> Option<i64> {
        self.stored.as_ref().map(|stored| stored.account_id)
    }
}

/// Which account the user has after the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// An account of their own, new: a first login without a unionid.
    Fresh,
    /// The account they have: nothing to merge.
    Keep(i64),
    /// The account of their unionid, which another app's user made: they join it.
    Join(i64),
    /// The unionid has no account yet: make its row, under the user's own account id when
    /// they have one that no other unionid holds, else under a new id. A concurrent login
    /// that made it first wins, and the user joins that one.
    Claim {
        /// The id to make it under; `None`: a new one.
        under: Option<i64>,
    },
}

/// Decides the user's account.
pub fn decide(facts: &Facts<'_>) -> Account {
    match (facts.stored, facts.unionid, facts.unionid_account) {
        // No unionid with this login: the account stays as it is, or a new one.
        (None, None, _) => Account::Fresh,
        (Some(stored), None, _) => Account::Keep(stored.account_id),
        // A unionid whose account exists: join it (or stay, when it is the user's own).
        (Some(stored), Some(_), Some(account)) if account == stored.account_id => {
            Account::Keep(account)
        }
        (_, Some(_), Some(account)) => Account::Join(account),
        // A unionid without an account yet: make it.
        (None, Some(_), None) => Account::Claim { under: None },
        (Some(stored), Some(unionid), None) => match stored.unionid.as_deref() {
            // The unionid arrives late: the user's own account becomes the unionid's.
            None => Account::Claim {
                under: Some(stored.account_id),
            },
            // The same unionid, yet no account row: a row made by a release before
            // accounts existed was lost; make it under the user's account again.
            Some(known) if known == unionid => Account::Claim {
                under: Some(stored.account_id),
            },
            // Another unionid than before (the app moved to another Open Platform
            // account): the user's account id belongs to the old unionid's row, so the new
            // unionid's account is a new one.
            Some(_) => Account::Claim { under: None },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(account_id: i64, unionid: Option<&str>) -> StoredUser {
        StoredUser {
            account_id,
            unionid: unionid.map(str::to_owned),
        }
    }

    #[test]
    fn every_branch_of_the_rule() {
        let without = user(7, None);
        let with_u1 = user(7, Some("u1"));
        let cases: Vec<(&str, Facts<'_>, Account)> = vec![
            (
                "first login, no unionid: an account of their own",
                Facts {
                    stored: None,
                    unionid: None,
                    unionid_account: None,
                },
                Account::Fresh,
            ),
            (
                "returning, no unionid: kept",
                Facts {
                    stored: Some(&without),
                    unionid: None,
                    unionid_account: None,
                },
                Account::Keep(7),
            ),
            (
                "returning with a unionid, WeChat leaves it out this time: kept",
                Facts {
                    stored: Some(&with_u1),
                    unionid: None,
                    unionid_account: None,
                },
                Account::Keep(7),
            ),
            (
                "returning, the same unionid, its account the user's: kept",
                Facts {
                    stored: Some(&with_u1),
                    unionid: Some("u1"),
                    unionid_account: Some(7),
                },
                Account::Keep(7),
            ),
            (
                "first login through a second app: joins the account the first app's user made",
                Facts {
                    stored: None,
                    unionid: Some("u1"),
                    unionid_account: Some(3),
                },
                Account::Join(3),
            ),
            (
                "first login, the first of the unionid: claims its account under a new id",
                Facts {
                    stored: None,
                    unionid: Some("u1"),
                    unionid_account: None,
                },
                Account::Claim { under: None },
            ),
            (
                "late unionid, no account for it yet: the user's account becomes its",
                Facts {
                    stored: Some(&without),
                    unionid: Some("u1"),
                    unionid_account: None,
                },
                Account::Claim { under: Some(7) },
            ),
            (
                "late unionid, another app's user made its account first: joins it",
                Facts {
                    stored: Some(&without),
                    unionid: Some("u1"),
                    unionid_account: Some(3),
                },
                Account::Join(3),
            ),
            (
                "the same unionid, its account row missing: made again under the user's id",
                Facts {
                    stored: Some(&with_u1),
                    unionid: Some("u1"),
                    unionid_account: None,
                },
                Account::Claim { under: Some(7) },
            ),
            (
                "another unionid than before, no account for it: a new id, not the old one's",
                Facts {
                    stored: Some(&with_u1),
                    unionid: Some("u2"),
                    unionid_account: None,
                },
                Account::Claim { under: None },
            ),
            (
                "another unionid than before, with an account: joins it",
                Facts {
                    stored: Some(&with_u1),
                    unionid: Some("u2"),
                    unionid_account: Some(9),
                },
                Account::Join(9),
            ),
        ];
        for (case, facts, expected) in cases {
            assert_eq!(decide(&facts), expected, "{case}");
        }
    }

    /// Two first logins of one person through two apps, in either order, end in one
    /// account: the second joins what the first claimed.
    #[test]
    fn both_orders_of_two_apps_end_in_one_account() {
        for first_account in [5, 11] {
            let first = decide(&Facts {
                stored: None,
                unionid: Some("u"),
                unionid_account: None,
            });
            assert_eq!(first, Account::Claim { under: None });
            let second = decide(&Facts {
                stored: None,
                unionid: Some("u"),
                unionid_account: Some(first_account),
            });
            assert_eq!(second, Account::Join(first_account));
        }
        // A user first seen without a unionid, then the other app's user: the second
        // joins the account the late unionid gave the first's id.
        let late = user(4, None);
        assert_eq!(
            decide(&Facts {
                stored: Some(&late),
                unionid: Some("u"),
                unionid_account: None,
            }),
            Account::Claim { under: Some(4) }
        );
        assert_eq!(
            decide(&Facts {
                stored: None,
                unionid: Some("u"),
                unionid_account: Some(4),
            }),
            Account::Join(4)
        );
    }
}
