//! What a replica does to the database in the background: check that it answers, and delete
//! what expired.

use super::statement;
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

/// A replica's heartbeat, which follows each health ping on the same connection: this
/// replica seen at `$2`, those silent since `$4` forgotten, the others seen since `$3` counted.
pub const REPLICA_BEAT: &str = "with beat as (insert into service_replicas (replica_id, seen_at) \
       values ($1, $2) on conflict (replica_id) do update set seen_at = $2), \
     forgotten as (delete from service_replicas where seen_at < $4) \
     select count(*) from service_replicas where replica_id <> $1 and seen_at > $3";

/// How long after its last heartbeat a replica still counts as alive.
pub const REPLICA_ALIVE_SECS: i64 = 5;

impl PgStore {
    /// Records this replica's heartbeat and answers how many replicas are alive, this one
    /// included; forgets replicas silent for a minute.
    pub async fn replica_beat(&self, replica: &str) -> Result<u32, StoreError> {
        let now = self.now();
        let others: i64 = self
            .run(async |conn| {
                statement::query_scalar(REPLICA_BEAT)
                    .bind(replica)
                    .bind(now)
                    .bind(now.plus_secs(-REPLICA_ALIVE_SECS))
                    .bind(now.plus_secs(-60))
                    .fetch_one(conn)
                    .await
            })
            .await?;
        Ok(u32::try_from(others).unwrap_or(u32::MAX).saturating_add(1))
    }

    /// The size on disk of each of the service's tables, indexes and TOAST included, bytes.
    pub async fn table_sizes(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.run(async |conn| {
            statement::query_as(
                "select c.relname::text, pg_total_relation_size(c.oid) from pg_class c \
                 join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = current_schema() and c.relkind in ('r', 'p') \
                 order by 1",
            )
            .fetch_all(conn)
            .await
        })
        .await
    }

    /// Forgets this replica (it is stopping), so the others take its share at once.
    pub async fn replica_gone(&self, replica: &str) -> Result<(), StoreError> {
        self.run(async |conn| {
            statement::query("delete from service_replicas where replica_id = $1")
                .bind(replica)
                .execute(conn)
                .await
        })
        .await?;
        Ok(())
    }

    /// Whether the database answers and takes writes: every login writes, so a server that
    /// answers reads only ([`StoreError::ReadOnly`]) cannot serve one.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let read_only: bool = self
            .run(async |conn| statement::query_scalar(PING).fetch_one(conn).await)
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
                        statement::query(statement)
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
