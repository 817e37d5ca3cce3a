//! A user's life after their logins: suspended and reinstated, deleted (at once, or after a
//! cooling-off during which an operator may restore them), erased.
//!
//! Every change here is one transaction that first locks the users' rows: a login of the
//! same user either committed before (and the families it started are revoked with the
//! others) or waits for the lock and then finds the user barred (the login statement checks
//! again under the row's lock). Revocations reach every replica through the same `NOTIFY`
//! as a logout's.

use sqlx::{Connection as _, Row as _};

use super::statement;
use super::{
    PgStore, StoreError,
    erasure::{LockedUser, Target, audit_users, end_sessions, erase, lock_target},
    outbox::record_for_users,
    users::{USER_COLUMNS, standing_of},
};
use crate::{
    clock::Timestamp,
    domain::{
        AuditKind, CallContext, User,
        events::EventKind,
        lifecycle::{self, ChangeRefused, Status, StatusChange},
    },
};

/// Why a change was not made. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such user or account.
    NotFound,
    /// Deleted already (or, for a status change, waiting out a deletion).
    Deleted,
    /// A restore of a user whose deletion is not waiting.
    NotDeleting,
    /// A suspension that would end before it starts.
    UntilPassed,
}

/// A change made: the users as they stand now and the families it revoked.
#[derive(Debug)]
pub struct Changed {
    /// The users.
    pub users: Vec<User>,
    /// The session families revoked, which the replica adds to its revocations at once.
    pub families: Vec<i64>,
}

/// A deletion made.
#[derive(Debug)]
pub struct Erased {
    /// The users deleted, or waiting out the cooling-off.
    pub user_ids: Vec<i64>,
    /// When their data is erased, during a cooling-off; `None`: erased already.
    pub erase_at: Option<Timestamp>,
    /// The session families revoked.
    pub families: Vec<i64>,
}

/// The users of `target` not deleted yet; `Refused` when there are none.
fn alive(users: Vec<LockedUser>) -> Result<Vec<LockedUser>, Refused> {
    if users.is_empty() {
        return Err(Refused::NotFound);
    }
    let alive: Vec<LockedUser> = users
        .into_iter()
        .filter(|user| user.standing.status != Status::Deleted)
        .collect();
    if alive.is_empty() {
        Err(Refused::Deleted)
    } else {
        Ok(alive)
    }
}

impl PgStore {
    /// Suspends, or lifts the suspension of, the users of `target` (an account's users who
    /// wait out a deletion are left as they are). A suspension revokes every family of the
    /// users and ends their login sessions in the same transaction. Each change is audited.
    pub async fn set_status(
        &self,
        target: Target,
        change: &StatusChange,
        context: &CallContext,
    ) -> Result<Result<Changed, Refused>, StoreError> {
        let now = self.now();
        let result = self
            .run(async |conn| {
                let mut tx = conn.begin().await?;
                let users = match alive(lock_target(&mut tx, target).await?) {
                    Ok(users) => users,
                    Err(refused) => {
                        tx.rollback().await?;
                        return Ok(Err(refused));
                    }
                };
                let mut ids = Vec::new();
                for user in &users {
                    match lifecycle::may_change(&user.standing, change, now) {
                        Ok(()) => ids.push(user.user_id),
                        // An account's user being deleted stays so; a user named alone
                        // must be restored instead.
                        Err(ChangeRefused::Deleted) if matches!(target, Target::Account(_)) => {}
                        Err(refused) => {
                            tx.rollback().await?;
                            return Ok(Err(match refused {
                                ChangeRefused::Deleted => Refused::Deleted,
                                ChangeRefused::UntilPassed => Refused::UntilPassed,
                            }));
                        }
                    }
                }
                if ids.is_empty() {
                    tx.rollback().await?;
                    return Ok(Err(Refused::Deleted));
                }
                let (status, reason, until, kind) = match change {
                    StatusChange::Suspend { reason, until } => (
                        Status::Suspended,
                        Some(reason.as_str()),
                        *until,
                        AuditKind::UserSuspended,
                    ),
                    StatusChange::Lift { .. } => {
                        (Status::Active, None, None, AuditKind::UserReinstated)
                    }
                };
                let families = if status == Status::Suspended {
                    end_sessions(self, &mut tx, &ids, "suspended", context, now).await?
                } else {
                    Vec::new()
                };
                let rows = statement::query(&format!(
                    "update users as u set status = $2, status_reason = $3, \
                       suspended_until = $4, updated_at = $5 \
                     where u.user_id = any($1) returning {}",
                    *USER_COLUMNS
                ))
                .bind(&ids)
                .bind(status.name())
                .bind(reason.filter(|reason| !reason.is_empty()))
                .bind(until)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let outcome = match change {
                    StatusChange::Suspend { reason, .. } | StatusChange::Lift { reason } => {
                        if reason.is_empty() {
                            "ok"
                        } else {
                            reason.as_str()
                        }
                    }
                };
                audit_users(&mut tx, &ids, kind, outcome, context, now, true).await?;
                if status == Status::Suspended {
                    let wanted = self.wanting(&[EventKind::UserSuspended]);
                    let data = "'reason', nullif($3::text, ''), 'until', to_char($4::timestamptz \
                                at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
                    record_for_users(&mut tx, &wanted, &ids, now, data, (reason, until)).await?;
                }
                tx.commit().await?;
                Ok(Ok((rows, families)))
            })
            .await?;
        Ok(match result {
            Ok((rows, families)) => {
                let mut users = self.users_from_rows(&rows)?;
                users.sort_by_key(|user| user.id);
                Ok(Changed { users, families })
            }
            Err(refused) => Err(refused),
        })
    }

