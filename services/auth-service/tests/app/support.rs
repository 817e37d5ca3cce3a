//! One service in process per test: a fresh database, the simulator, a manual clock.

use std::{future::pending, net::SocketAddr, sync::Arc};

use auth_service::{
    Application,
    clock::{Clock, ManualClock},
    settings::Settings,
    store::{PgStore, Pool},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use wechat_sim::{App as SimApp, Sim, Watermark};
use wxauth_harness::{db::TestDb, random_hex};
use wxauth_proto::{v1::auth_service_client::AuthServiceClient, wire::CallerKey};

/// The app of WeChat's official vector.
pub const APP: &str = "wx4f4bc4dec97d474b";
/// An access-token lifetime short enough to matter, long enough never to pass by itself.
pub const ACCESS_TTL: i64 = 600;

/// A client presenting a caller key.
pub type Client = AuthServiceClient<InterceptedService<Channel, CallerKey>>;

/// A running service and what a test needs around it.
pub struct TestApp {
    /// The clock every expiry in the service is judged by.
    pub clock: ManualClock,
    /// The simulator, for minting codes and encrypting profiles.
    pub sim: Sim,
    /// The service's own database.
    pub db: TestDb,
    /// Where the service listens.
    pub addr: SocketAddr,
    /// Where its metrics and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// The gateway's key (`login`), an internal service's (`validate`), an operator's.
    pub keys: [String; 3],
    /// The settings the service was started with, to start a replica.
    args: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

/// `args` with each `--name=value` of `changes` replacing the flag of that name.
fn with(mut args: Vec<String>, changes: &[&str]) -> Vec<String> {
    for change in changes {
        let name = change.split('=').next().unwrap_or(change);
        args.retain(|arg| arg.split('=').next() != Some(name));
        args.push((*change).to_owned());
    }
    args
}

/// A new random 32-byte key, base64.
pub fn key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    STANDARD.encode(bytes)
}

impl TestApp {
    /// Builds and runs a service; `extra` flags go to its settings.
    pub async fn spawn(extra: &[&str]) -> Self {
        let db = TestDb::create().await;
        let secret = random_hex(16);
        let sim = Sim::new(vec![SimApp {
            appid: APP.into(),
            secret: secret.clone(),
            platform: None,
        }]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(wxauth_process::http::serve(
            listener,
            wechat_sim::router(sim.clone()),
            pending(),
        ));
        let keys = [
            format!("gw-{}", random_hex(16)),
            format!("svc-{}", random_hex(16)),
            format!("ops-{}", random_hex(16)),
        ];
        let args: Vec<String> = vec![
            "auth-service".into(),
            format!("--database-url={}", db.url),
            "--grpc-addr=127.0.0.1:0".into(),
            "--metrics-addr=127.0.0.1:0".into(),
            format!("--apps={APP}:{secret}"),
            format!("--wechat-api-base={sim_url}"),
            format!("--session-key-keys=k1:{}", key()),
            format!("--token-signing-keys=t1:{}", key()),
            format!("--access-ttl-secs={ACCESS_TTL}"),
            format!(
                "--callers=gateway:login:{},orders:validate:{},ops:admin+validate:{}",
                keys[0], keys[1], keys[2]
            ),
            "--shutdown-grace-secs=1".into(),
        ];
        Self::run(with(args, extra), ManualClock::new(), sim, db, keys).await
    }

    async fn run(
        args: Vec<String>,
        clock: ManualClock,
        sim: Sim,
        db: TestDb,
        keys: [String; 3],
    ) -> Self {
        let config = Settings::try_parse_from(&args)
            .unwrap()
            .into_config()
            .unwrap();
        let app = Application::build_with(config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let addr = app.grpc_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            clock,
            sim,
            db,
            addr,
            metrics_addr,
            keys,
            args,
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    /// A second service on the same database, settings, keys, simulator and clock.
    pub async fn replica(&self) -> Self {
        self.replica_with(&[]).await
    }

    /// A replica with some settings changed (`--name=value` flags).
    pub async fn replica_with(&self, changes: &[&str]) -> Self {
        Self::run(
            with(self.args.clone(), changes),
            self.clock.clone(),
            self.sim.clone(),
            self.db.same(),
            self.keys.clone(),
        )
        .await
    }

    /// The simulator's counters (`GET /sim/stats`): `exchanges` and the others.
    pub async fn sim_stats(&self) -> Value {
        let base = self
            .args
            .iter()
            .find_map(|arg| arg.strip_prefix("--wechat-api-base="))
            .expect("the service was given the simulator");
        let text = reqwest::get(format!("{base}/sim/stats"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A metric's value as this service exposes it (`name` with its labels, if any).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
    }

    /// A gRPC channel to the service.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client presenting key `which` (0 gateway, 1 internal service, 2 operator).
    pub async fn client(&self, which: usize) -> Client {
        AuthServiceClient::with_interceptor(
            self.channel().await,
            CallerKey::new(&self.keys[which]).unwrap(),
        )
    }

    /// `wx.login()` for a user of the app.
    pub fn code(&self, openid: &str) -> String {
        self.sim.mint_code(APP, openid, Some(format!("u-{openid}")))
    }

    /// `wx.getUserInfo()` for the user, watermarked at the service's (manual) time.
    pub fn user_info(&self, openid: &str, nick: &str) -> wechat_sim::SignedUserInfo {
        let Value::Object(profile) = json!({"nickName": nick, "gender": 1}) else {
            unreachable!()
        };
        self.sim
            .user_info(
                APP,
                openid,
                profile,
                Watermark {
                    timestamp: Some(self.clock.now()),
                    ..Watermark::default()
                },
            )
            .unwrap()
    }

    /// A store on the service's database that tells time by `clock` (a replica whose clock
    /// differs, or a statement that ran at another moment).
    pub fn store_with_clock(&self, clock: ManualClock) -> PgStore {
        PgStore::connect_lazy(
            &self.db.url,
            2,
            std::time::Duration::from_secs(5),
            std::sync::Arc::new(clock),
        )
        .unwrap()
    }

    /// A store on the service's database, for looking at what it wrote.
    pub fn store(&self) -> PgStore {
        PgStore::connect_lazy(
            &self.db.url,
            2,
            std::time::Duration::from_secs(5),
            std::sync::Arc::new(self.clock.clone()),
        )
        .unwrap()
    }

    /// A store on the service's database and clock, sealing with the service's key ring.
    pub fn store_with_keys(&self) -> PgStore {
        let key = self
            .args
            .iter()
            .find_map(|arg| arg.strip_prefix("--session-key-keys=k1:"))
            .expect("the service has one session key");
        let key: [u8; 32] = STANDARD.decode(key).unwrap().try_into().unwrap();
        let keyring = auth_service::secrets::Keyring::new(vec![("k1".into(), key)]).unwrap();
        self.store().with_keyring(std::sync::Arc::new(keyring))
    }

    /// Asks the service to stop, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Asks the service to stop and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.await.unwrap();
        }
    }
}

/// A fresh, migrated database and a store on a pool of one connection, which the test can
/// take (`Pool::lease`) to leave the store none to spare.
pub async fn store_of_one_connection() -> (TestDb, Pool, PgStore) {
    let db = TestDb::create().await;
    let options: PgConnectOptions = db.url.parse().unwrap();
    let pool = Pool::new(options, 1);
    let store = PgStore::new(
        pool.clone(),
        std::time::Duration::from_secs(5),
        std::sync::Arc::new(auth_service::clock::SystemClock),
    );
    store.migrate().await.unwrap();
    (db, pool, store)
}
