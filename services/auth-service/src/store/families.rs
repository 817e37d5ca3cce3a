//! Session families (one per login) and their refresh tokens: rotation, reuse detection and
//! revocation, which every replica hears of through `NOTIFY`.

use sqlx::{Connection as _, Row as _, postgres::PgConnection};

use super::{
    PgStore, StoreError,
    logins::{IssuedLogin, USER_BY_ID, user_from_row},
};

/// The Postgres channel that carries revoked family ids to every replica.
pub const REVOKED_CHANNEL: &str = "wxauth_revoked";

/// A login's new refresh token, stored by its digest.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh<'a> {
    /// SHA-256 of the refresh token.
    pub hash: &'a [u8],
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// It was live: it is now used, and the new one is stored in the same family.
    Rotated(Box<IssuedLogin>),
    /// It had been used before: the family is now revoked.
    Reused {
        /// The revoked family.
        family_id: i64,
    },
    /// Unknown, expired, or its family was already revoked.
    Invalid,
}

impl PgStore {
    /// Trades a refresh token for a new one in the same family, atomically: two concurrent
    /// refreshes with one token cannot both win (the row is locked), and the loser is
    /// treated as reuse.
    pub async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: NewRefresh<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        self.run(async |conn| rotate(conn, old_hash, new).await)
            .await
    }

    /// Revokes one family (if live). Returns whether it was live.
    pub async fn revoke_family(&self, family_id: i64, reason: &str) -> Result<bool, StoreError> {
        let revoked = self
            .run(async |conn| {
                sqlx::query(
                    "with revoked as (update token_families set revoked_at = now(), revoke_reason = $2 \
                       where family_id = $1 and revoked_at is null returning family_id) \
                     select family_id, pg_notify($3, family_id::text)::text as notified from revoked",
                )
                .bind(family_id)
                .bind(reason)
                .bind(REVOKED_CHANNEL)
                .fetch_all(conn)
                .await
            })
            .await?;
        Ok(revoked.len() == 1)
    }

    /// The family of a refresh token, whatever its state.
    pub async fn family_of_refresh(&self, hash: &[u8]) -> Result<Option<i64>, StoreError> {
        self.run(async |conn| {
            sqlx::query_scalar("select family_id from refresh_tokens where token_hash = $1")
                .bind(hash)
                .fetch_optional(conn)
                .await
        })
        .await
    }

    /// Revokes every live family of a user, and tells every replica. Returns how many there
    /// were.
    pub async fn revoke_user(&self, user_id: i64, reason: &str) -> Result<u64, StoreError> {
        let revoked = self
            .run(async |conn| {
                sqlx::query(
                    "with revoked as (update token_families set revoked_at = now(), revoke_reason = $2 \
                       where user_id = $1 and revoked_at is null returning family_id) \
                     select family_id, pg_notify($3, family_id::text)::text as notified from revoked",
                )
                .bind(user_id)
                .bind(reason)
                .bind(REVOKED_CHANNEL)
                .fetch_all(conn)
                .await
            })
            .await?;
        Ok(revoked.len() as u64)
    }

    /// Families revoked in the last `window_secs` seconds: what a replica's cache must hold
    /// (older ones only have expired access tokens left).
    pub async fn recently_revoked(&self, window_secs: i64) -> Result<Vec<i64>, StoreError> {
        self.run(async |conn| {
            sqlx::query_scalar(
                "select family_id from token_families \
                 where revoked_at > now() - make_interval(secs => $1)",
            )
            .bind(window_secs as f64)
            .fetch_all(conn)
            .await
        })
        .await
    }

    /// Whether a family is revoked, asked of the database itself: the fallback while a
    /// replica's revocation cache is not connected.
    pub async fn is_family_revoked(&self, family_id: i64) -> Result<bool, StoreError> {
        let revoked: Option<bool> = self
            .run(async |conn| {
                sqlx::query_scalar(
                    "select revoked_at is not null from token_families where family_id = $1",
                )
                .bind(family_id)
                .fetch_optional(conn)
                .await
            })
            .await?;
        // A family that does not exist (deleted user) is as good as revoked.
        Ok(revoked.unwrap_or(true))
    }
}

/// The rotation, as one transaction on `conn`.
async fn rotate(
    conn: &mut PgConnection,
    old_hash: &[u8],
    new: NewRefresh<'_>,
) -> Result<RefreshOutcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let row = sqlx::query(
        "select r.family_id, r.used_at is not null as used, r.expires_at <= now() as expired, \
                f.revoked_at is not null as revoked, f.user_id \
         from refresh_tokens r join token_families f on f.family_id = r.family_id \
         where r.token_hash = $1 for update of r, f",
    )
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(RefreshOutcome::Invalid);
    };
    let family_id: i64 = row.try_get("family_id")?;
    let (used, expired, revoked): (bool, bool, bool) = (
        row.try_get("used")?,
        row.try_get("expired")?,
        row.try_get("revoked")?,
    );
    if revoked || expired {
        return Ok(RefreshOutcome::Invalid);
    }
    if used {
        sqlx::query(
            "with revoked as (update token_families set revoked_at = now(), \
               revoke_reason = 'refresh token reused' where family_id = $1 and revoked_at is null \
               returning family_id) \
             select pg_notify($2, family_id::text)::text from revoked",
        )
        .bind(family_id)
        .bind(REVOKED_CHANNEL)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused { family_id });
    }
    sqlx::query("update refresh_tokens set used_at = now() where token_hash = $1")
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
    let refresh_expires_at: i64 = sqlx::query_scalar(
        "insert into refresh_tokens (token_hash, family_id, expires_at) \
         values ($1, $2, now() + make_interval(secs => $3)) \
         returning extract(epoch from expires_at)::bigint",
    )
    .bind(new.hash)
    .bind(family_id)
    .bind(new.ttl_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    let user_id: i64 = row.try_get("user_id")?;
    let user = sqlx::query(&USER_BY_ID)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    let user = user_from_row(&user)?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated(Box::new(IssuedLogin {
        user,
        family_id,
        refresh_expires_at,
    })))
}
