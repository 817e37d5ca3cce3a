//! A fresh database per user, on the server `DATABASE_URL` points at.
//!
//! [`TestDb::create`] gives a migrated one, cloned from a template database that holds
//! exactly the service's migrations (`wxauth_template_<digest of the migrations>`, made
//! once per server and migration set, under an advisory lock so tests starting at once make
//! it once): the service finds nothing to migrate and starts at once.
//! [`TestDb::create_empty`] gives an empty one, for what must run the migrations itself (a
//! benchmark of two builds, each with its own migrations; the test of replicas migrating a
//! new database together).

use std::hash::{Hash as _, Hasher as _};

use sqlx::{Connection, PgConnection, PgPool, migrate::Migrator, postgres::PgPoolOptions};

/// The relations a returning user's login touches at a random place: the keys it finds the
/// user, their kept session_key and their unionid's account by, those two tables' rows, the
/// user's key (its new family's foreign key is checked against it), and the index leaves
/// its new family and audit event go into (a refresh token's key begins with its issue
/// time, so a new one goes to the end of its index). On a large database these are what a
/// login reads from outside PostgreSQL's buffers when they do not fit.
pub const RANDOM_PER_LOGIN: [&str; 8] = [
    "users_appid_openid_key",
    "users_pkey",
    "users",
    "user_session_keys_pkey",
    "user_session_keys",
    "accounts_unionid_key",
    "token_families_user",
    "audit_events_user",
];

/// The service's migrations, as the binaries under test embed them.
static MIGRATOR: Migrator = sqlx::migrate!("../../services/auth-service/migrations");

