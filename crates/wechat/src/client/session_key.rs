//! `checksession` and `resetusersessionkey`, signed with [`crate::session_signature`].

use serde::Deserialize;

use super::{WeChatClient, WeChatError};
use crate::{AccessToken, SessionKey, session_signature};

#[derive(Deserialize)]
struct Checked {}

#[derive(Deserialize)]
struct Reset {
    session_key: Option<String>,
}

impl WeChatClient {
    /// Whether `session_key` is still the user's current one: `Ok(())` when it is; WeChat's
    /// 87009 ([`crate::Errcode::SessionSignatureInvalid`]) when it is not.
    pub async fn check_session(
        &self,
        token: &AccessToken,
        openid: &str,
        session_key: &SessionKey,
    ) -> Result<(), WeChatError> {
        let signature = session_signature(session_key, b"");
        let _: Checked = self
            .fetch(
                self.http.get(self.urls.check_session.clone()).query(&[
                    ("access_token", token.expose()),
                    ("signature", &signature),
                    ("openid", openid),
                    ("sig_method", "hmac_sha256"),
                ]),
                "body is not checksession json",
            )
            .await?;
        Ok(())
    }

    /// Makes WeChat replace the user's session_key (signed with the current one); returns
    /// the new key. The old one stops working at once.
    pub async fn reset_session_key(
        &self,
        token: &AccessToken,
        openid: &str,
        session_key: &SessionKey,
    ) -> Result<SessionKey, WeChatError> {
        let signature = session_signature(session_key, b"");
        let reset: Reset = self
            .fetch(
                self.http.get(self.urls.reset_session_key.clone()).query(&[
                    ("access_token", token.expose()),
                    ("openid", openid),
                    ("signature", &signature),
                    ("sig_method", "hmac_sha256"),
                ]),
                "body is not resetusersessionkey json",
            )
            .await?;
        match reset.session_key {
            Some(key) if !key.is_empty() => SessionKey::from_wechat(key).ok_or(
                WeChatError::BadResponse("body's session_key is not base64 of 16 bytes"),
            ),
            _ => Err(WeChatError::BadResponse("body lacks session_key")),
        }
    }
}
