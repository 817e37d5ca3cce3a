//! The HTTP client for WeChat's server API, and the `jscode2session` call.
//!
//! The URL carries the app secret (WeChat's API leaves no choice), so it is never formatted
//! into a log line or an error: reqwest errors are stripped of their URL before they are
//! kept, and the success body (it carries the session_key) is parsed, never printed.

use std::time::Duration;

use serde::Deserialize;

use crate::{AppId, AppSecret, Errcode, JsCode, SessionKey, types::id_shaped};
pub use content::{ContentCheck, Scene, Suggest};

mod access_token;
mod content;
mod phone;
mod session_key;

/// What a successful `jscode2session` returns.
#[derive(Debug)]
pub struct Code2Session {
    /// The user's openid in this app.
    pub openid: String,
    /// The user's unionid, when the app is bound to an Open Platform account.
    pub unionid: Option<String>,
    /// The user's current session_key: a secret, redacted in `Debug`.
    pub session_key: SessionKey,
}

/// Why a `jscode2session` call failed. No variant carries the URL, the secret or a body.
#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    /// WeChat did not answer within the configured timeout. The code may or may not have
    /// been consumed: it must not be resent.
    #[error("wechat did not answer within {0:?}")]
    Timeout(Duration),
    /// WeChat could not be reached (DNS, connect, TLS, reset).
    #[error("wechat could not be reached")]
    Unreachable(#[source] reqwest::Error),
    /// WeChat answered with something that is not its API: a non-200 status, or a body that
    /// is not the documented JSON.
    #[error("wechat answered with an unexpected response ({0})")]
    BadResponse(&'static str),
    /// WeChat answered with an errcode.
    #[error("wechat answered errcode {errcode}")]
    Api {
        /// The errcode, classified.
        errcode: Errcode,
    },
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configured base is not a URL.
    #[error("the wechat api base is not a url")]
    Base,
    /// The HTTP client could not be set up (no TLS roots, say).
    #[error("the http client cannot be built")]
    Http(#[source] reqwest::Error),
}

/// The most of an answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A client for WeChat's server API, cheap to clone (one connection pool inside).
#[derive(Debug, Clone)]
pub struct WeChatClient {
    pub(crate) http: reqwest::Client,
    /// `{base}/sns/jscode2session`, parsed once: parsing a URL (IDNA included) on every call
    /// costs more than the rest of building the request.
    jscode2session: reqwest::Url,
    /// The other endpoints, parsed once too.
    pub(crate) urls: Endpoints,
    timeout: Duration,
}

/// WeChat's endpoints besides `jscode2session`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// `POST /cgi-bin/stable_token`.
    pub(crate) stable_token: reqwest::Url,
    /// `POST /wxa/business/getuserphonenumber`.
    pub(crate) phone_number: reqwest::Url,
    /// `GET /wxa/checksession`.
    pub(crate) check_session: reqwest::Url,
    /// `GET /wxa/resetusersessionkey`.
    pub(crate) reset_session_key: reqwest::Url,
    /// `POST /wxa/msg_sec_check`.
    pub(crate) msg_sec_check: reqwest::Url,
}

/// Every WeChat answer carries these when it failed (and sometimes `errcode: 0` when not).
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    errcode: Option<i64>,
}

/// The raw `jscode2session` answer. Every field is optional: WeChat sends either the
/// success fields or `errcode`/`errmsg`, and sometimes `errcode: 0` with success.
#[derive(Deserialize)]
struct RawCode2Session {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
}

