//! What a replica does to the database in the background: check that it answers, and delete
//! what expired.

use super::statement;
use super::{PgStore, StoreError};
use crate::clock::Timestamp;
use sqlx::Row as _;

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
    /// - with its last refresh token, the session family (its access tokens expired long ago);
    /// - audit events older than the audit retention;
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
        let statements: [(&str, Timestamp); 6] = [
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
                // A family goes with its last refresh token, found through the tokens going
                // (by the family's key), never by looking through every family for one with
                // no token left: that is a scan of two of the largest tables per batch. The
                // check for tokens left sees the table as before this statement, so it
                // ignores the ones going.
                "with doomed as (select token_hash, family_id from refresh_tokens \
                   where expires_at < $2 limit $1 for update skip locked), \
                 emptied as (delete from token_families where family_id in \
                   (select f.family_id from token_families f \
                    where f.family_id in (select family_id from doomed) \
                    and not exists (select 1 from refresh_tokens r where r.family_id = f.family_id \
                      and not exists (select 1 from doomed d where d.token_hash = r.token_hash)) \
                    for update of f skip locked)) \
                 delete from refresh_tokens where token_hash in (select token_hash from doomed)",
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
                // The oldest events by id, of which those past the retention: ids follow
                // time, so this reads the first few hundred entries of the primary key,
                // whether or not any is old enough. Asked for "any event older than", the
                // planner scans the table from its start, over the rows earlier batches
                // deleted: 72 s for 333,000 events of 20 million, against 3 s this way.
                "delete from audit_events where event_id in (select event_id from audit_events \
                 order by event_id limit $1 for update skip locked) and at < $2",
                now.plus_secs(-retention.audit_secs),
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

    /// Deletes the users' latest session_keys not renewed by a login for 30 days, walking
    /// the table in key order from where `walk` stands, `batch` keys at a time, at most
    /// `batches` times; `walk` starts again at the beginning once the end is reached.
    /// Returns how many were deleted.
    ///
    /// A walk and not an index on the time of the last login: that time changes on every
    /// login, and an index on it would make every login's update of the row touch two
    /// indexes instead of none (a HOT update). A whole walk of ten million keys takes 200
    /// intervals, so a key outlives its 30 days by at most about 17 hours at the default
    /// interval.
    pub async fn purge_kept_keys(
        &self,
        walk: &mut KeyWalk,
        batch: i64,
        batches: usize,
    ) -> Result<u64, StoreError> {
        let before = self.now().plus_secs(-KEPT_KEY_SECS);
        let mut purged = 0;
        for _ in 0..batches {
            let row = self
                .run(async |conn| {
                    statement::query(KEPT_KEYS_WALK)
                        .bind(batch)
                        .bind(before)
                        .bind(&walk.appid)
                        .bind(&walk.openid)
                        .fetch_one(conn)
                        .await
                })
                .await?;
            purged += u64::try_from(row.try_get::<i64, _>("deleted")?).unwrap_or(0);
            let seen: i64 = row.try_get("seen")?;
            match (
                row.try_get::<Option<String>, _>("last_appid")?,
                row.try_get::<Option<String>, _>("last_openid")?,
            ) {
                (Some(appid), Some(openid)) if seen >= batch => {
                    walk.appid = appid;
                    walk.openid = openid;
                }
                _ => {
                    *walk = KeyWalk::default();
                    break;
                }
            }
        }
        Ok(purged)
    }
}

/// How long a user's latest session_key is kept after the login that brought it.
const KEPT_KEY_SECS: i64 = 30 * 24 * 3600;

/// One step of the walk through `user_session_keys`: the `$1` keys after (`$3`, `$4`) in key
/// order (the primary key's index gives them in order), and of those, the ones older than
/// `$2` that no one holds, deleted.
const KEPT_KEYS_WALK: &str = "with slice as (select appid, openid, obtained_at \
       from user_session_keys where (appid, openid) > ($3, $4) order by appid, openid limit $1), \
     gone as (delete from user_session_keys where (appid, openid) in \
       (select k.appid, k.openid from user_session_keys k join slice s using (appid, openid) \
        where s.obtained_at < $2 for update of k skip locked) returning 1) \
     select (select count(*) from gone) as deleted, (select count(*) from slice) as seen, \
       (select appid from slice order by appid desc, openid desc limit 1) as last_appid, \
       (select openid from slice order by appid desc, openid desc limit 1) as last_openid";

/// Where a walk through the kept session_keys stands: the last key looked at (empty: the
/// start). Each replica walks on its own.
#[derive(Debug, Clone, Default)]
pub struct KeyWalk {
    appid: String,
    openid: String,
}
