//! The audit trail: events written in the statement of what they record (a login, a
//! rotation, a revocation), or in batches for refusals; read back per user.

use sqlx::{Row as _, postgres::PgConnection};

use super::{PgStore, StoreError};
use crate::{
    clock::Timestamp,
    domain::{AuditEvent, NewAuditEvent},
};

/// The columns an audit insert fills from a call's context, as `$n` parameters in a `with`
/// clause: see [`context_params`].
pub(super) const AUDIT_INSERT: &str = "insert into audit_events (at, kind, outcome, appid, user_id, openid_digest, family_id, actor, client_addr, request_id)";

/// Writes one event that happened at `at` on `conn` (inside the caller's transaction).
pub(super) async fn record(
    conn: &mut PgConnection,
    event: &NewAuditEvent,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "{AUDIT_INSERT} values ($10, $1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(event.kind.name())
    .bind(&event.outcome)
    .bind(&event.appid)
    .bind(event.user_id)
    .bind(&event.openid_digest)
    .bind(event.family_id)
    .bind(&event.context.caller)
    .bind(&event.context.client_addr)
    .bind(&event.context.request_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

impl PgStore {
    /// Writes several events in one statement (refusals, batched off the request path).
    pub async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&NewAuditEvent) -> Option<String>| -> Vec<Option<String>> {
            events.iter().map(f).collect()
        };
        let kinds = column(|e| Some(e.kind.name().to_owned()));
        let outcomes = column(|e| Some(e.outcome.clone()));
        let appids = column(|e| e.appid.clone());
        let actors = column(|e| e.context.caller.clone());
        let addrs = column(|e| e.context.client_addr.clone());
        let request_ids = column(|e| Some(e.context.request_id.clone()));
        let users: Vec<Option<i64>> = events.iter().map(|e| e.user_id).collect();
        let families: Vec<Option<i64>> = events.iter().map(|e| e.family_id).collect();
        let digests: Vec<Option<Vec<u8>>> =
            events.iter().map(|e| e.openid_digest.clone()).collect();
        let now = self.now();
        self.run(async |conn| {
            sqlx::query(&format!(
                "{AUDIT_INSERT} select $10, * from unnest($1::text[], $2::text[], $3::text[], \
                 $4::bigint[], $5::bytea[], $6::bigint[], $7::text[], $8::text[], $9::text[])"
            ))
            .bind(&kinds)
            .bind(&outcomes)
            .bind(&appids)
            .bind(&users)
            .bind(&digests)
            .bind(&families)
            .bind(&actors)
            .bind(&addrs)
            .bind(&request_ids)
            .bind(now)
            .execute(conn)
            .await
        })
        .await?;
        Ok(())
    }

    /// A user's events, newest first: at most `limit`, older than event `before` when given.
    pub async fn audit_events_of(
        &self,
        user_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self
            .run(async |conn| {
                sqlx::query(
                    "select event_id, extract(epoch from at)::bigint as at, kind, outcome, appid, \
                       user_id, family_id, actor, client_addr, request_id \
                     from audit_events where user_id = $1 and event_id < $2 \
                     order by event_id desc limit $3",
                )
                .bind(user_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    id: row.try_get("event_id")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    outcome: row.try_get("outcome")?,
                    appid: row.try_get("appid")?,
                    user_id: row.try_get("user_id")?,
                    family_id: row.try_get("family_id")?,
                    actor: row.try_get("actor")?,
                    client_addr: row.try_get("client_addr")?,
                    request_id: row.try_get("request_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
