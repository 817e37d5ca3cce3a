//! What a benchmark runs against: a fast fake WeChat in this process, and per build a fresh
//! database with that build's auth-service and gateway as real processes.

use std::{
    future::pending,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use tokio::net::TcpListener;
use wechat_sim::{App, Sim};
use wxauth_harness::{db::TestDb, process::Proc, random_hex};

/// The mini-program every flow logs in to.
pub const APP: &str = "wx4f4bc4dec97d474b";

/// WeChat's `jscode2session`, answered by the simulator in this process (well under a
/// millisecond), so the figures are the services', not a fake's. Codes are minted and
/// profiles encrypted by direct calls, as the mini-program side costs no HTTP.
pub struct FakeWeChat {
    /// The simulator's state, shared with its HTTP routes.
    pub sim: Sim,
    /// `http://<addr>`, for `WECHAT_API_BASE`.
    pub url: String,
    /// The app secret the simulator expects.
    secret: String,
}

impl FakeWeChat {
    /// Serves the simulator on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let secret = random_hex(16);
        let sim = Sim::new(vec![App {
            appid: APP.into(),
            secret: secret.clone(),
            platform: None,
        }]);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        tokio::spawn(wxauth_process::http::serve(
            listener,
            wechat_sim::router(sim.clone()),
            pending(),
        ));
        Ok(Self {
            sim,
            url: format!("http://{addr}"),
            secret,
        })
    }
}

/// One build of wxauth running: its auth-service and gateway on their own database.
pub struct Build {
    /// The name it is reported under (`main`, `change`).
    pub name: String,
    /// The auth-service.
    pub auth: Proc,
    /// The gateway.
    pub gateway: Proc,
    /// A caller key with the `validate` scope.
    pub service_key: String,
    /// The build's database, dropped with it.
    db: TestDb,
}

fn random_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the os random source works");
    STANDARD.encode(key)
}

impl Build {
    /// Starts the binaries in `bin_dir` against a new database on `DATABASE_URL`'s server,
    /// reached through `pooler` (a pooler in transaction mode in front of that server) when
    /// there is one.
    pub async fn start(
        name: &str,
        bin_dir: &Path,
        wechat: &FakeWeChat,
        log_dir: &Path,
        pooler: Option<std::net::SocketAddr>,
    ) -> Self {
        let db = TestDb::create_empty().await;
        let gateway_key = format!("gw-{}", random_hex(16));
        let service_key = format!("svc-{}", random_hex(16));
        let log_filter = std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into());
        let auth_env = vec![
            ("RUST_LOG", log_filter.clone()),
            ("DATABASE_URL", db.url.clone()),
            ("WXAUTH_GRPC_ADDR", "127.0.0.1:0".into()),
            ("WXAUTH_METRICS_ADDR", "127.0.0.1:0".into()),
            ("WXAUTH_APPS", format!("{APP}:{}", wechat.secret)),
            ("WECHAT_API_BASE", wechat.url.clone()),
            ("WXAUTH_SESSION_KEY_KEYS", format!("k1:{}", random_key())),
            ("WXAUTH_TOKEN_SIGNING_KEYS", format!("t1:{}", random_key())),
            (
                "WXAUTH_CALLERS",
                format!("gateway:login:{gateway_key},bench:validate:{service_key}"),
            ),
            // The benchmark measures throughput: no quota may cap it (an older build
            // ignores the setting).
            ("WXAUTH_WECHAT_CALLS_PER_SECOND", "0".into()),
        ];
        let mut auth_env = auth_env;
        if let Some(pooler) = pooler {
            auth_env.push((
                "DATABASE_URL",
                wxauth_harness::db::with_address(&db.url, pooler),
            ));
            auth_env.push(("WXAUTH_DATABASE_DIRECT_URL", db.url.clone()));
        }
        let auth = Proc::spawn_from(
            bin_dir,
            "auth-service",
            &format!("{name}-auth-service"),
            &auth_env,
            log_dir,
        );
        let gateway = Proc::spawn_from(
            bin_dir,
            "gateway",
            &format!("{name}-gateway"),
            &[
                ("RUST_LOG", log_filter),
                ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
                ("GATEWAY_METRICS_ADDR", "127.0.0.1:0".into()),
                ("AUTH_GRPC_URL", auth.url()),
                ("AUTH_CALLER_KEY", gateway_key),
                // Every client of the benchmark is this one host: no per-client limit, as
                // behind a proxy (a build that does not know a setting ignores it).
                ("GATEWAY_LOGIN_RATE_PER_MINUTE", "0".into()),
                ("GATEWAY_MAX_CONNECTIONS_PER_CLIENT", "0".into()),
                ("GATEWAY_MAX_REQUESTS_PER_CLIENT", "0".into()),
            ],
            log_dir,
        );
        Self {
            name: name.to_owned(),
            auth,
            gateway,
            service_key,
            db,
        }
    }

    /// Each table of the build's database and its size, bytes.
    pub async fn table_bytes(&self) -> Vec<(String, i64)> {
        self.db.table_bytes().await
    }

    /// Fills the build's database with `users` generated users (see
    /// [`wxauth_harness::seed`]); `progress` hears each batch done.
    pub async fn seed(
        &self,
        users: u64,
        progress: impl FnMut(u64),
    ) -> Result<wxauth_harness::seed::Seeded, String> {
        let pool = self.db.pool().await;
        let seeded = wxauth_harness::seed::seed(&pool, APP, users, progress).await;
        pool.close().await;
        seeded.map_err(|err| err.to_string())
    }

    /// The largest tables and indexes of the build's database (see
    /// [`TestDb::relation_bytes`]).
    pub async fn relation_bytes(&self, limit: i64) -> Vec<(String, i64)> {
        self.db.relation_bytes(limit).await
    }

    /// Reads what a login reads at random into the server's cache (see [`TestDb::prewarm`]):
    /// the bytes read, and of them the bytes in PostgreSQL's own buffers.
    pub async fn prewarm(&self) -> Result<(i64, i64), String> {
        self.db.prewarm().await.map_err(|err| err.to_string())
    }

    /// The server's WAL written so far (see [`TestDb::wal`]).
    pub async fn wal(&self) -> Option<(f64, f64)> {
        self.db.wal().await
    }

    /// HOT updates of the tables a returning login updates (see [`TestDb::hot_updates`]).
    pub async fn hot_updates(&self) -> Vec<(String, i64, i64)> {
        self.db.hot_updates().await
    }

    /// Asks PostgreSQL for a checkpoint, so that every measured run starts from the same
    /// state. Left to itself the server starts one every half a gigabyte of WAL (about every
    /// fourth 64-client run here), partway through whichever run is going: that run alone pays
    /// the writes and the burst of full-page images that follow, for one build and not the
    /// other. Started before each run, no run reaches that much WAL, and each pays what
    /// follows a checkpoint alike. A server that refuses (not a superuser's) is measured as
    /// it is.
    pub async fn checkpoint(&self) -> Result<(), String> {
        self.db
            .try_admin("checkpoint")
            .await
            .map_err(|err| err.to_string())
    }
}

/// A `NAME=DIR` build given on the command line.
#[derive(Debug, Clone)]
pub struct BuildDir {
    /// The name to report.
    pub name: String,
    /// Where its release binaries are.
    pub dir: PathBuf,
}

impl std::str::FromStr for BuildDir {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (name, dir) = raw
            .split_once('=')
            .ok_or("a build is NAME=DIR, for example change=target/release")?;
        Ok(Self {
            name: name.to_owned(),
            dir: PathBuf::from(dir),
        })
    }
}
