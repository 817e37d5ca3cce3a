//! What a replica does to the database in the background: check that it answers, and delete
//! what expired.

use super::{PgStore, StoreError};
use crate::clock::Timestamp;

/// The health ping: whether the server takes writes (`transaction_read_only` is on in a
/// standby and in a server set read-only).
pub const PING: &str = "select current_setting('transaction_read_only') = 'on'";

/// How long records that only tell what happened are kept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Audit events.
    pub audit_secs: i64,
    /// Webhook events delivered or dead.
    pub events_secs: i64,
}

impl PgStore {
    /// Whether the database answers and takes writes: every login writes, so a server that
    /// answers reads only ([`StoreError::ReadOnly`]) cannot serve one.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let read_only: bool = self
            .run(async |conn| sqlx::query_scalar(PING).fetch_one(conn).await)
            .await?;
        if read_only {
            return Err(StoreError::ReadOnly);
        }
        Ok(())
    }

    /// Deletes expired rows, `batch` at a time per statement, until none is left. Returns
    /// how many were deleted. What goes:
    /// - codes older than ten minutes (WeChat's codes live five);
    /// - sessions past their expiry;
    /// - refresh tokens past their expiry (used ones are kept until then, for reuse detection),
    ///   and the sealed successor of a used one ten minutes after its use (the grace is over);
    /// - session families with no refresh token left (their access tokens expired long ago);
    /// - audit events older than the audit retention;
    /// - users' latest session_keys not renewed by a login for 30 days;
    /// - webhook events delivered or dead for longer than the events' retention.
    ///
    /// Every replica purges on its own timer, so two often purge at once, and a request may
    /// hold a row a purge picks (a refresh presenting an expired token, say). Each batch
    /// takes only rows no one else holds (`for update skip locked`): two purges split the work
    /// instead of queueing on each other's row locks, and a purge never waits for a row
    /// another holds, so it cannot be one side of a deadlock over rows. A row skipped is taken
    /// by a later batch or interval.
    pub async fn purge_expired(&self, batch: i64, retention: Retention) -> Result<u64, StoreError> {
        const MINUTE: i64 = 60;
        let now = self.now();
        // Each statement with the time before which its rows are gone (`$2`).
        let statements: [(&str, Timestamp); 8] = [
            (
                "delete from used_codes where (appid, code_hash) in (select appid, code_hash \
                 from used_codes where created_at < $2 limit $1 for update skip locked)",
                now.plus_secs(-10 * MINUTE),
            ),
            (
                "delete from login_sessions where id_hash in (select id_hash from login_sessions \
                 where expires_at < $2 limit $1 for update skip locked)",
                now,
            ),
            (
                "delete from refresh_tokens where token_hash in (select token_hash \
                 from refresh_tokens where expires_at < $2 limit $1 for update skip locked)",
                now,
            ),
            (
                "update refresh_tokens set successor_kid = null, successor_nonce = null, \
                 successor_sealed = null where token_hash in (select token_hash from refresh_tokens \
                 where successor_sealed is not null and used_at < $2 limit $1 \
                 for update skip locked)",
                now.plus_secs(-10 * MINUTE),
            ),
            (
                "delete from token_families where family_id in (select f.family_id \
                 from token_families f where not exists \
                 (select 1 from refresh_tokens r where r.family_id = f.family_id) \
                 and f.created_at < $2 limit $1 for update of f skip locked)",
                now.plus_secs(-MINUTE),
            ),
            (
                "delete from audit_events where event_id in (select event_id from audit_events \
                 where at < $2 limit $1 for update skip locked)",
                now.plus_secs(-retention.audit_secs),
            ),
            (
                "delete from user_session_keys where (appid, openid) in (select appid, openid \
                 from user_session_keys where obtained_at < $2 limit $1 for update skip locked)",
                now.plus_secs(-30 * 24 * 60 * MINUTE),
            ),
            (
                "delete from webhook_events where event_id in (select event_id \
                 from webhook_events where state <> 'pending' and created_at < $2 limit $1 \
                 for update skip locked)",
                now.plus_secs(-retention.events_secs),
            ),
        ];
        let mut purged = 0;
        for (statement, before) in statements {
            loop {
                let deleted = self
                    .run(async |conn| {
                        sqlx::query(statement)
                            .bind(batch)
                            .bind(before)
                            .execute(conn)
                            .await
                    })
                    .await?
                    .rows_affected();
                purged += deleted;
                if deleted < u64::try_from(batch).unwrap_or(0) {
                    break;
                }
            }
        }
        Ok(purged)
    }
}
