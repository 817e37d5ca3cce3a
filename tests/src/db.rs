//! A fresh database per test, on the server `DATABASE_URL` points at.

use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};

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

    /// Creates `wxauth_e2e_<random>` on the server of `DATABASE_URL`.
    pub async fn create() -> Self {
        let admin_url = std::env::var("DATABASE_URL").expect(
            "DATABASE_URL is not set: run scripts/test, which starts a throwaway PostgreSQL \
             cluster when DATABASE_URL is not given, or point DATABASE_URL at a server where \
             you may create databases",
        );
        Self::create_on(admin_url).await
    }

    /// Creates `wxauth_e2e_<random>` on the server of `admin_url`.
    pub async fn create_on(admin_url: String) -> Self {
        let name = format!("wxauth_e2e_{}", crate::random_hex(8));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to DATABASE_URL: {err}"));
        sqlx::query(&format!("create database {name}"))
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

    /// A small pool on the test's database, to look at what the service wrote.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("the test database accepts connections")
    }
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
