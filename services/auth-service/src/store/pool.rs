//! The pool of Postgres connections the store runs its statements on.
//!
//! sqlx's own pool pings a connection every time one is returned (and, by default, every time
//! one is taken): a full round trip to the server around every statement, which doubled the
//! database work of a login. This pool (deadpool over plain sqlx connections) hands a
//! connection in steady use out as it is, and pings only one that sat idle long enough for a
//! restart or a NAT to have killed it.
//!
//! A connection whose statement was cut short (the caller's future dropped mid-way, or the
//! socket failed) is not put back: it is closed, so the server ends whatever it was doing and
//! the next caller never inherits a half-read answer or an open transaction. Nor is one
//! handed back with a transaction still open: begun and not ended, or ended only by a
//! rollback sqlx queued when the transaction was dropped and sends with the connection's next
//! statement. Kept, such a connection sits `idle in transaction` in the pool, holding its
//! row locks until someone happens to use it; closed, the server rolls back and frees them
//! at once. Every path of the store ends its transactions itself; this is the guard for the
//! one that forgets.

use std::time::Duration;

use deadpool::managed::{self, Object, PoolError, RecycleResult};
use sqlx::{
    Connection as _,
    postgres::{PgConnectOptions, PgConnection},
};

/// A connection idle for longer than this is pinged before it is handed out.
const PING_IDLE_AFTER: Duration = Duration::from_secs(10);
/// How long a caller waits for a free connection before the database counts as unavailable.
const WAIT: Duration = Duration::from_secs(5);

/// Opens connections and checks idle ones.
#[derive(Debug)]
pub struct Connector {
    options: PgConnectOptions,
}

impl managed::Manager for Connector {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &managed::Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() >= PING_IDLE_AFTER {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolFailure {
    /// Every connection stayed busy for the whole wait.
    #[error("no database connection became free in time")]
    Busy,
    /// A new connection was not open in time.
    #[error("the database did not accept a connection in time")]
    ConnectTimeout,
    /// A new connection could not be opened.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// The pool is closed (shutting down).
    #[error("the connection pool is closed")]
    Closed,
}

/// The pool; cheap to clone.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: managed::Pool<Connector>,
    options: PgConnectOptions,
}

impl Pool {
    /// A pool of at most `max` connections to `options`, opened as they are needed.
    pub fn new(options: PgConnectOptions, max: usize) -> Self {
        // Building only fails without a runtime or with a zero size, both ruled out here.
        #[allow(clippy::expect_used)]
        let inner = managed::Pool::builder(Connector {
            options: options.clone(),
        })
        .max_size(max.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .recycle_timeout(Some(WAIT))
        .build()
        .expect("a sized pool on the tokio runtime");
        Self { inner, options }
    }

    /// The connection settings, for connections kept outside the pool (the listener).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A connection for one unit of work.
    pub async fn lease(&self) -> Result<Lease, PoolFailure> {
        match self.inner.get().await {
            Ok(conn) => Ok(Lease(Some(conn))),
            Err(PoolError::Timeout(deadpool::managed::TimeoutType::Create)) => {
                Err(PoolFailure::ConnectTimeout)
            }
            Err(PoolError::Timeout(_)) => Err(PoolFailure::Busy),
            Err(PoolError::Backend(err)) => Err(PoolFailure::Connect(err)),
            Err(
                PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_),
            ) => Err(PoolFailure::Closed),
        }
    }

    /// Connections open now, and how many of them are idle.
    pub fn status(&self) -> (usize, usize) {
        let status = self.inner.status();
        (status.size, status.available)
    }

    /// Closes every idle connection, and returns how many there were: the database was found
    /// unreachable, and a restart or a failover ends every connection, so each may be dead and
    /// would fail the request it is handed to next.
    pub fn drop_idle(&self) -> usize {
        self.inner.retain(|_, _| false).removed.len()
    }

    /// How many callers are waiting for a connection now (every one is leased).
    pub fn waiting(&self) -> usize {
        self.inner.status().waiting
    }

    /// Stops handing out connections and closes the idle ones.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// A connection taken from the pool. Hand it back with [`Lease::finish`]; dropped any other
/// way (a cancelled request), the connection is closed instead of reused.
#[derive(Debug)]
pub struct Lease(Option<Object<Connector>>);

impl Lease {
    /// The connection, to run statements on.
    pub fn conn(&mut self) -> &mut PgConnection {
        // `Some` from creation until `finish` or drop consumes the lease.
        #[allow(clippy::expect_used)]
        self.0.as_mut().expect("a live lease holds its connection")
    }

    /// Ends the unit of work: the connection goes back to the pool unless `result` says the
    /// connection itself failed.
    pub fn finish<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Some(conn) = self.0.take() {
            let failed = matches!(
                &result,
                Err(sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_))
            );
            if failed {
                drop(Object::take(conn));
            } else if left_in_transaction(&conn) {
                tracing::warn!(
                    "a database connection came back with a transaction open; closed instead of reused"
                );
                drop(Object::take(conn));
            } else {
                drop(conn);
            }
        }
        result
    }
}

/// Whether `conn` still has a transaction: one begun and not ended, or one whose rollback is
/// only queued (a dropped `sqlx::Transaction` queues it, and it is sent with the next
/// statement, so until then the server holds the transaction open).
fn left_in_transaction(conn: &PgConnection) -> bool {
    conn.is_in_transaction() || conn.should_flush()
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Not finished: the statement may be half done. Detach and close it.
            drop(Object::take(conn));
        }
    }
}
