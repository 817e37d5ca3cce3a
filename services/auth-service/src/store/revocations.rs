//! The feed of revocations committed on any replica, through Postgres `LISTEN`/`NOTIFY`.

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::{PgStore, REVOKED_CHANNEL, StoreError};

/// Revocations as they are committed, on a connection of its own (outside the pool).
pub struct RevocationFeed {
    listener: PgListener,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Starts listening. Whatever is committed from now on arrives through the feed; what was
    /// committed before must be read with [`PgStore::recently_revoked`] after this returns.
    pub async fn listen_revocations(&self) -> Result<RevocationFeed, StoreError> {
        let single = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(self.pool.options().clone());
        let mut listener = PgListener::connect_with(&single).await?;
        listener.listen(REVOKED_CHANNEL).await?;
        Ok(RevocationFeed { listener })
    }
}

impl RevocationFeed {
    /// The next revoked family; `None` once the connection is lost (the feed is then over:
    /// listen again, and reload).
    pub async fn next(&mut self) -> Result<Option<i64>, StoreError> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            match notification.payload().parse() {
                Ok(family_id) => return Ok(Some(family_id)),
                Err(_) => tracing::warn!("ignoring a malformed revocation notification"),
            }
        }
    }
}
