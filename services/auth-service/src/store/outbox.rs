//! The outbox of webhook events. A change writes its events in its own statement (a `with`
//! clause from [`outbox_cte`]) or transaction, so an event exists exactly when its change
//! committed; replicas then claim and deliver them. Per user, only the oldest pending event
//! of a subscription may be claimed, which keeps each user's events in order.

use sqlx::{
    Postgres, Row as _,
    postgres::{PgArguments, PgConnection},
    query::Query,
};

use super::statement;
use super::{PgStore, StoreError};
use crate::{
    clock::Timestamp,
    domain::events::{EventKind, Wanted},
};

/// A `with` clause named `name` writing one event per row of `source` (a from-item aliased
/// `x`, with the columns `appid`, `user_id`, `account_id`, `openid` and `unionid`) and per
/// wanted (subscription, kind) pair of its app, the pairs bound at `$p`..`$p+3` (see
/// [`bind_wanted`]) and unnested as `s` (`s.name`, `s.kind`, `s.pii`). `filter` (over `x`
/// and `s`) picks the pairs that apply; `data` adds `'key', value` pairs to the payload's
/// `data`. Stamped with `now` (a parameter). Nothing is written when no pair is bound.
pub(super) fn outbox_cte(
    name: &str,
    source: &str,
    p: usize,
    now: &str,
    filter: &str,
    data: &str,
) -> String {
    let (names, appids, kinds, pii) = (p, p + 1, p + 2, p + 3);
    let data = if data.is_empty() {
        String::new()
    } else {
        format!(", {data}")
    };
    format!(
        "{name} as (insert into webhook_events (subscription, appid, user_id, kind, payload, \
           created_at, window_start, next_attempt_at) \
         select s.name, x.appid, x.user_id, s.kind, \
           json_build_object('type', s.kind, \
             'timestamp', to_char({now} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
             'data', json_strip_nulls(json_build_object('user_id', x.user_id::text, \
               'account_id', x.account_id::text, 'appid', x.appid, 'openid', x.openid, \
               'unionid', x.unionid{data})))::text, \
           {now}, {now}, {now} \
         from {source} \
         join unnest(${names}::text[], ${appids}::text[], ${kinds}::text[], ${pii}::bool[]) \
           with ordinality as s(name, appid, kind, pii, n) on s.appid = x.appid \
         where {filter} \
         order by x.user_id, s.n)"
    )
}

/// Binds the pairs of an [`outbox_cte`] (the next four parameters).
pub(super) fn bind_wanted<'q>(
    query: Query<'q, Postgres, PgArguments>,
    wanted: &'q Wanted,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(&wanted.names)
        .bind(&wanted.appids)
        .bind(&wanted.kinds)
        .bind(&wanted.pii)
}

/// Writes `kind` for each user of `ids`, in the transaction; `data` as in [`outbox_cte`],
/// with `$3` and `$4` free for it (bound by `extra`).
pub(super) async fn record_for_users(
    tx: &mut PgConnection,
    wanted: &Wanted,
    ids: &[i64],
    now: Timestamp,
    data: &str,
    extra: (Option<&str>, Option<Timestamp>),
) -> Result<(), sqlx::Error> {
    if wanted.names.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "with {} select 1",
        outbox_cte("ev", "users x", 5, "$2", "x.user_id = any($1)", data)
    );
    bind_wanted(
        statement::query(&sql)
            .bind(ids)
            .bind(now)
            .bind(extra.0)
            .bind(extra.1),
        wanted,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An event claimed for delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id (the `webhook-id` is made of it).
    pub event_id: i64,
    /// The subscription it goes to.
    pub subscription: String,
    /// The body.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When its retry window started.
    pub window_start: Timestamp,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The receiver took it.
    Delivered,
    /// It failed; try again then.
    RetryAt(Timestamp),
    /// It failed for the last time.
    Dead,
}

/// The state of the queue, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Seconds since the oldest pending event entered the queue (0: none pending).
    pub oldest_secs: i64,
    /// Events pending.
    pub pending: i64,
    /// Dead events (waiting for a replay or the purge).
    pub dead: i64,
}

