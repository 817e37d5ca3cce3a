//! The whole system for one test: a database, the simulator, the auth-service and the
//! gateway, with the clients each kind of caller uses.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::transport::Channel;
use wxauth_proto::v1::auth_service_client::AuthServiceClient;

use crate::{db::TestDb, process::Proc, random_hex};

/// The main test app (the appid of WeChat's official vector).
pub const APP: &str = "wx4f4bc4dec97d474b";
/// A second app served by the same deployment.
pub const APP2: &str = "wx0123456789abcdef";
/// An app the auth-service is configured for with the wrong secret (WeChat answers 40125).
pub const APP_BAD_SECRET: &str = "wx00000000000000ba";

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// The auth-service's WECHAT_TIMEOUT_MS.
    pub wechat_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            wechat_timeout_ms: 5000,
        }
    }
}

/// A running system.
pub struct Stack {
    /// The gateway, what mini-programs call.
    pub gateway: Proc,
    /// The auth-service, what internal services call.
    pub auth: Proc,
    /// The WeChat simulator.
    pub sim: Proc,
    /// The test's database.
    pub db: TestDb,
    /// Every secret configured or handed out in this test, for leak scans.
    pub secrets: Vec<String>,
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
        let db = TestDb::create().await;
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

        let sim = Proc::spawn(
            "wechat-sim",
            &[
                ("WECHAT_SIM_ADDR", "127.0.0.1:0".into()),
                (
                    "WECHAT_SIM_APPS",
                    format!(
                        "{APP}:{secret},{APP2}:{secret2},{APP_BAD_SECRET}:{}",
                        random_hex(16)
                    ),
                ),
            ],
            &dir,
        );
        let auth = Proc::spawn(
            "auth-service",
            &[
                ("DATABASE_URL", db.url.clone()),
                ("WXAUTH_GRPC_ADDR", "127.0.0.1:0".into()),
                (
                    "WXAUTH_APPS",
                    format!("{APP}:{secret},{APP2}:{secret2},{APP_BAD_SECRET}:{bad_secret}"),
                ),
                ("WECHAT_API_BASE", sim.url()),
                ("WECHAT_TIMEOUT_MS", options.wechat_timeout_ms.to_string()),
                ("WXAUTH_SESSION_KEY_KEYS", format!("k1:{session_key_key}")),
            ],
            &dir,
        );
        let gateway = Proc::spawn(
            "gateway",
            &[
                ("GATEWAY_HTTP_ADDR", "127.0.0.1:0".into()),
                ("AUTH_GRPC_URL", auth.url()),
            ],
            &dir,
        );
        Self {
            gateway,
            auth,
            sim,
            db,
            secrets: vec![secret, secret2, bad_secret, session_key_key],
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// A gRPC client of the auth-service, as an internal service holds one.
    pub async fn grpc(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel().await)
    }

    /// A gRPC channel to the auth-service.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.auth.url())
            .expect("the address is a valid uri")
            .connect()
            .await
            .expect("the auth-service accepts gRPC connections")
    }

    /// `wx.login()` in the simulator: a new code for (appid, openid).
    pub async fn mint_code(&self, appid: &str, openid: &str, unionid: Option<&str>) -> String {
        let body = json!({ "appid": appid, "openid": openid, "unionid": unionid });
        let answer = self.sim_post("/sim/login", body).await;
        answer["code"]
            .as_str()
            .expect("the simulator mints a code")
            .to_owned()
    }

    /// A code for a user WeChat considers high risk.
    pub async fn mint_risky_code(&self, appid: &str, openid: &str) -> String {
        let body = json!({ "appid": appid, "openid": openid, "high_risk": true });
        self.sim_post("/sim/login", body).await["code"]
            .as_str()
            .expect("the simulator mints a code")
            .to_owned()
    }

    /// `wx.getUserInfo()` in the simulator: encryptedData, iv, rawData, signature.
    pub async fn user_info(&self, appid: &str, openid: &str, profile: Value) -> Value {
        self.sim_post(
            "/sim/userinfo",
            json!({ "appid": appid, "openid": openid, "profile": profile }),
        )
        .await
    }

    /// Any `/sim/` control call; panics unless it succeeds.
    pub async fn sim_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .expect("the simulator answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "simulator {path} answered {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Makes the simulator answer the next `times` exchanges with `errcode` after `delay_ms`.
    pub async fn fault(&self, errcode: Option<i64>, delay_ms: u64, times: u32) {
        self.sim_post(
            "/sim/faults",
            json!({ "errcode": errcode, "delay_ms": delay_ms, "times": times }),
        )
        .await;
    }

    /// How many times the simulator was asked to exchange a code.
    pub async fn exchanges(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/sim/stats", self.sim.url()))
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("stats are json");
        stats["exchanges"].as_u64().expect("exchanges is a number")
    }

    /// The user's live session_key, as WeChat (the simulator) knows it.
    pub async fn session_key(&self, appid: &str, openid: &str) -> String {
        let answer: Value = self
            .http
            .get(format!("{}/sim/session_key", self.sim.url()))
            .query(&[("appid", appid), ("openid", openid)])
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("json");
        answer["session_key"]
            .as_str()
            .expect("a session_key")
            .to_owned()
    }

    /// `GET /wxauth/getsessionkey` with raw query pairs; returns status and envelope.
    pub async fn get_session_key(&self, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/wxauth/getsessionkey", self.gateway.url()))
            .query(query)
            .send()
            .await
            .expect("the gateway answers");
        envelope(response).await
    }

    /// `POST /wxauth/wxsmallusersave` with a JSON body.
    pub async fn save_user(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/wxauth/wxsmallusersave", self.gateway.url()))
            .json(body)
            .send()
            .await
            .expect("the gateway answers");
        envelope(response).await
    }

    /// The whole seed flow for (appid, openid): code, session, profile, token. Returns the
    /// `data` of the final envelope.
    pub async fn login(&self, appid: &str, openid: &str, profile: Value) -> Value {
        let code = self.mint_code(appid, openid, None).await;
        let (status, session) = self
            .get_session_key(&[("appid", appid), ("code", &code)])
            .await;
        assert_eq!(status, StatusCode::OK, "{session}");
        let uuid = session["data"].as_str().expect("data is the session id");
        let data = self.user_info(appid, openid, profile).await;
        let (status, saved) = self
            .save_user(&save_body(appid, uuid, "userinfo", &data))
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        saved["data"].clone()
    }

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

    /// Everything the three processes logged.
    pub fn logs(&self) -> String {
        [&self.sim, &self.auth, &self.gateway]
            .iter()
            .map(|proc| proc.log())
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
