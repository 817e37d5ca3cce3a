//! Postgres: the only place SQL and sqlx live. Runtime queries (no build-time database
//! needed), each covered by tests against a real server.
//!
//! Every write that a client is told succeeded is one statement (data-modifying `with`
//! clauses where several tables change together) or one transaction, committed before the
//! caller answers. Split by what is stored:
//! - [`audit`]: the audit trail;
//! - [`codes`]: `wx.login()` codes already sent to WeChat;
//! - [`login_sessions`]: login sessions and their sealed session_keys;
//! - [`session_keys`]: each user's latest session_key (WeChat's session);
//! - [`logins`]: a login written: the user, their account, the token family it starts;
//! - [`users`]: how a row becomes a user, lookups, a user's own changes;
//! - [`phones`]: phone numbers sealed at rest, their blind index, and their re-seal;
//! - [`lifecycle`]: suspension, deletion, restoring; [`erasure`]: what each does to a user's
//!   rows, and what a deletion leaves; [`gate`]: whether a user may log in, in SQL;
//! - [`find`]: finding users, and what an export reads besides the user;
//! - [`families`]: token families and revocation; `rotating`: a refresh token's rotation;
//! - [`revocations`]: the feed of revocations from every replica;
//! - [`outbox`]: webhook events, written with their change, claimed and settled by the
//!   delivery;
//! - [`app_tokens`]: each app's WeChat access_token and the lock of its refresh;
//! - [`upkeep`]: health pings and purging what expired;
//! - [`pool`]: the connections all of it runs on; `statement`: how statements are prepared
//!   (kept, or unnamed through a pooler); `time`: the clock's time in SQL.

pub mod app_tokens;
pub mod audit;
pub mod codes;
pub mod erasure;
pub mod families;
pub mod find;
pub mod gate;
pub mod lifecycle;
pub mod login_sessions;
pub mod logins;
pub mod outbox;
pub mod phones;
pub mod pool;
pub mod revocations;
mod rotating;
mod schema;
pub mod session_keys;
mod statement;
mod time;
pub mod upkeep;
pub mod users;

use std::{sync::LazyLock, time::Duration};

use sqlx::{migrate::Migrator, postgres::PgConnection};

use crate::clock::{SharedClock, Timestamp};

pub use erasure::Target;
pub use families::{NewRefresh, REVOKED_CHANNEL, RefreshOutcome, Rotation};
pub use find::{Found, Search};
pub use lifecycle::{Erased, Refused};
pub use login_sessions::NewSession;
pub use logins::{Completion, IssuedLogin, LoginWrite};
pub use outbox::{Backlog, Claimed, Settled};
pub use phones::PhoneVault;
pub use pool::{Pool, PoolFailure};
pub use revocations::{Notice, RevocationFeed};

/// The embedded migrations, applied at start-up (sqlx takes an advisory lock, so replicas
/// starting together do not race).
///
/// Migrations of a newer release found applied are not an error: they are additive (this
/// project's rule), so this build runs on the newer schema. Without that, a rollback, or a
/// replica of the old release restarting in the middle of a rollout, could not start.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
});

/// A storage failure. Its `Display` may name tables and Postgres codes, never values: it is
/// for the logs, and the transport never sends it to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// No connection could be had.
    #[error("database unavailable")]
    Pool(#[from] PoolFailure),
    /// A unit of work had no answer long after the server would have ended it: the
    /// database, or the network to it, is silent.
    #[error("the database did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The server answers but takes no writes: a standby (the old primary after a
    /// failover), or a server set read-only (as managed databases do when the disk fills).
    #[error("the database accepts no writes (a standby, or set read-only)")]
    ReadOnly,
    /// A write decided on rows that kept changing under it (concurrent logins of one
    /// person), and was decided again as often as allowed.
    #[error("the rows a write was decided on kept changing")]
    Contended,
    /// A phone number was to be stored, and the store was given no key ring to seal it with.
    #[error("no key ring to seal phone numbers with")]
    NoKeys,
    /// Sealing failed (the OS random source); names no key and no value.
    #[error("sealing failed: {0}")]
    Seal(String),
}