/// The advisory lock under which a template database is made.
const TEMPLATE_LOCK: i64 = 0x7778_6175_7468_0001;

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    /// The URL of the test's own database.
    pub url: String,
    admin_url: String,
    name: String,
    /// Whether dropping this handle drops the database (false for [`TestDb::same`]).
    owner: bool,
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |at| scheme_end + at);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` pointing at `addr` instead of its own host and port (user, database and query kept).
pub fn with_address(url: &str, addr: std::net::SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |at| at + 3);
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |at| scheme_end + at);
    let authority = &url[scheme_end..authority_end];
    let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!(
        "{}{user}{addr}{}",
        &url[..scheme_end],
        &url[authority_end..]
    )
}

impl TestDb {
    /// The server's TCP address, for a proxy in front of it (a socket URL has none).
    pub fn tcp_address(&self) -> Option<std::net::SocketAddr> {
        let options: sqlx::postgres::PgConnectOptions = self.url.parse().ok()?;
        let host = options.get_host();
        if host.starts_with('/') {
            return None;
        }
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", options.get_port()).parse().ok()
    }

    /// Creates a migrated `wxauth_e2e_<random>` on the server of `DATABASE_URL`.
    pub async fn create() -> Self {
        Self::create_on(admin_url()).await
    }

    /// Creates an empty `wxauth_e2e_<random>` on the server of `DATABASE_URL`.
    pub async fn create_empty() -> Self {
        Self::make(admin_url(), None).await
    }

    /// Creates a migrated `wxauth_e2e_<random>` on the server of `admin_url`.
    pub async fn create_on(admin_url: String) -> Self {
        let template = template(&admin_url).await;
        Self::make(admin_url, Some(&template)).await
    }

    async fn make(admin_url: String, template: Option<&str>) -> Self {
        let name = format!("wxauth_e2e_{}", crate::random_hex(8));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to DATABASE_URL: {err}"));
        let from = template.map_or_else(String::new, |template| format!(" template {template}"));
        sqlx::query(&format!("create database {name}{from}"))
            .execute(&mut admin)
            .await
            .expect("the test database can be created");
        let _ = admin.close().await;
        Self {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
            owner: true,
        }
    }

    /// Another handle on the same database, which leaves it in place when dropped (the
    /// first handle drops it).
    pub fn same(&self) -> Self {
        Self {
            url: self.url.clone(),
            admin_url: self.admin_url.clone(),
            name: self.name.clone(),
            owner: false,
        }
    }

    /// Runs `sql` on the server's admin connection (`{db}` stands for the test database's
    /// name): to take the database away from the service, say.
    pub async fn admin(&self, sql: &str) {
        self.try_admin(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// [`TestDb::admin`], for a statement the server may refuse.
    pub async fn try_admin(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let done = sqlx::query(&sql.replace("{db}", &self.name))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
        done.map(drop)
    }

    /// Each table's size on disk, indexes and TOAST included, by name.
    pub async fn table_bytes(&self) -> Vec<(String, i64)> {
        let pool = self.pool().await;
        let sizes = sqlx::query_as(
            "select c.relname::text, pg_total_relation_size(c.oid) from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = current_schema() and c.relkind = 'r' order by 1",
        )
        .fetch_all(&pool)
        .await
        .expect("the tables can be measured");
        pool.close().await;
        sizes
    }

    /// Each table and index of the largest `limit`, with its size on disk, largest first:
    /// where a seeded database's bytes are.
    pub async fn relation_bytes(&self, limit: i64) -> Vec<(String, i64)> {
        let pool = self.pool().await;
        let sizes = sqlx::query_as(
            "select c.relname::text, pg_relation_size(c.oid) from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = current_schema() and c.relkind in ('r', 'i') \
             order by 2 desc, 1 limit $1",
        )
        .bind(limit)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        sizes
    }

    /// Reads into the cache what a returning login touches at random places
    /// ([`RANDOM_PER_LOGIN`]): a primary that has served for a while holds these, as every
    /// login touches them; a database just bulk-loaded holds whatever was written last. The
    /// rest (the append-only tables and the indexes a login only adds to the end of) is left
    /// out: a login touches only their ends, and reading them too would push the hot pages
    /// out of a cache smaller than the database.
    ///
    /// They go into PostgreSQL's own buffers, smallest first, as many as 90% of
    /// `shared_buffers` holds, as a server sized for them would keep them there; the rest into
    /// the operating system's cache, read twice: the kernel keeps a page read again among its
    /// active pages, as it does the pages every login comes back to, and evicts the pages read
    /// once first, so the WAL and the rows a run appends do not push these out. Needs
    /// `pg_prewarm` (PostgreSQL's contrib) and the right to create it; answers the bytes read
    /// (once), and of them the bytes put in PostgreSQL's buffers.
    ///
    /// # Errors
    /// What the server refused.
    pub async fn prewarm(&self) -> Result<(i64, i64), sqlx::Error> {
        let pool = self.pool().await;
        let read = async {
            sqlx::query("create extension if not exists pg_prewarm")
                .execute(&pool)
                .await?;
            let room: i64 = sqlx::query_scalar(
                "select (setting::int8 * current_setting('block_size')::int8) * 9 / 10 \
                 from pg_settings where name = 'shared_buffers'",
            )
            .fetch_one(&pool)
            .await?;
            let random: Vec<(String, i64)> = sqlx::query_as(
                "select c.relname::text, pg_relation_size(c.oid) from pg_class c \
                 join pg_namespace n on n.oid = c.relnamespace \
                 where n.nspname = current_schema() and c.relname = any($1) order by 2, 1",
            )
            .bind(&RANDOM_PER_LOGIN[..])
            .fetch_all(&pool)
            .await?;
            // Smallest first into PostgreSQL's buffers while they hold them; the rest to the
            // operating system's cache.
            let (mut buffered, mut cached) = (Vec::new(), Vec::new());
            let mut held = 0;
            for (name, bytes) in random {
                if held + bytes <= room {
                    held += bytes;
                    buffered.push(name);
                } else {
                    cached.push(name);
                }
            }
            let prewarm = |mode: &'static str, names: &[String]| {
                sqlx::query_scalar::<_, i64>(
                    "select coalesce(sum(pg_prewarm(c.oid, $2)), 0)::int8 \
                       * current_setting('block_size')::int8 from pg_class c \
                     join pg_namespace n on n.oid = c.relnamespace \
                     where n.nspname = current_schema() and c.relname = any($1)",
                )
                .bind(names.to_vec())
                .bind(mode)
                .fetch_one(&pool)
            };
            let mut read = 0;
            for _ in 0..2 {
                read = prewarm("read", &cached).await?;
            }
            let buffer = prewarm("buffer", &buffered).await?;
            Ok((read + buffer, buffer))
        }
        .await;
        pool.close().await;
        read
    }

    /// The server's WAL written so far: (bytes, full-page images). A server shared by two
    /// builds whose runs alternate gives each run's as the difference across it.
    pub async fn wal(&self) -> Option<(f64, f64)> {
        let pool = self.pool().await;
        let wal = sqlx::query_as("select wal_bytes::float8, wal_fpi::float8 from pg_stat_wal")
            .fetch_one(&pool)
            .await
            .ok();
        pool.close().await;
        wal
    }

    /// Updates and HOT updates (no index touched) so far, of the tables a returning login
    /// updates: (table, updates, HOT updates).
    pub async fn hot_updates(&self) -> Vec<(String, i64, i64)> {
        let pool = self.pool().await;
        let rows = sqlx::query_as(
            "select relname::text, n_tup_upd, n_tup_hot_upd from pg_stat_user_tables \
             where relname in ('users', 'user_session_keys') order by 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        rows
    }

    /// A small pool on the test's database, to look at what the service wrote.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("the test database accepts connections")
    }
}

/// The server the tests run on.
fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run scripts/test, which starts a throwaway PostgreSQL \
         cluster when DATABASE_URL is not given, or point DATABASE_URL at a server where \
         you may create databases",
    )
}

/// The template database of the current migrations on the server of `admin_url`, made if
/// it is not there. It is made under another name and renamed once migrated, so a test
/// never clones one half made.
async fn template(admin_url: &str) -> String {
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    for migration in MIGRATOR.iter() {
        migration.version.hash(&mut digest);
        migration.checksum.hash(&mut digest);
    }
    let name = format!("wxauth_template_{:016x}", digest.finish());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to DATABASE_URL: {err}"));
    sqlx::query("select pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await
        .expect("the template lock can be taken");
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("the server lists its databases");
    if !exists {
        let building = format!("{name}_building");
        for statement in [
            format!("drop database if exists {building} with (force)"),
            format!("create database {building}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|err| panic!("{statement}: {err}"));
        }
        let mut conn = PgConnection::connect(&with_database(admin_url, &building))
            .await
            .expect("the template accepts a connection");
        MIGRATOR
            .run(&mut conn)
            .await
            .expect("the migrations apply to the template");
        let _ = conn.close().await;
        sqlx::query(&format!("alter database {building} rename to {name}"))
            .execute(&mut admin)
            .await
            .expect("the template can be renamed");
    }
    let _ = admin.close().await;
    name
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread
        // with its own runtime. A failure only leaves a database behind.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_address_is_replaced_and_everything_else_kept() {
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        for (url, expected) in [
            (
                "postgres://u:p@h:5/db?x=1",
                "postgres://u:p@127.0.0.1:9/db?x=1",
            ),
            ("postgres://h/db", "postgres://127.0.0.1:9/db"),
        ] {
            assert_eq!(super::with_address(url, addr), expected, "{url}");
        }
    }

    #[test]
    fn the_database_is_replaced_and_everything_else_kept() {
        let cases = [
            ("postgres://u:p@h:5/db", "postgres://u:p@h:5/x"),
            ("postgres://h:5", "postgres://h:5/x"),
            (
                "postgres://h/db?sslmode=disable",
                "postgres://h/x?sslmode=disable",
            ),
            (
                "postgresql:///db?host=/run/pg",
                "postgresql:///x?host=/run/pg",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "x"), expected, "{url}");
        }
    }
}
