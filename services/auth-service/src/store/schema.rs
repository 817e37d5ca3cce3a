//! The schema: the embedded migrations applied (on a direct connection when the pool goes
//! through a pooler: the migrator takes a session's advisory lock), and which are pending.

use sqlx::postgres::PgConnection;

use super::{MIGRATOR, PgStore, StoreError, statement};

impl PgStore {
    /// Applies the embedded migrations, without the statement timeout or the bound of
    /// [`Self::run`]: a migration may rewrite a large table. Returns the newest migration
    /// applied by a newer release, when there is one (see [`MIGRATOR`]).
    pub async fn migrate(&self) -> Result<Option<i64>, StoreError> {
        if let Some(direct) = &self.direct {
            // The migrator's advisory lock and `set` need a session: not through a pooler.
            let mut conn = sqlx::Connection::connect_with(direct).await?;
            let result = migrate_on(&mut conn).await;
            let _ = sqlx::Connection::close(conn).await;
            return Ok(result?);
        }
        let mut lease = self.pool.lease().await?;
        let result = migrate_on(lease.conn()).await;
        Ok(lease.finish(result)?)
    }

    /// The migrations of this build not applied to the database yet.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let applied: Vec<i64> = self
            .run(async |conn| {
                // Before any migration the table does not exist: nothing is applied.
                let exists: bool =
                    statement::query_scalar("select to_regclass('_sqlx_migrations') is not null")
                        .fetch_one(&mut *conn)
                        .await?;
                if !exists {
                    return Ok(Vec::new());
                }
                statement::query_scalar("select version from _sqlx_migrations where success")
                    .fetch_all(&mut *conn)
                    .await
            })
            .await?;
        Ok(MIGRATOR
            .iter()
            .map(|migration| migration.version)
            .filter(|version| !applied.contains(version))
            .collect())
    }
}

/// Applies the embedded migrations on `conn`, without the statement timeout (a migration may
/// rewrite a large table); returns the newest migration a newer release applied, if any.
async fn migrate_on(conn: &mut PgConnection) -> Result<Option<i64>, sqlx::Error> {
    statement::query("set statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let migrated = MIGRATOR.run(&mut *conn).await.map_err(|err| match err {
        sqlx::migrate::MigrateError::Execute(err) => err,
        other => sqlx::Error::Migrate(Box::new(other)),
    });
    statement::query("reset statement_timeout")
        .execute(&mut *conn)
        .await?;
    migrated?;
    let newest: Option<i64> =
        statement::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(&mut *conn)
            .await?;
    let known = MIGRATOR.iter().map(|migration| migration.version).max();
    Ok(newest.filter(|&newest| Some(newest) > known))
}
