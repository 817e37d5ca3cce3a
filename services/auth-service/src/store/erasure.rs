//! The erasure of deleted users: what is left of them is a tombstone, and nothing personal.

use sqlx::postgres::PgConnection;

use super::lifecycle::{LockedUser, audit_users, end_sessions};
use crate::{
    clock::Timestamp,
    domain::{AuditKind, CallContext},
};

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
/// user is left in it. Audited as `user_deleted`, with nothing personal.
pub(super) async fn erase(
    tx: &mut PgConnection,
    vault: &super::PhoneVault,
    users: &[LockedUser],
    context: &CallContext,
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let ids: Vec<i64> = users.iter().map(|user| user.user_id).collect();
    let families = end_sessions(tx, &ids, "deleted", context, now).await?;
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
    sqlx::query(
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
           where user_id = any($1)) \
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
    sqlx::query(
        "delete from accounts a where a.account_id = any($1) and not exists \
           (select 1 from users u where u.account_id = a.account_id and u.status <> 'deleted')",
    )
    .bind(&accounts)
    .execute(&mut *tx)
    .await?;
    audit_users(tx, &ids, AuditKind::UserDeleted, "ok", context, now, false).await?;
    Ok(families)
}
