//! The latest session_key of each user (`user_session_keys`), sealed: read to check it with
//! WeChat or to sign its reset, replaced by a reset, re-sealed by a key rotation.

use sqlx::Row as _;

use super::statement;
use super::{PgStore, StoreError, audit::AUDIT_INSERT};
use crate::{
    domain::{AuditKind, CallContext},
    secrets::Sealed,
};

/// A user's stored key, as sealed.
#[derive(Debug)]
pub struct StoredUserKey {
    /// The app.
    pub appid: String,
    /// The user's openid.
    pub openid: String,
    /// The key, sealed.
    pub sealed: Sealed,
}

fn sealed_from(row: &sqlx::postgres::PgRow) -> Result<StoredUserKey, sqlx::Error> {
    Ok(StoredUserKey {
        appid: row.try_get("appid")?,
        openid: row.try_get("openid")?,
        sealed: Sealed {
            kid: row.try_get("session_key_kid")?,
            nonce: row.try_get("session_key_nonce")?,
            ciphertext: row.try_get("session_key_sealed")?,
        },
    })
}

impl PgStore {
    /// The latest session_key of (appid, openid), if one is kept.
    pub async fn user_session_key(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Option<StoredUserKey>, StoreError> {
        let row = self
            .run(async |conn| {
                statement::query(
                    "select appid, openid, session_key_kid, session_key_nonce, session_key_sealed \
                     from user_session_keys where appid = $1 and openid = $2",
                )
                .bind(appid)
                .bind(openid)
                .fetch_optional(conn)
                .await
            })
            .await?;
        Ok(row.map(|row| sealed_from(&row)).transpose()?)
    }

    /// Stores the key a reset gave, if the stored one is still the one the reset was signed
    /// with (`old`), ends the user's open login sessions (their key no longer works) and
    /// audits the reset. One statement. Returns whether it was stored.
    pub async fn replace_user_session_key(
        &self,
        appid: &str,
        openid: &str,
        old: &Sealed,
        new: &Sealed,
        context: &CallContext,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let replaced: Option<i32> = self
            .run(async |conn| {
                statement::query_scalar(&format!(
                    "with k as (update user_session_keys set session_key_kid = $4, \
                       session_key_nonce = $5, session_key_sealed = $6 \
                       where appid = $1 and openid = $2 and session_key_nonce = $3 returning 1), \
                     ended as (delete from login_sessions where appid = $1 and openid = $2 \
                       and exists (select 1 from k)), \
                     a as ({AUDIT_INSERT} select $7, '{kind}', 'ok', u.appid, u.user_id, null, \
                       null, $8, $9, $10, $11 from users u \
                       where u.appid = $1 and u.openid = $2 and exists (select 1 from k)) \
                     select 1 from k",
                    kind = AuditKind::SessionKeyReset.name()
                ))
                .bind(appid)
                .bind(openid)
                .bind(&old.nonce)
                .bind(&new.kid)
                .bind(&new.nonce)
                .bind(&new.ciphertext)
                .bind(now)
                .bind(&context.caller)
                .bind(&context.client_addr)
                .bind(&context.request_id)
                .bind(&context.client_request_id)
                .fetch_optional(conn)
                .await
            })
            .await?;
        Ok(replaced.is_some())
    }

    /// Stored user keys sealed under one of `kids`, `limit` at a time.
    pub async fn user_keys_sealed_under(
        &self,
        kids: &[&str],
        limit: i64,
    ) -> Result<Vec<StoredUserKey>, StoreError> {
        let rows = self
            .run(async |conn| {
                statement::query(
                    "select appid, openid, session_key_kid, session_key_nonce, session_key_sealed \
                     from user_session_keys where session_key_kid = any($1) limit $2",
                )
                .bind(kids)
                .bind(limit)
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(sealed_from)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Re-seals a user's key, if it is still sealed as `old` (another replica may have got
    /// there first). Returns whether it was replaced.
    pub async fn reseal_user_key(
        &self,
        appid: &str,
        openid: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool, StoreError> {
        let done = self
            .run(async |conn| {
                statement::query(
                    "update user_session_keys set session_key_kid = $4, session_key_nonce = $5, \
                       session_key_sealed = $6 where appid = $1 and openid = $2 and session_key_nonce = $3",
                )
                .bind(appid)
                .bind(openid)
                .bind(&old.nonce)
                .bind(&new.kid)
                .bind(&new.nonce)
                .bind(&new.ciphertext)
                .execute(conn)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