impl PgStore {
    /// Who hears of `kinds`, for a statement to write their events.
    pub(super) fn wanting(&self, kinds: &[EventKind]) -> Wanted {
        self.subscribers.wanting(kinds)
    }

    /// Claims up to `limit` due events of `subscriptions` until `lease_until`: per user and
    /// subscription only the oldest pending one, and none another replica holds.
    pub async fn claim_events(
        &self,
        subscriptions: &[String],
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = self.now();
        let rows = self
            .run(async |conn| {
                statement::query(
                    "with due as (select e.event_id from webhook_events e \
                       where e.state = 'pending' and e.subscription = any($1) \
                       and e.next_attempt_at <= $2 \
                       and (e.claimed_until is null or e.claimed_until <= $2) \
                       and not exists (select 1 from webhook_events p \
                         where p.state = 'pending' and p.subscription = e.subscription \
                         and p.user_id = e.user_id and p.event_id < e.event_id) \
                       order by e.event_id limit $4 for update skip locked) \
                     update webhook_events w set claimed_until = $3, attempts = w.attempts + 1 \
                     from due where w.event_id = due.event_id \
                     returning w.event_id, w.subscription, w.payload, w.attempts, w.window_start",
                )
                .bind(subscriptions)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(conn)
                .await
            })
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    event_id: row.try_get("event_id")?,
                    subscription: row.try_get("subscription")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                    window_start: row.try_get("window_start")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|event| event.event_id);
        Ok(claimed)
    }

    /// Records how an attempt at `event_id` ended (`outcome`: a status code or what failed,
    /// for operators), and releases the claim.
    pub async fn settle_event(
        &self,
        event_id: i64,
        settled: Settled,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let (state, next) = match settled {
            Settled::Delivered => ("delivered", None),
            Settled::RetryAt(at) => ("pending", Some(at)),
            Settled::Dead => ("dead", None),
        };
        self.run(async |conn| {
            statement::query(
                "update webhook_events set state = $2, \
                   next_attempt_at = coalesce($3, next_attempt_at), claimed_until = null, \
                   last_outcome = $4, delivered_at = case when $2 = 'delivered' then $5 end \
                 where event_id = $1 and state = 'pending'",
            )
            .bind(event_id)
            .bind(state)
            .bind(next)
            .bind(outcome)
            .bind(now)
            .execute(conn)
            .await
        })
        .await?;
        Ok(())
    }

    /// Sends dead events again: those of `subscriptions`, only `event_ids` when some are
    /// named. Their retry window starts again now. Returns how many.
    pub async fn replay_events(
        &self,
        subscriptions: &[String],
        event_ids: &[i64],
    ) -> Result<u64, StoreError> {
        let now = self.now();
        let done = self
            .run(async |conn| {
                statement::query(
                    "update webhook_events set state = 'pending', attempts = 0, \
                       window_start = $3, next_attempt_at = $3, claimed_until = null \
                     where state = 'dead' and subscription = any($1) \
                     and (cardinality($2::bigint[]) = 0 or event_id = any($2))",
                )
                .bind(subscriptions)
                .bind(event_ids)
                .bind(now)
                .execute(conn)
                .await
            })
            .await?;
        Ok(done.rows_affected())
    }

    /// How far behind the deliveries are.
    pub async fn event_backlog(&self) -> Result<Backlog, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                statement::query(
                    "select coalesce(extract(epoch from $1 - (select min(created_at) \
                       from webhook_events where state = 'pending'))::bigint, 0) as oldest, \
                     (select count(*) from webhook_events where state = 'pending') as pending, \
                     (select count(*) from webhook_events where state = 'dead') as dead",
                )
                .bind(now)
                .fetch_one(conn)
                .await
            })
            .await?;
        Ok(Backlog {
            oldest_secs: row.try_get::<i64, _>("oldest")?.max(0),
            pending: row.try_get("pending")?,
            dead: row.try_get("dead")?,
        })
    }
}
