//! What a change of standing does to a user's rows: they are locked, their sessions end,
//! the change is audited, and a deletion erases them, leaving a tombstone with nothing
//! personal.

use sqlx::{Row as _, postgres::PgConnection};

use super::statement;
use super::{
    PgStore,
    families::{Ending, Families, revoke},
    outbox::record_for_users,
    users::standing_of,
};
use crate::{
    clock::Timestamp,
    domain::{AuditKind, CallContext, events::EventKind, lifecycle::Standing},
};

/// Whose life changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One user.
    User(i64),
    /// Every user of an account.
    Account(i64),
}

/// The rows of a target, locked.
#[derive(Debug)]
pub(super) struct LockedUser {
    pub(super) user_id: i64,
    pub(super) appid: String,
    pub(super) openid: Option<String>,
    pub(super) account_id: i64,
    pub(super) standing: Standing,
}

/// Locks and reads the users of `target`, oldest first (a tombstone included).
pub(super) async fn lock_target(
    tx: &mut PgConnection,
    target: Target,
) -> Result<Vec<LockedUser>, sqlx::Error> {
    let (column, id) = match target {
        Target::User(id) => ("user_id", id),
        Target::Account(id) => ("account_id", id),
    };
    let rows = statement::query(&format!(
        "select u.user_id, u.appid, u.openid, u.account_id, u.status, u.status_reason, \
           u.suspended_until, u.delete_after \
         from users u where u.{column} = $1 order by u.user_id for update"
    ))
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LockedUser {
                user_id: row.try_get("user_id")?,
                appid: row.try_get("appid")?,
                openid: row.try_get("openid")?,
                account_id: row.try_get("account_id")?,
                standing: standing_of(row)?,
            })
        })
        .collect()
}

/// Audits `kind` once per user of `ids`, with `outcome`, in the transaction. The client's
/// address is left out (`with_client`: false) where the event must hold nothing personal.
pub(super) async fn audit_users(
    tx: &mut PgConnection,
    ids: &[i64],
    kind: AuditKind,
    outcome: &str,
    context: &CallContext,
    now: Timestamp,
    with_client: bool,
) -> Result<(), sqlx::Error> {
    statement::query(
        "insert into audit_events (at, kind, outcome, appid, user_id, account_id, actor, \
           client_addr, request_id, client_request_id) \
         select $1, $2, $3, u.appid, u.user_id, u.account_id, $4, $5, $6, $7 \
         from users u where u.user_id = any($8) order by u.user_id",
    )
    .bind(now)
    .bind(kind.name())
    .bind(outcome)
    .bind(&context.caller)
    .bind(context.client_addr.as_ref().filter(|_| with_client))
    .bind(&context.request_id)
    .bind(context.client_request_id.as_ref().filter(|_| with_client))
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Revokes every live family of `ids` (audited as revoked, `reason`), ends their login
/// sessions and drops their kept session_keys; returns the families revoked.
pub(super) async fn end_sessions(
    store: &PgStore,
    tx: &mut PgConnection,
    ids: &[i64],
    reason: &str,
    context: &CallContext,
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let ending = Ending {
        kind: AuditKind::Revoked,
        reason,
        reuse: false,
    };
    let revoked = revoke(store, tx, Families::OfUsers(ids), ending, context, now).await?;
    statement::query(
        "with users_of as (select appid, openid from users where user_id = any($1) \
           and openid is not null), \
         sessions as (delete from login_sessions s using users_of x \
           where s.appid = x.appid and s.openid = x.openid) \
         delete from user_session_keys k using users_of x \
           where k.appid = x.appid and k.openid = x.openid",
    )
    .bind(ids)
    .execute(&mut *tx)
    .await?;
    revoked.iter().map(|row| row.try_get("family_id")).collect()
}

/// The free-text outcomes an operator typed (the reasons of a suspension or a deletion),
/// which an erasure empties with the rest.
const TYPED_OUTCOMES: [AuditKind; 4] = [
    AuditKind::UserSuspended,
    AuditKind::UserReinstated,
    AuditKind::DeletionRequested,
    AuditKind::UserRestored,
];

/// Erases `users` in the transaction: every family revoked (and its refresh tokens
/// dropped), login sessions and kept session_keys dropped, every personal field emptied and
/// the row left as a tombstone with a keyed digest of (appid, openid), the personal fields of
/// their audit events emptied, and their account row (it holds the unionid) dropped once no
/// user is left in it. Audited as `user_deleted`, with nothing personal. Their webhook
/// events not yet purged go too (they may hold an openid or a phone); `user.deleted` is
/// written in their place, with nothing but ids.
pub(super) async fn erase(
    store: &PgStore,
    tx: &mut PgConnection,
    vault: &super::PhoneVault,
    users: &[LockedUser],
    context: &CallContext,
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let ids: Vec<i64> = users.iter().map(|user| user.user_id).collect();
    let families = end_sessions(store, tx, &ids, "deleted", context, now).await?;
    let mut digests = Vec::new();
    let mut kids = Vec::new();
    for user in users {
        let (digest, kid) = match &user.openid {
            Some(openid) => {
                let (digest, kid) = vault
                    .erased_digest(&user.appid, openid)
                    .map_err(|err| sqlx::Error::Encode(err.to_string().into()))?;
                (Some(digest), Some(kid))
            }
            None => (None, None),
        };
        digests.push(digest);
        kids.push(kid);
    }
    let accounts: Vec<i64> = users.iter().map(|user| user.account_id).collect();
    let typed: Vec<&str> = TYPED_OUTCOMES.iter().map(|kind| kind.name()).collect();
    statement::query(
        "with tokens as (delete from refresh_tokens where family_id in \
           (select family_id from token_families where user_id = any($1))), \
         tombstones as (update users as u set openid = null, unionid = null, nickname = null, \
           avatar_url = null, gender = null, language = null, city = null, province = null, \
           country = null, phone_number = null, pure_phone_number = null, \
           phone_country_code = null, phone_kid = null, phone_nonce = null, \
           phone_sealed = null, phone_index = null, phone_index_kid = null, \
           nickname_check = null, status = 'deleted', status_reason = null, \
           suspended_until = null, delete_after = null, deleted_at = $4, updated_at = $4, \
           erased_digest = e.digest, erased_kid = e.kid \
           from unnest($1::bigint[], $2::bytea[], $3::text[]) as e(user_id, digest, kid) \
           where u.user_id = e.user_id), \
         scrubbed as (update audit_events set client_addr = null, openid_digest = null, \
           client_request_id = null, \
           outcome = case when kind = any($5) then 'erased' else outcome end \
           where user_id = any($1)), \
         events as (delete from webhook_events where user_id = any($1)) \
         select 1",
    )
    .bind(&ids)
    .bind(&digests)
    .bind(&kids)
    .bind(now)
    .bind(&typed)
    .execute(&mut *tx)
    .await?;
    // A statement of its own: it must see the tombstones just written.
    statement::query(
        "delete from accounts a where a.account_id = any($1) and not exists \
           (select 1 from users u where u.account_id = a.account_id and u.status <> 'deleted')",
    )
    .bind(&accounts)
    .execute(&mut *tx)
    .await?;
    audit_users(tx, &ids, AuditKind::UserDeleted, "ok", context, now, false).await?;
    let wanted = store.wanting(&[EventKind::UserDeleted]);
    record_for_users(tx, &wanted, &ids, now, "", (None, None)).await?;
    Ok(families)
}
