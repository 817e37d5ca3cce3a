//! Login sessions (the "3rd_session"): what a mini-program holds between `wx.login()` and
//! sending its encrypted data, with the session_key sealed.

use sqlx::Row as _;

use super::{PgStore, StoreError};
use crate::{domain::LoginSession, secrets::Sealed};

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
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

impl PgStore {
    /// Stores a new session and drops the user's older sessions of the same app (their
    /// session_key is no longer WeChat's live one). Returns the expiry in Unix seconds.
    ///
    /// One statement, so one round trip and one commit: the delete runs in a data-modifying
    /// `with`, which Postgres always runs to completion in the same transaction.
    pub async fn create_session(&self, session: NewSession<'_>) -> Result<i64, StoreError> {
        self.run(async |conn| {
            sqlx::query_scalar(
                "with superseded as (delete from login_sessions where appid = $2 and openid = $3) \
                 insert into login_sessions \
                   (id_hash, appid, openid, unionid, session_key_kid, session_key_nonce, session_key_sealed, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) \
                 returning extract(epoch from expires_at)::bigint",
            )
            .bind(session.id_hash)
            .bind(session.appid)
            .bind(session.openid)
            .bind(session.unionid)
            .bind(&session.sealed_key.kid)
            .bind(&session.sealed_key.nonce)
            .bind(&session.sealed_key.ciphertext)
            .bind(session.ttl_secs as f64)
            .fetch_one(conn)
            .await
        })
        .await
    }

    /// The live session with this id digest, if any.
    pub async fn find_session(&self, id_hash: &[u8]) -> Result<Option<LoginSession>, StoreError> {
        let row = self
            .run(async |conn| {
                sqlx::query(
                    "select appid, openid, unionid, session_key_kid, session_key_nonce, session_key_sealed \
                     from login_sessions where id_hash = $1 and expires_at > now()",
                )
                .bind(id_hash)
                .fetch_optional(conn)
                .await
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(LoginSession {
            appid: row.try_get("appid")?,
            openid: row.try_get("openid")?,
            unionid: row.try_get("unionid")?,
            sealed_key: Sealed {
                kid: row.try_get("session_key_kid")?,
                nonce: row.try_get("session_key_nonce")?,
                ciphertext: row.try_get("session_key_sealed")?,
            },
        }))
    }
}
