//! The feed of revocations committed on any replica, through Postgres `LISTEN`/`NOTIFY`, and
//! the heartbeat a replica sends itself on the same connection to know the feed still flows.

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::statement;
use super::{PgStore, REVOKED_CHANNEL, StoreError};

/// What arrives on the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A session family was revoked.
    Revoked(i64),
    /// This replica's own heartbeat came back.
    Heartbeat(String),
}

/// Revocations as they are committed, on a connection of its own (outside the pool, and
/// direct when the pool goes through a pooler: `LISTEN` needs a session).
pub struct RevocationFeed {
    listener: PgListener,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Starts listening for revocations, and for heartbeats on `heartbeat_channel` (a name of
    /// this replica's own). Whatever is committed from now on arrives through the feed; what
    /// was committed before must be read with [`PgStore::recently_revoked`] after this returns.
    pub async fn listen_revocations(
        &self,
        heartbeat_channel: &str,
    ) -> Result<RevocationFeed, StoreError> {
        let single = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.session_options().clone());
        let mut listener = PgListener::connect_with(&single).await?;
        listener
            .listen_all([REVOKED_CHANNEL, heartbeat_channel])
            .await?;
        Ok(RevocationFeed { listener })
    }

    /// Sends `payload` on `channel` (a heartbeat), through the pool.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.run(async |conn| {
            statement::query("select pg_notify($1, $2)::text")
                .bind(channel)
                .bind(payload)
                .execute(conn)
                .await
        })
        .await?;
        Ok(())
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
