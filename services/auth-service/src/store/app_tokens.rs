//! Each app's access_token row, and the lock that lets one replica at a time refresh it.

use std::time::Duration;

use sqlx::Row as _;

use super::statement;
use super::{PgStore, StoreError, answered, pool::Lease};
use crate::{clock::SharedClock, domain::TokenStatus, secrets::Sealed};

/// An app's stored token.
#[derive(Debug)]
pub struct StoredToken {
    /// The token, sealed.
    pub sealed: Sealed,
    /// Its SHA-256, to compare without opening it.
    pub digest: Vec<u8>,
    /// Seconds until it expires (negative once it has).
    pub expires_in: i64,
}

const SELECT_TOKEN: &str = "select token_kid, token_nonce, token_sealed, token_digest, \
    extract(epoch from expires_at - $2)::bigint as expires_in \
    from app_access_tokens where appid = $1 and token_sealed is not null";

fn stored(row: &sqlx::postgres::PgRow) -> Result<StoredToken, sqlx::Error> {
    Ok(StoredToken {
        sealed: Sealed {
            kid: row.try_get("token_kid")?,
            nonce: row.try_get("token_nonce")?,
            ciphertext: row.try_get("token_sealed")?,
        },
        digest: row.try_get("token_digest")?,
        expires_in: row.try_get("expires_in")?,
    })
}

/// The refresh lock of one app, held in an open transaction on a connection of its own:
/// while it is held no other replica refreshes that app's token. Committed by
/// [`RefreshLock::stored`] or [`RefreshLock::failed`]; dropped otherwise, the connection
/// closes, which ends the transaction and frees the lock.
#[derive(Debug)]
pub struct RefreshLock {
    lease: Lease,
    appid: String,
    /// The store's bound on work the database leaves unanswered.
    answer_within: Duration,
    /// The store's clock, which stamps what is written under the lock.
    clock: SharedClock,
    /// Whether its connection goes through a pooler (statements unnamed).
    pooled: bool,
}

