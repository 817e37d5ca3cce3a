//! The seed's login as a mini-program does it: `wx.login()`, `GET /wxauth/getsessionkey`,
//! `wx.getUserInfo()`, `POST /wxauth/wxsmallusersave`. Each flow has a fresh code and a
//! profile encrypted under the session_key of its login; it is a new user, or one of a fixed
//! set of users logging in again.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde_json::{Value, json};
use wechat_sim::{Sim, Watermark};
use wxauth_harness::seed;

use crate::system::APP;

/// What one flow needs.
#[derive(Clone)]
pub struct Flow {
    /// The fake WeChat.
    pub sim: Sim,
    /// A keep-alive HTTP client.
    pub http: reqwest::Client,
    /// `http://<gateway>`.
    pub gateway: String,
    /// Makes openids unique across runs.
    pub tag: String,
    /// Counts flows for unique openids.
    pub counter: Arc<AtomicU64>,
    /// How many users the flows cycle through; 0: each flow is a new user.
    pub users: u64,
    /// Seeded users (see [`wxauth_harness::seed`]) of the build's database: when not 0,
    /// each flow logs in one of them again, picked at random, and `users` is not used.
    pub seeded: u64,
}

/// A well-spread 64-bit value of `n` (splitmix64's finaliser): the seeded user a flow
/// picks, the same sequence for every build so no build draws luckier users.
fn spread(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn profile() -> serde_json::Map<String, Value> {
    let Value::Object(profile) = json!({
        "nickName": "Bench",
        "gender": 1,
        "language": "zh_CN",
        "city": "Guangzhou",
        "province": "Guangdong",
        "country": "CN",
        "avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/bench/132",
    }) else {
        unreachable!("a json object literal")
    };
    profile
}

impl Flow {
    /// One whole login; true when both calls answered 10000.
    pub async fn run(self) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let (openid, unionid) = if self.seeded > 0 {
            let n = spread(n) % self.seeded;
            (seed::openid(n), seed::unionid(n))
        } else {
            let n = if self.users > 0 { n % self.users } else { n };
            (format!("o-{}-{n}", self.tag), format!("u-{}-{n}", self.tag))
        };
        let code = self.sim.mint_code(APP, &openid, Some(unionid));
        let Some(session) = self
            .envelope(
                self.http
                    .get(format!("{}/wxauth/getsessionkey", self.gateway))
                    .query(&[("appid", APP), ("code", &code)]),
            )
            .await
        else {
            return false;
        };
        let Some(uuid) = session.as_str() else {
            return false;
        };
        let Ok(info) = self
            .sim
            .user_info(APP, &openid, profile(), Watermark::default())
        else {
            return false;
        };
        let body = json!({
            "appid": APP,
            "uuid": uuid,
            "type": "userinfo",
            "encryptedData": info.encrypted_data,
            "iv": info.iv,
            "rawData": info.raw_data,
            "signature": info.signature,
        });
        let saved = self
            .envelope(
                self.http
                    .post(format!("{}/wxauth/wxsmallusersave", self.gateway))
                    .json(&body),
            )
            .await;
        saved.is_some_and(|data| data["token"].as_str().is_some_and(|t| !t.is_empty()))
    }

    /// The `data` of a 10000 envelope.
    async fn envelope(&self, request: reqwest::RequestBuilder) -> Option<Value> {
        let answer: Value = request.send().await.ok()?.json().await.ok()?;
        (answer["code"] == 10000).then(|| answer["data"].clone())
    }
}

/// Logs in `count` users with `POST /v1/login` and returns their access tokens.
pub async fn access_tokens(
    sim: &Sim,
    http: &reqwest::Client,
    gateway: &str,
    tag: &str,
    count: usize,
) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let code = sim.mint_code(APP, &format!("o-{tag}-{n}"), None);
        let answer: Option<Value> = async {
            http.post(format!("{gateway}/v1/login"))
                .json(&json!({ "appid": APP, "code": code }))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        if let Some(token) = answer
            .as_ref()
            .and_then(|answer| answer["data"]["access_token"].as_str())
        {
            tokens.push(token.to_owned());
        }
    }
    tokens
}
