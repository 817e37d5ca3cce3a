//! The audit trail: a change's event written in the statement or transaction of the change
//! (a login, a rotation, a revocation, a profile or phone update), the tallies of refusals and
//! reads written and then counted up, and listings.

use sqlx::{QueryBuilder, Row as _, postgres::PgConnection};

use super::statement;
use super::{PgStore, StoreError};
use crate::{
    clock::Timestamp,
    domain::{AuditEvent, AuditFilter, NewAuditEvent},
};

/// The columns an audit insert fills from a call's context, as `$n` parameters in a `with`
/// clause of the statement that makes the change.
pub(super) const AUDIT_INSERT: &str = "insert into audit_events (at, kind, outcome, appid, user_id, openid_digest, family_id, actor, client_addr, request_id, client_request_id)";

/// Writes one event that happened at `at` on `conn` (inside the caller's transaction).
pub(super) async fn record(
    conn: &mut PgConnection,
    event: &NewAuditEvent,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    statement::query(
        "insert into audit_events (at, kind, outcome, appid, user_id, openid_digest, family_id, \
           account_id, actor, client_addr, request_id, client_request_id) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(at)
    .bind(event.kind.name())
    .bind(&event.outcome)
    .bind(&event.appid)
    .bind(event.user_id)
    .bind(&event.openid_digest)
    .bind(event.family_id)
    .bind(event.account_id)
    .bind(&event.context.caller)
    .bind(&event.context.client_addr)
    .bind(&event.context.request_id)
    .bind(&event.context.client_request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A tally to write: events that differ only in their time, `count` of them, the first at
/// `at`.
#[derive(Debug, Clone)]
pub struct NewTally {
    /// The first event.
    pub event: NewAuditEvent,
    /// When the first happened.
    pub at: Timestamp,
    /// How many it stands for so far.
    pub count: i64,
}

impl PgStore {
    /// Writes new tallies in one statement; returns the event id of each, in order.
    pub async fn insert_tallies(&self, tallies: &[NewTally]) -> Result<Vec<i64>, StoreError> {
        if tallies.is_empty() {
            return Ok(Vec::new());
        }
        let text = |f: fn(&NewTally) -> Option<String>| -> Vec<Option<String>> {
            tallies.iter().map(f).collect()
        };
        let number = |f: fn(&NewTally) -> Option<i64>| -> Vec<Option<i64>> {
            tallies.iter().map(f).collect()
        };
        let ats: Vec<Timestamp> = tallies.iter().map(|t| t.at).collect();
        let kinds = text(|t| Some(t.event.kind.name().to_owned()));
        let outcomes = text(|t| Some(t.event.outcome.clone()));
        let appids = text(|t| t.event.appid.clone());
        let users = number(|t| t.event.user_id);
        let digests: Vec<Option<Vec<u8>>> = tallies
            .iter()
            .map(|t| t.event.openid_digest.clone())
            .collect();
        let families = number(|t| t.event.family_id);
        let accounts = number(|t| t.event.account_id);
        let actors = text(|t| t.event.context.caller.clone());
        let addrs = text(|t| t.event.context.client_addr.clone());
        let request_ids = text(|t| Some(t.event.context.request_id.clone()));
        let client_ids = text(|t| t.event.context.client_request_id.clone());
        let counts = number(|t| Some(t.count));
        let rows = self
            .run(async |conn| {
                statement::query(
                    "insert into audit_events (at, kind, outcome, appid, user_id, openid_digest, \
                       family_id, account_id, actor, client_addr, request_id, client_request_id, \
                       count) \
                     select at, kind, outcome, appid, user_id, openid_digest, family_id, \
                       account_id, actor, \
                       case when erased then null else client_addr end, request_id, \
                       case when erased then null else client_request_id end, count \
                     from (select *, exists (select 1 from users d \
                         where d.user_id = t.user_id and d.status = 'deleted') as erased \
                       from unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], \
                       $5::bigint[], $6::bytea[], $7::bigint[], $8::bigint[], $9::text[], \
                       $10::text[], $11::text[], $12::text[], $13::bigint[]) with ordinality \
                       as t(at, kind, outcome, appid, user_id, openid_digest, family_id, \
                         account_id, actor, client_addr, request_id, client_request_id, count, n) \
                     ) as t \
                     order by n \
                     returning event_id",
                )
                .bind(&ats)
                .bind(&kinds)
                .bind(&outcomes)
                .bind(&appids)
                .bind(&users)
                .bind(&digests)
                .bind(&families)
                .bind(&accounts)
                .bind(&actors)
                .bind(&addrs)
                .bind(&request_ids)
                .bind(&client_ids)
                .bind(&counts)
                .fetch_all(conn)
                .await
            })
            .await?;
        // Identity values are drawn in the order the rows are inserted, which `order by n`
        // fixes: sorting the ids gives them in the tallies' order.
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("event_id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Adds `more[i]` to the count of event `ids[i]` (a tally already written).
    pub async fn count_up_tallies(&self, ids: &[i64], more: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(async |conn| {
            statement::query(
                "update audit_events a set count = a.count + u.more \
                 from unnest($1::bigint[], $2::bigint[]) as u(event_id, more) \
                 where a.event_id = u.event_id",
            )
            .bind(ids)
            .bind(more)
            .execute(conn)
            .await
        })
        .await?;
        Ok(())
    }

    /// Events, newest first, as `filter` selects them.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let kinds: Vec<&str> = filter.kinds.iter().map(|kind| kind.name()).collect();
        let rows = self
            .run(async |conn| {
                let mut query = QueryBuilder::new(
                    "select event_id, extract(epoch from at)::bigint as at, kind, outcome, appid, \
                       user_id, family_id, account_id, actor, client_addr, request_id, \
                       client_request_id, count \
                     from audit_events where event_id < ",
                );
                query.push_bind(filter.before.unwrap_or(i64::MAX));
                if let Some(user_id) = filter.user_id {
                    query.push(" and user_id = ").push_bind(user_id);
                }
                if !kinds.is_empty() {
                    query.push(" and kind = any(").push_bind(&kinds).push(")");
                }
                if let Some(apps) = &filter.apps {
                    query.push(" and appid = any(").push_bind(apps).push(")");
                }
                if let Some(since) = filter.since {
                    query.push(" and at >= ").push_bind(since);
                }
                if let Some(until) = filter.until {
                    query.push(" and at < ").push_bind(until);
                }
                query
                    .push(" order by event_id desc limit ")
                    .push_bind(filter.limit);
                query.build().fetch_all(conn).await
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
                    client_request_id: row.try_get("client_request_id")?,
                    account_id: row.try_get("account_id")?,
                    count: row.try_get("count")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A user's events, newest first: at most `limit`, older than event `before` when given.
    pub async fn audit_events_of(
        &self,
        user_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_events(&AuditFilter {
            user_id: Some(user_id),
            before,
            limit,
            ..AuditFilter::default()
        })
        .await
    }
}