impl PgStore {
    /// The stored token of `appid`, if there is one.
    pub async fn app_token(&self, appid: &str) -> Result<Option<StoredToken>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                statement::query(SELECT_TOKEN)
                    .bind(appid)
                    .bind(now)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| stored(&row)).transpose()?)
    }

    /// Waits for the refresh lock of `appid` and returns it with the token stored now (which
    /// another replica may have just refreshed: look before fetching).
    pub async fn lock_app_token(
        &self,
        appid: &str,
    ) -> Result<(RefreshLock, Option<StoredToken>), StoreError> {
        let mut lease = self.pool.lease().await?;
        let now = self.now();
        let pooled = self.pooled();
        let begin = if pooled {
            self.pooled_begin()
        } else {
            "begin".to_owned()
        };
        let locked = answered(
            self.answer_within,
            statement::within(pooled, async {
                // A simple query, not a prepared one: through a pooler in transaction mode
                // nothing before the transaction is sure to reach the same server.
                sqlx::Executor::execute(lease.conn(), begin.as_str()).await?;
                statement::query(
                "select pg_advisory_xact_lock(hashtextextended('wxauth.access_token:' || $1, 0))",
            )
            .bind(appid)
            .execute(lease.conn())
            .await?;
                statement::query(SELECT_TOKEN)
                    .bind(appid)
                    .bind(now)
                    .fetch_optional(lease.conn())
                    .await
            }),
        )
        .await?;
        // On failure the lease is dropped: its connection, mid-transaction, is closed.
        let row = locked?;
        let current = row.map(|row| stored(&row)).transpose()?;
        Ok((
            RefreshLock {
                lease,
                appid: appid.to_owned(),
                answer_within: self.answer_within,
                clock: self.clock.clone(),
                pooled,
            },
            current,
        ))
    }

    /// Expires the stored token of `appid` if it is still the one with `digest` (WeChat
    /// refused it); a token another replica already replaced is left alone. True when
    /// expired.
    pub async fn expire_app_token(&self, appid: &str, digest: &[u8]) -> Result<bool, StoreError> {
        let now = self.now();
        let done = self
            .run(async |conn| {
                statement::query(
                    "update app_access_tokens set expires_at = $3 \
                     where appid = $1 and token_digest = $2 and expires_at > $3",
                )
                .bind(appid)
                .bind(digest)
                .bind(now)
                .execute(conn)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Apps whose token expires within `secs` (or has), to refresh ahead of time.
    pub async fn app_tokens_expiring(&self, secs: i64) -> Result<Vec<String>, StoreError> {
        let before = self.now().plus_secs(secs);
        self.run(async |conn| {
            statement::query_scalar(
                "select appid from app_access_tokens \
                 where token_sealed is not null and expires_at < $1",
            )
            .bind(before)
            .fetch_all(conn)
            .await
        })
        .await
    }

    /// Every app's token status, for operators.
    pub async fn app_token_statuses(&self) -> Result<Vec<TokenStatus>, StoreError> {
        let now = self.now();
        let rows = self
            .run(async |conn| {
                statement::query(
                    "select appid, extract(epoch from fetched_at)::bigint as fetched_at, \
                       greatest(extract(epoch from $1 - fetched_at)::bigint, 0) as age_secs, \
                       extract(epoch from expires_at)::bigint as expires_at, refreshes, \
                       extract(epoch from last_attempt_at)::bigint as last_attempt_at, last_outcome \
                     from app_access_tokens order by appid",
                )
                .bind(now)
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenStatus {
                    appid: row.try_get("appid")?,
                    fetched_at: row.try_get("fetched_at")?,
                    age_secs: row.try_get("age_secs")?,
                    expires_at: row.try_get("expires_at")?,
                    refreshes: row.try_get("refreshes")?,
                    last_attempt_at: row.try_get("last_attempt_at")?,
                    last_outcome: row.try_get("last_outcome")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

impl RefreshLock {
    /// Frees the lock without a change (another replica refreshed the token meanwhile).
    pub async fn release(mut self) -> Result<(), StoreError> {
        let result = answered(
            self.answer_within,
            // The statement is made inside the scope (an async block), where it reads it.
            statement::within(self.pooled, async {
                statement::query("commit").execute(self.lease.conn()).await
            }),
        )
        .await?;
        Ok(self.lease.finish(result).map(drop)?)
    }

    /// Stores a freshly fetched token and commits, freeing the lock.
    pub async fn stored(
        mut self,
        sealed: &Sealed,
        digest: &[u8],
        expires_in: i64,
    ) -> Result<(), StoreError> {
        let now = self.clock.timestamp();
        let pooled = self.pooled;
        let result = answered(
            self.answer_within,
            statement::within(pooled, async {
                statement::query(
                "insert into app_access_tokens as t (appid, token_kid, token_nonce, token_sealed, \
                   token_digest, expires_at, fetched_at, refreshes, last_attempt_at, last_outcome) \
                 values ($1, $2, $3, $4, $5, $6, $7, 1, $7, 'ok') \
                 on conflict (appid) do update set token_kid = excluded.token_kid, \
                   token_nonce = excluded.token_nonce, token_sealed = excluded.token_sealed, \
                   token_digest = excluded.token_digest, expires_at = excluded.expires_at, \
                   fetched_at = excluded.fetched_at, refreshes = t.refreshes + 1, \
                   last_attempt_at = excluded.last_attempt_at, last_outcome = 'ok'",
            )
            .bind(&self.appid)
            .bind(&sealed.kid)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(digest)
            .bind(now.plus_secs(expires_in))
            .bind(now)
            .execute(self.lease.conn())
            .await?;
                statement::query("commit").execute(self.lease.conn()).await
            }),
        )
        .await?;
        Ok(self.lease.finish(result).map(drop)?)
    }

    /// Records a failed fetch (`outcome`: what WeChat answered) and commits, freeing the
    /// lock; the stored token, if any, is kept.
    pub async fn failed(mut self, outcome: &str) -> Result<(), StoreError> {
        let now = self.clock.timestamp();
        let pooled = self.pooled;
        let result = answered(self.answer_within, statement::within(pooled, async {
            statement::query(
                "insert into app_access_tokens as t (appid, last_attempt_at, last_outcome) \
                 values ($1, $3, $2) on conflict (appid) do update set \
                   last_attempt_at = excluded.last_attempt_at, last_outcome = excluded.last_outcome",
            )
            .bind(&self.appid)
            .bind(outcome)
            .bind(now)
            .execute(self.lease.conn())
            .await?;
            statement::query("commit").execute(self.lease.conn()).await
        }))
        .await?;
        Ok(self.lease.finish(result).map(drop)?)
    }
}
