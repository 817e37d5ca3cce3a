//! The whole system for one test: a database, the simulator, the auth-service and the
//! gateway, with the clients each kind of caller uses.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use wxauth_proto::v1::auth_service_client::AuthServiceClient;
pub use wxauth_proto::wire::CallerKey;
use wxauth_token::KeyPair;

use crate::{
    db::TestDb,
    process::{Listening, Proc},
    random_hex,
};

mod gateway;
mod serve;
mod wechat;

pub use serve::{Served, Server};
pub use wechat::sim_count;

/// The main test app (the appid of WeChat's official vector).
pub const APP: &str = "wx4f4bc4dec97d474b";
/// A second app served by the same deployment.
pub const APP2: &str = "wx0123456789abcdef";
/// An app the auth-service is configured for with the wrong secret (WeChat answers 40125).
pub const APP_BAD_SECRET: &str = "wx00000000000000ba";

/// The Open Platform account [`APP`] and [`APP2`] are bound to in the simulator.
pub const OPEN_PLATFORM: &str = "open-1";

/// The kid of the token signing key the stacks use.
pub const SIGNING_KID: &str = "k1";

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// The auth-service's WECHAT_TIMEOUT_MS.
    pub wechat_timeout_ms: u64,
    /// The auth-service's WXAUTH_PURGE_INTERVAL_SECS, when not the default.
    pub purge_interval_secs: Option<u64>,
    /// Logs as JSON (WXAUTH_LOG_FORMAT=json) instead of text.
    pub json_logs: bool,
    /// The auth-service's WXAUTH_SHUTDOWN_GRACE_SECS, when not the default.
    pub shutdown_grace_secs: Option<u64>,
    /// The auth-service's WXAUTH_ACCESS_TTL_SECS, when not the default.
    pub access_ttl_secs: Option<u64>,
    /// More settings of the auth-service (environment variable, value).
    pub auth_env: Vec<(&'static str, String)>,
    /// More settings of the gateway.
    pub gateway_env: Vec<(&'static str, String)>,
    /// More WXAUTH_CALLERS entries (`name:scopes:credential`).
    pub extra_callers: Vec<String>,
    /// More settings of the simulator.
    pub sim_env: Vec<(&'static str, String)>,
    /// Run the three services as child processes (the built binaries) instead of in the
    /// test process: for tests of what only a process has (signals, exit codes, its own
    /// log format). `json_logs` implies it.
    pub processes: bool,
    /// Name the gateway's own address as the issuer (WXAUTH_ISSUER), as a deployment that
    /// serves OpenID Connect does: the gateway gets a port chosen before the auth-service
    /// starts.
    pub issuer_on_gateway: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wechat_timeout_ms: 5000,
            purge_interval_secs: None,
            json_logs: false,
            shutdown_grace_secs: None,
            access_ttl_secs: None,
            auth_env: Vec::new(),
            gateway_env: Vec::new(),
            extra_callers: Vec::new(),
            sim_env: Vec::new(),
            processes: false,
            issuer_on_gateway: false,
        }
    }
}

/// The caller keys of a stack, one per kind of caller.
#[derive(Debug, Clone)]
pub struct CallerKeys {
    /// The gateway's (`login` scope).
    pub gateway: String,
    /// An internal service's (`validate` scope).
    pub service: String,
    /// An operator's (`admin` and `validate` scopes).
    pub ops: String,
}

/// An auth-service client that presents a caller key.
pub type Client = AuthServiceClient<InterceptedService<Channel, CallerKey>>;