impl WeChatClient {
    /// Builds a client for `base` (`https://api.weixin.qq.com`, or the simulator), with an
    /// overall `timeout` per call and a shorter connect timeout.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            // WeChat's API never redirects. A redirect comes from something in between (an
            // egress proxy, a captive portal, a hijacked name), and following one would send
            // the code, the app secret (in stable_token's body, resent on a 307) or a
            // session_key check to wherever it points: an answer that is not WeChat's JSON.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| BuildError::Http(err.without_url()))?;
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
                .map_err(|_| BuildError::Base)
        };
        Ok(Self {
            http,
            jscode2session: url("/sns/jscode2session")?,
            urls: Endpoints {
                stable_token: url("/cgi-bin/stable_token")?,
                phone_number: url("/wxa/business/getuserphonenumber")?,
                check_session: url("/wxa/checksession")?,
                reset_session_key: url("/wxa/resetusersessionkey")?,
                msg_sec_check: url("/wxa/msg_sec_check")?,
            },
            timeout,
        })
    }

    /// Sends `request` and reads WeChat's answer as `T`, after its errcode: a non-zero
    /// errcode is [`WeChatError::Api`]; anything that is not WeChat's JSON is
    /// [`WeChatError::BadResponse`]. Neither the URL (it may carry an access_token) nor the
    /// body (it may carry a secret) reaches an error.
    pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<T, WeChatError> {
        let body = self.answer(request).await?;
        let status: Status =
            serde_json::from_slice(&body).map_err(|_| WeChatError::BadResponse(what))?;
        if let Some(errcode) = status.errcode.filter(|&code| code != 0) {
            return Err(WeChatError::Api {
                errcode: Errcode::from_raw(errcode),
            });
        }
        serde_json::from_slice(&body).map_err(|_| WeChatError::BadResponse(what))
    }

    /// Exchanges a `wx.login()` code for the user's openid, unionid and session_key.
    ///
    /// Called at most once per code: the caller must make sure of that, since a retry after
    /// a timeout or a `-1` risks WeChat's 40163.
    pub async fn code2session(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        code: &JsCode,
    ) -> Result<Code2Session, WeChatError> {
        let request = self.http.get(self.jscode2session.clone()).query(&[
            ("appid", appid.as_str()),
            ("secret", secret.expose()),
            ("js_code", code.as_str()),
            ("grant_type", "authorization_code"),
        ]);
        let body = self.answer(request).await?;
        let raw: RawCode2Session = serde_json::from_slice(&body)
            .map_err(|_| WeChatError::BadResponse("body is not jscode2session json"))?;
        if let Some(errcode) = raw.errcode.filter(|&code| code != 0) {
            return Err(WeChatError::Api {
                errcode: Errcode::from_raw(errcode),
            });
        }
        let (Some(openid), Some(session_key)) = (
            raw.openid.filter(|id| !id.is_empty()),
            raw.session_key.filter(|key| !key.is_empty()),
        ) else {
            return Err(WeChatError::BadResponse("body lacks openid or session_key"));
        };
        let unionid = raw.unionid.filter(|id| !id.is_empty());
        if !id_shaped(&openid) || unionid.as_deref().is_some_and(|id| !id_shaped(id)) {
            return Err(WeChatError::BadResponse(
                "body's openid or unionid is not an id",
            ));
        }
        let session_key = SessionKey::from_wechat(session_key).ok_or(WeChatError::BadResponse(
            "body's session_key is not base64 of 16 bytes",
        ))?;
        Ok(Code2Session {
            openid,
            unionid,
            session_key,
        })
    }

    /// Sends `request` and reads the body of a successful answer, at most
    /// [`MAX_ANSWER_BYTES`] of it: WeChat's answers are a few hundred bytes, and something
    /// else answering in its place must not fill the memory within the timeout.
    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, WeChatError> {
        let mut response = request.send().await.map_err(|err| self.classify(err))?;
        if !response.status().is_success() {
            return Err(WeChatError::BadResponse("non-success http status"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.classify(err))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(WeChatError::BadResponse("body too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn classify(&self, err: reqwest::Error) -> WeChatError {
        if err.is_timeout() {
            WeChatError::Timeout(self.timeout)
        } else if err.is_decode() || err.is_body() {
            WeChatError::BadResponse("body could not be read")
        } else {
            WeChatError::Unreachable(err.without_url())
        }
    }
}
