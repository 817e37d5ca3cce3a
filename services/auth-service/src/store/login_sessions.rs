//! Login sessions (the "3rd_session"): what a mini-program holds between `wx.login()` and
//! sending its encrypted data, with the session_key sealed.

use sqlx::{Row as _, postgres::PgRow};

use std::sync::LazyLock;

use super::statement;
use super::{
    PgStore, StoreError,
    gate::barred_sql,
    logins::{account_facts, account_state},
};
use crate::{
    clock::Timestamp,
    domain::{LoginSession, merge::AccountState},
    secrets::Sealed,
};

/// A new login session.
pub struct NewSession<'a> {
    /// SHA-256 of the session id.
    pub id_hash: &'a [u8],
    /// The appid.
    pub appid: &'a str,
    /// The openid.
    pub openid: &'a str,
    /// The unionid, if WeChat gave one.
    pub unionid: Option<&'a str>,
    /// The sealed session_key.
    pub sealed_key: &'a Sealed,
    /// The same key sealed for the user's row of `user_session_keys`.
    pub user_key: &'a Sealed,
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

/// Stores a login session (see [`PgStore::create_session`]) and reads the account facts the
/// login will be decided on, in the same snapshot. A user who may not log in (suspended,
/// being deleted) gets neither a session nor a kept session_key: the facts say why.
static CREATE_SESSION: LazyLock<String> = LazyLock::new(|| {
    let barred = format!(
        "exists (select 1 from users g where g.appid = $2 and g.openid = $3 and {})",
        barred_sql("g", "$12")
    );
    format!(
        "with superseded as (delete from login_sessions \
           where appid = $2 and openid = $3 and created_at <= $12), \
         latest as (insert into user_session_keys as k (appid, openid, session_key_kid, \
             session_key_nonce, session_key_sealed, obtained_at) \
           select $2, $3, $9, $10, $11, $12 where not {barred} \
           on conflict (appid, openid) do update set \
             session_key_kid = excluded.session_key_kid, \
             session_key_nonce = excluded.session_key_nonce, \
             session_key_sealed = excluded.session_key_sealed, \
             obtained_at = excluded.obtained_at \
           where k.obtained_at <= excluded.obtained_at), \
         stored as (insert into login_sessions (id_hash, appid, openid, unionid, session_key_kid, \
           session_key_nonce, session_key_sealed, created_at, expires_at) \
         select $1, $2, $3, $4, $5, $6, $7, $12, $8 \
         where not exists (select 1 from login_sessions \
           where appid = $2 and openid = $3 and created_at > $12) and not {barred}) \
         {}",
        account_facts(2, 3, 4)
    )
});

impl PgStore {
    /// Stores a new session and drops the user's older sessions of the same app (their
    /// session_key is no longer WeChat's live one), and keeps the key as the user's latest.
    /// Returns the expiry in Unix seconds, and what the account rule will need of the user
    /// and their unionid, read in the same snapshot, so the login needs no read of its own;
    /// nothing is stored when those facts say the user may not log in (the caller asks
    /// [`crate::domain::lifecycle::barred`] of them, at the returned time).
    ///
    /// WeChat keeps one live session_key per user: the one its latest exchange gave. Logins of
    /// one user may land here out of order (two at once, on two replicas), so the key and the
    /// session are stamped with the time the exchange came back, and an older one never
    /// replaces a newer: the kept key is overwritten only by a newer one, only older sessions
    /// are dropped, and a session that arrives after a newer one is not stored at all (its id
    /// answers "unknown session", as a superseded one does).
    ///
    /// One statement, so one round trip and one commit: the delete runs in a data-modifying
    /// `with`, which Postgres always runs to completion in the same transaction.
    pub async fn create_session(
        &self,
        session: NewSession<'_>,
    ) -> Result<(i64, AccountState, Timestamp), StoreError> {
        let now = self.now();
        let expires_at = now.plus_secs(session.ttl_secs);
        let row = self
            .run(async |conn| {
                statement::query(&CREATE_SESSION)
                    .bind(session.id_hash)
                    .bind(session.appid)
                    .bind(session.openid)
                    .bind(session.unionid)
                    .bind(&session.sealed_key.kid)
                    .bind(&session.sealed_key.nonce)
                    .bind(&session.sealed_key.ciphertext)
                    .bind(expires_at)
                    .bind(&session.user_key.kid)
                    .bind(&session.user_key.nonce)
                    .bind(&session.user_key.ciphertext)
                    .bind(now)
                    .fetch_one(conn)
                    .await
            })
            .await?;
        Ok((
            expires_at.secs(),
            account_state(&row, session.unionid)?,
            now,
        ))
    }
    /// Live sessions whose session_key is sealed under one of `kids`, `limit` at a time.
    pub async fn sessions_sealed_under(
        &self,
        kids: &[&str],
        limit: i64,
    ) -> Result<Vec<(Vec<u8>, LoginSession)>, StoreError> {
        let now = self.now();
        let rows = self
            .run(async |conn| {
                statement::query(
                    "select id_hash, appid, openid, unionid, session_key_kid, session_key_nonce, \
                       session_key_sealed from login_sessions \
                     where session_key_kid = any($1) and expires_at > $3 limit $2",
                )
                .bind(kids)
                .bind(limit)
                .bind(now)
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id_hash")?, session_from_row(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Replaces a session's sealed key, if it is still sealed under `old_kid` (a rotation on
    /// another replica may have got there first). Returns whether it was replaced.
    pub async fn reseal_session(
        &self,
        id_hash: &[u8],
        old_kid: &str,
        sealed: &Sealed,
    ) -> Result<bool, StoreError> {
        let done = self
            .run(async |conn| {
                statement::query(
                    "update login_sessions set session_key_kid = $3, session_key_nonce = $4, \
                       session_key_sealed = $5 where id_hash = $1 and session_key_kid = $2",
                )
                .bind(id_hash)
                .bind(old_kid)
                .bind(&sealed.kid)
                .bind(&sealed.nonce)
                .bind(&sealed.ciphertext)
                .execute(conn)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live session with this id digest, if any.
    pub async fn find_session(&self, id_hash: &[u8]) -> Result<Option<LoginSession>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                statement::query(
                    "select appid, openid, unionid, session_key_kid, session_key_nonce, session_key_sealed \
                     from login_sessions where id_hash = $1 and expires_at > $2",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(conn)
                .await
            })
            .await?;
        row.as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from)
    }
}

fn session_from_row(row: &PgRow) -> Result<LoginSession, sqlx::Error> {
    Ok(LoginSession {
        appid: row.try_get("appid")?,
        openid: row.try_get("openid")?,
        unionid: row.try_get("unionid")?,
        sealed_key: Sealed {
            kid: row.try_get("session_key_kid")?,
            nonce: row.try_get("session_key_nonce")?,
            ciphertext: row.try_get("session_key_sealed")?,
        },
        account: None,
    })
}