/// A running system.
pub struct Stack {
    /// The gateway, what mini-programs call.
    pub gateway: Server,
    /// The auth-service, what internal services call.
    pub auth: Server,
    /// The WeChat simulator.
    pub sim: Server,
    /// The test's database.
    pub db: TestDb,
    /// Every secret configured or handed out in this test, for leak scans.
    pub secrets: Vec<String>,
    /// The caller keys.
    pub keys: CallerKeys,
    /// The settings the auth-service was started with, to start replicas.
    auth_env: Vec<(&'static str, String)>,
    /// The token signing key's seed, so a test can sign tokens as the service would.
    signing_seed: [u8; 32],
    /// An HTTP client.
    pub http: reqwest::Client,
    dir: PathBuf,
}

impl Stack {
    /// Starts everything with default options.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts everything.
    pub async fn start_with(options: Options) -> Self {
        Self::start_on(TestDb::create().await, options).await
    }

    /// Starts everything as child processes, with default options otherwise.
    pub async fn start_processes() -> Self {
        Self::start_with(Options {
            processes: true,
            ..Options::default()
        })
        .await
    }

    /// Starts everything on the database `db` (one of a server of the test's own, say).
    pub async fn start_on(db: TestDb, options: Options) -> Self {
        let dir = std::env::temp_dir().join(format!("wxauth-e2e-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).expect("the log folder can be created");

        let secret = random_hex(16);
        let secret2 = random_hex(16);
        let bad_secret = random_hex(16);
        let session_key_key = {
            use base64::Engine as _;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).expect("the os random source works");
            base64::engine::general_purpose::STANDARD.encode(key)
        };

        let mut signing_seed = [0u8; 32];
        getrandom::fill(&mut signing_seed).expect("the os random source works");
        let signing_key = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(signing_seed)
        };
        let keys = CallerKeys {
            gateway: format!("gw-{}", random_hex(16)),
            service: format!("svc-{}", random_hex(16)),
            ops: format!("ops-{}", random_hex(16)),
        };

        let mut sim_env = vec![
            ("WECHAT_SIM_ADDR", "127.0.0.1:0".into()),
            (
                "WECHAT_SIM_APPS",
                // The two apps are bound to one Open Platform account, as a team's apps are.
                format!(
                    "{APP}:{secret}:{OPEN_PLATFORM},{APP2}:{secret2}:{OPEN_PLATFORM},{APP_BAD_SECRET}:{}",
                    random_hex(16)
                ),
            ),
        ];
        sim_env.extend(options.sim_env.iter().cloned());
        let processes = options.processes || options.json_logs;
        let start = async |name: &str, env: &[(&'static str, String)]| {
            if processes {
                Server::Process(Proc::spawn(name, env, &dir))
            } else {
                Server::InProcess(match name {
                    "wechat-sim" => Served::wechat_sim(env).await,
                    "auth-service" => Served::auth_service(env).await,
                    _ => Served::gateway(env).await,
                })
            }
        };
        let sim = start("wechat-sim", &sim_env).await;
        let auth_env = vec![
            ("DATABASE_URL", db.url.clone()),
            ("WXAUTH_GRPC_ADDR", "127.0.0.1:0".into()),
            (
                "WXAUTH_APPS",
                format!("{APP}:{secret},{APP2}:{secret2},{APP_BAD_SECRET}:{bad_secret}"),
            ),
            ("WECHAT_API_BASE", sim.url()),
            ("WECHAT_TIMEOUT_MS", options.wechat_timeout_ms.to_string()),
            ("WXAUTH_SESSION_KEY_KEYS", format!("k1:{session_key_key}")),
            (
                "WXAUTH_TOKEN_SIGNING_KEYS",
                format!("{SIGNING_KID}:{signing_key}"),
            ),
            (
                "WXAUTH_CALLERS",
                std::iter::once(format!(
                    "gateway:login:{},orders:validate:{},ops:admin+validate:{}",
                    keys.gateway, keys.service, keys.ops
                ))
                .chain(options.extra_callers.iter().cloned())
                .collect::<Vec<_>>()
                .join(","),
            ),
        ];
        let mut auth_env = auth_env;
        auth_env.push(("WXAUTH_METRICS_ADDR", "127.0.0.1:0".into()));
        if let Some(secs) = options.purge_interval_secs {
            auth_env.push(("WXAUTH_PURGE_INTERVAL_SECS", secs.to_string()));
        }
        if let Some(secs) = options.shutdown_grace_secs {
            auth_env.push(("WXAUTH_SHUTDOWN_GRACE_SECS", secs.to_string()));
        }
        if let Some(secs) = options.access_ttl_secs {
            auth_env.push(("WXAUTH_ACCESS_TTL_SECS", secs.to_string()));
        }
        // Tests drive many logins from one address at once: quotas only where a test asks.
        auth_env.push(("WXAUTH_WECHAT_CALLS_PER_SECOND", "0".into()));
        let gateway_addr = if options.issuer_on_gateway {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            auth_env.push(("WXAUTH_ISSUER", format!("http://127.0.0.1:{port}")));
            format!("127.0.0.1:{port}")
        } else {
            "127.0.0.1:0".to_owned()
        };
        auth_env.extend(options.auth_env.iter().cloned());
        let log_format = if options.json_logs { "json" } else { "text" };
        auth_env.push(("WXAUTH_LOG_FORMAT", log_format.into()));
        let auth = start("auth-service", &auth_env).await;
        let mut gateway_env = vec![
            ("GATEWAY_HTTP_ADDR", gateway_addr),
            (
                "AUTH_GRPC_URL",
                // With TLS on the auth-service, the gateway must speak it (and be told the CA).
                if options
                    .auth_env
                    .iter()
                    .any(|(key, _)| *key == "WXAUTH_TLS_CERT")
                {
                    auth.https_url()
                } else {
                    auth.url()
                },
            ),
            ("AUTH_CALLER_KEY", keys.gateway.clone()),
            ("GATEWAY_METRICS_ADDR", "127.0.0.1:0".into()),
            ("WXAUTH_LOG_FORMAT", log_format.into()),
            ("GATEWAY_LOGIN_RATE_PER_MINUTE", "0".into()),
        ];
        gateway_env.extend(options.gateway_env.iter().cloned());
        let gateway = start("gateway", &gateway_env).await;
        Self {
            gateway,
            auth,
            sim,
            db,
            secrets: vec![
                secret,
                secret2,
                bad_secret,
                session_key_key,
                signing_key,
                keys.gateway.clone(),
                keys.service.clone(),
                keys.ops.clone(),
            ],
            keys,
            auth_env,
            signing_seed,
            // As a well-set client pool is: idle connections dropped before the servers'
            // idle timeout closes them, so no request is sent onto a closing socket.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a client with no TLS settings builds"),
            dir,
        }
    }

    /// The value of one of the auth-service's settings (environment variable name).
    pub fn auth_setting(&self, name: &str) -> String {
        self.auth_env
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("the auth-service has no setting {name}"))
    }