impl StoreError {
    /// Whether the database could not be reached or could not do the work just now (as
    /// opposed to refusing a statement): the caller should retry later, and the answer is
    /// "unavailable", not "internal".
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::NoAnswer(_) | Self::ReadOnly | Self::Contended => true,
            Self::NoKeys | Self::Seal(_) => false,
            Self::Database(err) => match err {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_) => true,
                // 08: connection exceptions; 57P0x: the server is shutting down or starting;
                // 55000: the database does not accept connections now; 57014: the statement
                // was ended at the statement timeout (a lock held elsewhere, an overloaded
                // server) or cancelled by an operator; 53: out of connections, memory or
                // disk; 40001, 40P01: a serialization failure or a deadlock, which a retry
                // gets past; 25006: a write sent to a server that takes none ([`Self::ReadOnly`]).
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || code.starts_with("57P0")
                        || code.starts_with("53")
                        || matches!(&*code, "55000" | "57014" | "40001" | "40P01" | "25006")
                }),
                _ => false,
            },
        }
    }
}

/// How much longer than `statement_timeout` a unit of work may go unanswered: the round
/// trips and the commit around its statements.
const ANSWER_GRACE: Duration = Duration::from_secs(1);

/// The Postgres store, cheap to clone (a pool inside).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool,
    /// How long a unit of work may wait for the database before it counts as silent.
    answer_within: Duration,
    /// The service's clock: every statement is given the time by it, so the rows are stamped
    /// and judged by the same clock as the tokens, and a test moves it instead of waiting.
    clock: SharedClock,
    /// Seals and opens phone numbers; without it none can be stored.
    phones: Option<PhoneVault>,
    /// A direct connection's settings, when the pool goes through a pooler.
    direct: Option<sqlx::postgres::PgConnectOptions>,
    /// The webhook subscriptions changes write events for (none by default).
    subscribers: std::sync::Arc<crate::domain::events::Subscribers>,
}

/// The database URL does not parse.
#[derive(Debug, thiserror::Error)]
#[error("the database URL is not a postgres:// URL")]
pub struct BadDatabaseUrl;

impl PgStore {
    /// A store over `pool`, whose connections end a statement at `statement_timeout`,
    /// telling time by `clock`.
    pub fn new(pool: Pool, statement_timeout: Duration, clock: SharedClock) -> Self {
        Self {
            pool,
            answer_within: statement_timeout + ANSWER_GRACE,
            clock,
            phones: None,
            direct: None,
            subscribers: std::sync::Arc::default(),
        }
    }

    /// The same store, writing webhook events for `subscribers` with each change.
    #[must_use]
    pub fn with_subscribers(
        mut self,
        subscribers: std::sync::Arc<crate::domain::events::Subscribers>,
    ) -> Self {
        self.subscribers = subscribers;
        self
    }

    /// The same store, sealing phone numbers with `keyring` (the key ring of session_keys).
    #[must_use]
    pub fn with_keyring(mut self, keyring: std::sync::Arc<crate::secrets::Keyring>) -> Self {
        self.phones = Some(PhoneVault::new(keyring));
        self
    }

    /// The time every statement of one unit of work is given.
    fn now(&self) -> Timestamp {
        self.clock.timestamp()
    }

    /// A store of at most `max_connections` connections to `url`, opened as they are
    /// needed, where no statement runs longer than `statement_timeout`.
    pub fn connect_lazy(
        url: &str,
        max_connections: usize,
        statement_timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, BadDatabaseUrl> {
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|_| BadDatabaseUrl)?;
        let options = options.options([(
            "statement_timeout",
            format!("{}ms", statement_timeout.as_millis()),
        )]);
        Ok(Self::new(
            Pool::new(options, max_connections),
            statement_timeout,
            clock,
        ))
    }

