//! The schema at start: migrated by the service itself, waited for (a job migrates it under
//! a role that may change it), or migrated by that job, which then exits.

use std::{sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    clock::{SharedClock, SystemClock},
    start_error::StartError,
    store::PgStore,
};

/// How often a replica that does not migrate looks whether the migrations job has.
const MIGRATIONS_POLL: Duration = Duration::from_secs(2);

/// Applies the migrations (warning when a newer release's are there already).
pub(crate) async fn migrate(store: &PgStore) -> Result<(), StartError> {
    if let Some(newer) = store.migrate().await.map_err(StartError::Migrate)? {
        warn!(
            newest_migration = newer,
            "the database schema is newer than this build (a newer release migrated it): \
             running on it, as migrations only ever add"
        );
    }
    Ok(())
}

/// Waits until every migration of this build is applied (by the migrations job, under a
/// role that may change the schema), checking every two seconds.
pub(crate) async fn wait_for_migrations(store: &PgStore) -> Result<(), StartError> {
    let mut said = false;
    loop {
        let pending = store
            .pending_migrations()
            .await
            .map_err(StartError::Database)?;
        if pending.is_empty() {
            return Ok(());
        }
        if !said {
            info!(
                ?pending,
                "WXAUTH_MIGRATIONS=skip: waiting for the migrations job to apply migrations"
            );
            said = true;
        }
        tokio::time::sleep(MIGRATIONS_POLL).await;
    }
}

/// Applies the migrations and returns: the migrations job (`WXAUTH_MIGRATIONS=only`), which
/// needs nothing but the database's URL (`direct` when the other goes through a pooler).
pub async fn migrate_only(
    database_url: &str,
    direct: Option<&str>,
    statement_timeout: Duration,
) -> Result<(), StartError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let store = match direct {
        Some(direct) => {
            PgStore::connect_lazy_pooled(database_url, direct, 1, statement_timeout, clock)
        }
        None => PgStore::connect_lazy(database_url, 1, statement_timeout, clock),
    }
    .map_err(|_| StartError::DatabaseUrl)?;
    store.ping().await.map_err(StartError::Database)?;
    migrate(&store).await?;
    info!("migrations applied");
    store.close();
    Ok(())
}