    /// Every setting the auth-service was started with, to start it again with changes.
    pub fn auth_env(&self) -> Vec<(&'static str, String)> {
        self.auth_env.clone()
    }

    /// The folder of this stack's logs (and of any files a test makes for it).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Scrapes a server's `/metrics`.
    pub async fn scrape(&self, server: &impl Listening) -> String {
        let addr = server
            .metrics_addr()
            .expect("the server has a metrics address");
        self.http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics are text")
    }

    /// A second auth-service on the same database, settings and keys (a replica).
    pub fn spawn_replica(&self, name: &str) -> Proc {
        self.spawn_replica_with(name, &[])
    }

    /// A replica with some settings changed (environment variable, value).
    pub fn spawn_replica_with(&self, name: &str, changes: &[(&'static str, String)]) -> Proc {
        let mut env: Vec<(&'static str, String)> = self
            .auth_env
            .iter()
            .filter(|(key, _)| !changes.iter().any(|(changed, _)| changed == key))
            .cloned()
            .collect();
        env.extend(changes.iter().cloned());
        Proc::spawn_named("auth-service", name, &env, &self.dir)
    }

    /// An operator's client (admin and validate scopes).
    pub async fn grpc(&self) -> Client {
        self.grpc_as(Some(&self.keys.ops)).await
    }

    /// A client presenting `key` (or no key at all).
    pub async fn grpc_as(&self, key: Option<&str>) -> Client {
        self.grpc_to(&self.auth, key).await
    }

    /// A client of a given auth-service, presenting `key`.
    pub async fn grpc_to(&self, auth: &impl Listening, key: Option<&str>) -> Client {
        let key = key.map_or_else(CallerKey::none, |key| {
            CallerKey::new(key).expect("caller keys are ascii")
        });
        AuthServiceClient::with_interceptor(channel_to(auth).await, key)
    }

    /// Signs `claims` with the stack's own signing key, as the auth-service would.
    pub fn sign(&self, claims: &wxauth_token::Claims) -> String {
        KeyPair::from_seed(SIGNING_KID, &self.signing_seed).sign(claims)
    }

    /// A gRPC channel to the auth-service.
    pub async fn channel(&self) -> Channel {
        channel_to(&self.auth).await
    }
}

/// A gRPC channel to an auth-service.
pub async fn channel_to(auth: &impl Listening) -> Channel {
    tonic::transport::Endpoint::from_shared(auth.url())
        .expect("the address is a valid uri")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("the auth-service accepts gRPC connections")
}

impl Stack {
    /// Rows in a table of the test database.
    pub async fn count(&self, table: &str) -> i64 {
        let pool = self.db.pool().await;
        let count: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&pool)
            .await
            .expect("the table can be counted");
        pool.close().await;
        count
    }

    /// Runs a statement on the test database (to age a row, say).
    pub async fn execute(&self, sql: &str) -> u64 {
        let pool = self.db.pool().await;
        let done = sqlx::query(sql)
            .execute(&pool)
            .await
            .expect("the statement runs");
        pool.close().await;
        done.rows_affected()
    }

    /// Takes the schema back to before the account-lifecycle migration (8) and the one
    /// after it (9), as a release before them left the database (deleted users and sealed
    /// phone numbers go with the columns). The service must be stopped.
    pub async fn revert_lifecycle_migration(&self) {
        self.execute("drop table webhook_events, service_replicas")
            .await;
        self.execute("alter table token_families drop column scope")
            .await;
        self.execute(
            "drop index users_phone_index, users_nickname, users_status, users_phone_plain",
        )
        .await;
        self.execute(
            "alter table users drop column status, drop column status_reason, \
             drop column suspended_until, drop column delete_after, drop column deleted_at, \
             drop column erased_digest, drop column erased_kid, drop column phone_kid, \
             drop column phone_nonce, drop column phone_sealed, drop column phone_index, \
             drop column phone_index_kid, drop column nickname_check",
        )
        .await;
        self.execute("delete from users where openid is null").await;
        self.execute("alter table users alter column openid set not null")
            .await;
        self.execute("delete from _sqlx_migrations where version >= 8")
            .await;
    }

    /// Everything the three services logged.
    pub fn logs(&self) -> String {
        [&self.sim, &self.auth, &self.gateway]
            .iter()
            .map(|server| server.log())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs of the failed test are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The seed client's body for `wxsmallusersave` from what the simulator produced.
pub fn save_body(appid: &str, uuid: &str, kind: &str, data: &Value) -> Value {
    let mut body = json!({
        "appid": appid,
        "uuid": uuid,
        "type": kind,
        "encryptedData": data["encryptedData"],
        "iv": data["iv"],
    });
    if !data["rawData"].is_null() {
        body["rawData"] = data["rawData"].clone();
        body["signature"] = data["signature"].clone();
    }
    body
}

/// Status and JSON envelope of a gateway answer; panics when the body is not an envelope.
pub async fn envelope(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("the body can be read");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: the body is not JSON: {text}"));
    assert!(
        body["code"].is_i64() && body["msg"].is_string() && body.get("data").is_some(),
        "not an envelope: {body}"
    );
    (status, body)
}
