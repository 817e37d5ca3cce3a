//! The feed of revocations committed on any replica, through Postgres `LISTEN`/`NOTIFY`, and
//! the heartbeat a replica sends itself to know the feed still flows.
//!
//! Both live on connections of their own, outside the pool: the pool is what a burst of
//! logins keeps busy, and a heartbeat stuck waiting for it would make a healthy listener look
//! dead, which sends every validation to that same busy pool.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use super::{PgStore, REVOKED_CHANNEL, StoreError};

/// What arrives on the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A session family was revoked.
    Revoked(i64),
    /// This replica's own heartbeat came back.
    Heartbeat(String),
}

/// Revocations as they are committed, on a connection of its own (outside the pool).
pub struct RevocationFeed {
    listener: PgListener,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").finish_non_exhaustive()
    }
}

/// The listener's own way to the database, for its heartbeats and reloads: one connection,
/// opened when first used, outside the pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ListenerLink {
    single: PgPool,
}

/// How long the link waits for its connection (taken by a statement of its own that did not
/// finish, or being opened) before the listener counts as failed.
const LINK_WAIT: Duration = Duration::from_secs(5);

impl PgStore {
    /// Starts listening for revocations, and for heartbeats on `heartbeat_channel` (a name of
    /// this replica's own). Whatever is committed from now on arrives through the feed; what
    /// was committed before must be read with [`ListenerLink::recently_revoked`] after this
    /// returns.
    pub async fn listen_revocations(
        &self,
        heartbeat_channel: &str,
    ) -> Result<(RevocationFeed, ListenerLink), StoreError> {
        let single = || {
            PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(LINK_WAIT)
                .connect_lazy_with(self.pool.options().clone())
        };
        let mut listener = PgListener::connect_with(&single()).await?;
        listener
            .listen_all([REVOKED_CHANNEL, heartbeat_channel])
            .await?;
        Ok((
            RevocationFeed { listener },
            ListenerLink { single: single() },
        ))
    }
}

impl ListenerLink {
    /// Sends `payload` on `channel` (a heartbeat).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("select pg_notify($1, $2)::text")
            .bind(channel)
            .bind(payload)
            .execute(&self.single)
            .await?;
        Ok(())
    }

    /// Families revoked in the last `window_secs` seconds: what a replica's cache must hold
    /// (older ones only have expired access tokens left).
    pub async fn recently_revoked(&self, window_secs: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "select family_id from token_families \
             where revoked_at > now() - make_interval(secs => $1)",
        )
        .bind(window_secs as f64)
        .fetch_all(&self.single)
        .await?)
    }

    /// Closes the connection (the listener is starting over).
    pub async fn close(&self) {
        self.single.close().await;
    }
}

impl RevocationFeed {
    /// The next notice; `None` once the connection is lost (the feed is then over: listen
    /// again, and reload).
    pub async fn next(&mut self) -> Result<Option<Notice>, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            if notification.channel() != REVOKED_CHANNEL {
                return Ok(Some(Notice::Heartbeat(notification.payload().to_owned())));
            }
            match notification.payload().parse() {
                Ok(family_id) => return Ok(Some(Notice::Revoked(family_id))),
                Err(_) => tracing::warn!("ignoring a malformed revocation notification"),
            }
        }
    }
}
