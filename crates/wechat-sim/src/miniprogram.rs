//! The mini-program side of WeChat, as a library: what `wx.login()` and `wx.getUserInfo()`
//! hand a mini-program. The `/sim/` routes serve it over HTTP for tests; a load generator in
//! the same process calls it directly, so playing thousands of mini-programs costs no HTTP.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{crypto, state::Sim};

/// What `wx.getUserInfo()` returns: the profile encrypted under the user's current
/// session_key, and rawData with its signature.
#[derive(Debug, Clone, Serialize)]
pub struct SignedUserInfo {
    /// base64 AES-128-CBC ciphertext of the profile JSON with its watermark.
    #[serde(rename = "encryptedData")]
    pub encrypted_data: String,
    /// base64 iv.
    pub iv: String,
    /// The profile JSON, as the mini-program receives it.
    #[serde(rename = "rawData")]
    pub raw_data: String,
    /// `hex(sha1(rawData + session_key))`.
    pub signature: String,
}

/// Why the mini-program side could not produce data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiniProgramError {
    /// The user has no session_key: no code of theirs was exchanged yet.
    #[error("no session_key: exchange a code first")]
    NoSession,
    /// The stored session_key is not 16 bytes of base64 (a simulator bug).
    #[error("stored session_key is not 16 bytes")]
    BadKey,
}

/// Where a payload's watermark says it comes from, for tests of misuse.
#[derive(Debug, Clone, Default)]
pub struct Watermark {
    /// Another appid than the user's, as data meant for another app would carry.
    pub appid: Option<String>,
    /// Another time than now (Unix seconds).
    pub timestamp: Option<i64>,
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

impl Sim {
    /// `wx.login()`: a fresh code for (appid, openid); `unionid` when the app is bound to an
    /// Open Platform account.
    pub fn mint_code(&self, appid: &str, openid: &str, unionid: Option<String>) -> String {
        self.lock().mint_code(appid, openid, unionid, false)
    }

    /// `wx.getUserInfo()`: `profile` (nickName, avatarUrl, gender, ...) encrypted under the
    /// user's current session_key, with rawData and its signature.
    pub fn user_info(
        &self,
        appid: &str,
        openid: &str,
        profile: Map<String, Value>,
        watermark: Watermark,
    ) -> Result<SignedUserInfo, MiniProgramError> {
        let state = self.lock();
        let user = (appid.to_owned(), openid.to_owned());
        let session_key = state
            .session_keys
            .get(&user)
            .ok_or(MiniProgramError::NoSession)?;
        let raw_data = Value::Object(profile.clone()).to_string();
        let mut plaintext = Map::new();
        plaintext.insert("openId".into(), Value::String(openid.to_owned()));
        plaintext.extend(profile);
        if let Some(unionid) = state.unionids.get(&user) {
            plaintext.insert("unionId".into(), Value::String(unionid.clone()));
        }
        plaintext.insert(
            "watermark".into(),
            json!({
                "timestamp": watermark.timestamp.unwrap_or_else(unix_now),
                "appid": watermark.appid.as_deref().unwrap_or(appid),
            }),
        );
        let (encrypted_data, iv) =
            crypto::encrypt(session_key, Value::Object(plaintext).to_string().as_bytes())
                .ok_or(MiniProgramError::BadKey)?;
        Ok(SignedUserInfo {
            encrypted_data,
            iv,
            signature: crypto::sign(&raw_data, session_key),
            raw_data,
        })
    }
}