    /// A store whose pool goes through a pooler in transaction mode at `url`, and whose
    /// connections that need a session of their own (the migrations' advisory lock,
    /// `LISTEN`) go to `direct`. Through the pooler a connection is the server's for one
    /// transaction only, so each unit of work is one transaction, its statements unnamed
    /// (see `statement`), and the statement timeout is set for the transaction (`set
    /// local`): no session setting is relied on.
    pub fn connect_lazy_pooled(
        url: &str,
        direct: &str,
        max_connections: usize,
        statement_timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, BadDatabaseUrl> {
        let pooled: sqlx::postgres::PgConnectOptions = url.parse().map_err(|_| BadDatabaseUrl)?;
        let direct: sqlx::postgres::PgConnectOptions =
            direct.parse().map_err(|_| BadDatabaseUrl)?;
        let mut store = Self::new(
            Pool::new(pooled.statement_cache_capacity(0), max_connections),
            statement_timeout,
            clock,
        );
        store.direct = Some(direct.options([(
            "statement_timeout",
            format!("{}ms", statement_timeout.as_millis()),
        )]));
        Ok(store)
    }

    /// The settings of a connection that keeps a session: the direct URL's when the pool
    /// goes through a pooler, else the pool's own.
    fn session_options(&self) -> &sqlx::postgres::PgConnectOptions {
        self.direct.as_ref().unwrap_or(self.pool.options())
    }

    /// Whether the pool goes through a pooler (see [`Self::connect_lazy_pooled`]).
    pub fn pooled(&self) -> bool {
        self.direct.is_some()
    }

    /// A store of one connection of its own, to the same database with the same settings,
    /// outside this store's pool: for the checks a replica makes of itself (the health ping,
    /// the revocation listener's heartbeat and reloads). The pool is what a burst of requests
    /// keeps busy, and a check queued behind them would report load as a failure: every
    /// replica of a busy deployment taken out of service at once, or every validation sent
    /// to the busy pool. Like the pool's, its connection is closed, not reused, when a
    /// statement on it is cut short (a check that timed out on a silenced connection), so the
    /// next check opens a fresh one.
    pub fn own_connection(&self) -> Self {
        Self {
            pool: Pool::new(self.pool.options().clone(), 1),
            answer_within: self.answer_within,
            clock: self.clock.clone(),
            phones: self.phones.clone(),
            direct: self.direct.clone(),
            subscribers: self.subscribers.clone(),
        }
    }

    /// The database host, when it is off this machine and reached without verifying its
    /// certificate (`sslmode` below `verify-full`): then a network attacker can read and
    /// change everything the service stores, so the start warns.
    pub fn unverified_remote_host(&self) -> Option<String> {
        use sqlx::postgres::PgSslMode;
        let options = self.pool.options();
        let host = options.get_host();
        let local = options.get_socket().is_some()
            || host.starts_with('/')
            || host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let verified = matches!(options.get_ssl_mode(), PgSslMode::VerifyFull);
        (!local && !verified).then(|| host.to_owned())
    }

    /// Runs `work` on a connection of the pool, handing the connection back afterwards (or
    /// closing it when the connection itself failed, or `work` was cut short).
    ///
    /// The server ends a statement at `statement_timeout`; work still unanswered a second
    /// later never reached the server or its answer never came back (a partition, a
    /// failover, a flushed NAT table), and the kernel may keep such a socket for many
    /// minutes. Waiting on it would hold the caller until its own deadline and the
    /// connection far longer, so the work is cut short: the caller hears "unavailable" and
    /// can try another replica, and the connection is closed.
    async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut lease = self.pool.lease().await?;
        let result = if self.pooled() {
            let begin = self.pooled_begin();
            answered(
                self.answer_within,
                statement::within(true, in_one_transaction(lease.conn(), begin, work)),
            )
            .await?
        } else {
            answered(self.answer_within, work(lease.conn())).await?
        };
        Ok(lease.finish(result)?)
    }