    /// Deletes the users of `target`: at once (`erase_at` None), or after a cooling-off
    /// (then they are barred, their sessions end now, and the data is erased at `erase_at`
    /// unless an operator restores them). A user already waiting out a deletion is erased at
    /// once when asked so, and otherwise left as they are (the answer says when).
    pub async fn delete_users(
        &self,
        target: Target,
        erase_at: Option<Timestamp>,
        reason: &str,
        context: &CallContext,
    ) -> Result<Result<Erased, Refused>, StoreError> {
        let now = self.now();
        let vault = self.vault()?.clone();
        self.run(async |conn| {
            let mut tx = conn.begin().await?;
            let users = match alive(lock_target(&mut tx, target).await?) {
                Ok(users) => users,
                Err(refused) => {
                    tx.rollback().await?;
                    return Ok(Err(refused));
                }
            };
            let Some(erase_at) = erase_at else {
                let families = erase(self, &mut tx, &vault, &users, context, now).await?;
                tx.commit().await?;
                return Ok(Ok(Erased {
                    user_ids: users.iter().map(|user| user.user_id).collect(),
                    erase_at: None,
                    families,
                }));
            };
            let waiting: Vec<i64> = users
                .iter()
                .filter(|user| user.standing.status != Status::Deleting)
                .map(|user| user.user_id)
                .collect();
            let families = if waiting.is_empty() {
                Vec::new()
            } else {
                let families =
                    end_sessions(self, &mut tx, &waiting, "deleted", context, now).await?;
                statement::query(
                    "update users set status = 'deleting', delete_after = $2, \
                       status_reason = $3, suspended_until = null, updated_at = $4 \
                     where user_id = any($1)",
                )
                .bind(&waiting)
                .bind(erase_at)
                .bind(Some(reason).filter(|reason| !reason.is_empty()))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let outcome = if reason.is_empty() { "ok" } else { reason };
                audit_users(
                    &mut tx,
                    &waiting,
                    AuditKind::DeletionRequested,
                    outcome,
                    context,
                    now,
                    false,
                )
                .await?;
                families
            };
            tx.commit().await?;
            // Those already waiting keep their own date; the latest is when all are erased.
            let erase_at = users
                .iter()
                .map(|user| match user.standing.status {
                    Status::Deleting => user.standing.delete_after.unwrap_or(erase_at),
                    _ => erase_at,
                })
                .max();
            Ok(Ok(Erased {
                user_ids: users.iter().map(|user| user.user_id).collect(),
                erase_at,
                families,
            }))
        })
        .await
    }

    /// Erases up to `batch` users whose cooling-off has ended (rows other replicas are
    /// erasing are skipped, not waited for). Returns the families revoked (none, usually:
    /// they ended when the deletion was asked) and how many users were erased.
    pub async fn erase_due(
        &self,
        batch: i64,
        context: &CallContext,
    ) -> Result<(Vec<i64>, usize), StoreError> {
        let now = self.now();
        let vault = self.vault()?.clone();
        self.run(async |conn| {
            let mut tx = conn.begin().await?;
            let rows = statement::query(
                "select u.user_id, u.appid, u.openid, u.account_id, u.status, u.status_reason, \
                   u.suspended_until, u.delete_after \
                 from users u where u.status = 'deleting' and u.delete_after <= $1 \
                 order by u.delete_after limit $2 for update skip locked",
            )
            .bind(now)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
            let users = rows
                .iter()
                .map(|row| {
                    Ok(LockedUser {
                        user_id: row.try_get("user_id")?,
                        appid: row.try_get("appid")?,
                        openid: row.try_get("openid")?,
                        account_id: row.try_get("account_id")?,
                        standing: standing_of(row)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            if users.is_empty() {
                tx.rollback().await?;
                return Ok((Vec::new(), 0));
            }
            let families = erase(self, &mut tx, &vault, &users, context, now).await?;
            tx.commit().await?;
            Ok((families, users.len()))
        })
        .await
    }

    /// Undoes the deletion of a user waiting out its cooling-off: active again, with no
    /// session or token of before.
    pub async fn restore_user(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<Result<User, Refused>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                let mut tx = conn.begin().await?;
                let users = lock_target(&mut tx, Target::User(user_id)).await?;
                let refused = match users.first().map(|user| user.standing.status) {
                    None => Some(Refused::NotFound),
                    Some(Status::Deleted) => Some(Refused::Deleted),
                    Some(Status::Deleting) => None,
                    Some(Status::Active | Status::Suspended) => Some(Refused::NotDeleting),
                };
                if let Some(refused) = refused {
                    tx.rollback().await?;
                    return Ok(Err(refused));
                }
                let row = statement::query(&format!(
                    "update users as u set status = 'active', delete_after = null, \
                       status_reason = null, updated_at = $2 \
                     where u.user_id = $1 returning {}",
                    *USER_COLUMNS
                ))
                .bind(user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                audit_users(
                    &mut tx,
                    &[user_id],
                    AuditKind::UserRestored,
                    "ok",
                    context,
                    now,
                    true,
                )
                .await?;
                tx.commit().await?;
                Ok(Ok(row))
            })
            .await?;
        Ok(match row {
            Ok(row) => Ok(self.user_from_row(&row)?),
            Err(refused) => Err(refused),
        })
    }
}
