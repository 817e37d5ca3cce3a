//! The simulator's side of a test: what `wx.login()`, `wx.getUserInfo()` and the
//! `getPhoneNumber` button would hand a mini-program, faults to inject, and what WeChat saw.

use serde_json::{Value, json};

use super::Stack;

impl Stack {
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
        self.sim_stats().await["exchanges"]
            .as_u64()
            .expect("exchanges is a number")
    }

    /// The simulator's counters: `exchanges`, `token_fetches` and `tokens_issued` (per
    /// appid), `token_refusals`.
    pub async fn sim_stats(&self) -> Value {
        self.http
            .get(format!("{}/sim/stats", self.sim.url()))
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("stats are json")
    }

    /// The `getPhoneNumber` button: a code for the user's number (country code 86).
    pub async fn mint_phone_code(&self, appid: &str, openid: &str, pure_number: &str) -> String {
        let body = json!({
            "appid": appid, "openid": openid,
            "phone_number": pure_number, "pure_phone_number": pure_number, "country_code": "86",
        });
        self.sim_post("/sim/phone_code", body).await["code"]
            .as_str()
            .expect("the simulator mints a phone code")
            .to_owned()
    }

    /// Ends an app's access_tokens at WeChat: `expire` (42001) or `invalidate` (40001).
    pub async fn end_access_tokens(&self, appid: &str, action: &str) {
        self.sim_post(
            "/sim/access_token",
            json!({ "appid": appid, "action": action }),
        )
        .await;
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
}

/// One app's figure of a per-appid counter of [`Stack::sim_stats`] (0 when absent).
pub fn sim_count(stats: &Value, counter: &str, appid: &str) -> u64 {
    stats[counter][appid].as_u64().unwrap_or(0)
}