    /// How a unit of work begins through a pooler: its transaction, with the statement
    /// timeout a direct connection gets as a session setting (none survives a pooler).
    pub(super) fn pooled_begin(&self) -> String {
        format!(
            "begin; set local statement_timeout = {}",
            self.answer_within.saturating_sub(ANSWER_GRACE).as_millis()
        )
    }

    /// Closes the pool's idle connections (see [`Pool::drop_idle`]); returns how many.
    pub fn drop_idle_connections(&self) -> usize {
        self.pool.drop_idle()
    }

    /// Connections open now, and how many of them are idle.
    pub fn pool_status(&self) -> (usize, usize) {
        self.pool.status()
    }

    /// Stops handing out connections and closes the idle ones.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// What `work` came to, unless the database left it unanswered past `within` (see
/// [`PgStore::run`]); its lease must then be dropped, which closes the connection.
async fn answered<T>(
    within: Duration,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<Result<T, sqlx::Error>, StoreError> {
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| StoreError::NoAnswer(within))
}

/// Runs `work` in a transaction of its own (`begin`), committed when it succeeds and rolled
/// back when it fails: through a pooler in transaction mode, all its statements then reach
/// one server connection. A transaction `work` begins itself is a savepoint in this one.
async fn in_one_transaction<T>(
    conn: &mut PgConnection,
    begin: String,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    let mut tx = sqlx::Connection::begin_with(&mut *conn, begin).await?;
    match work(&mut tx).await {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(err) => {
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MIGRATOR, PgStore};

    fn unverified(url: &str) -> Option<String> {
        PgStore::connect_lazy(
            url,
            1,
            std::time::Duration::from_secs(1),
            std::sync::Arc::new(crate::clock::SystemClock),
        )
        .unwrap()
        .unverified_remote_host()
    }

    /// The migrations of past releases, as deployed databases hold them (the start of each
    /// SHA-384 that sqlx keeps). Edit one and every deployed service refuses to start
    /// ("migration N was previously applied but has been modified"): add a migration
    /// instead. New migrations need no entry here.
    const RELEASED: [(i64, &str); 9] = [
        (1, "00f7d28705481b4c575255ba"),
        (2, "fd69cb29a63abbb12be03ca4"),
        (3, "cc9cdbcaff3a76576ede2266"),
        (4, "05370cbbf30d3692fa570249"),
        (5, "b7d7013ac402e5d4bf1258c3"),
        (6, "f9b4f4d277acf0d465f824fd"),
        (7, "52dcf23eee1028ca5999dee6"),
        (8, "f293043079666a0ba999ae95"),
        (9, "6598381c22bb9112b512e3fb"),
    ];

    #[test]
    fn released_migrations_are_never_edited_only_added_to() {
        for (version, checksum) in RELEASED {
            let migration = MIGRATOR
                .iter()
                .find(|migration| migration.version == version)
                .unwrap_or_else(|| panic!("migration {version} is gone: never remove one"));
            assert!(
                hex::encode(&migration.checksum).starts_with(checksum),
                "migration {version} ({}) was edited after release: revert it and add a new \
                 migration instead",
                migration.description
            );
        }
    }

    #[test]
    fn only_a_remote_database_reached_without_verify_full_is_flagged() {
        assert_eq!(unverified("postgres://u@127.0.0.1/db"), None);
        assert_eq!(unverified("postgres://u@localhost/db"), None);
        assert_eq!(unverified("postgres://u@[::1]:5432/db"), None);
        assert_eq!(unverified("postgres:///db?host=/run/postgresql"), None);
        assert_eq!(
            unverified("postgres://u@db.internal/db?sslmode=verify-full&sslrootcert=/ca.pem"),
            None
        );
        assert_eq!(
            unverified("postgres://u@db.internal/db").as_deref(),
            Some("db.internal")
        );
        assert_eq!(
            unverified("postgres://u@10.0.0.5/db?sslmode=require").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            unverified("postgres://u@db.internal/db?sslmode=verify-ca").as_deref(),
            Some("db.internal")
        );
    }
}
