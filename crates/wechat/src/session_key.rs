//! `checksession` and `resetusersessionkey`: asking WeChat whether a stored session_key is
//! still the user's current one, and replacing it. Both are signed with HMAC-SHA256 keyed by
//! the session_key's base64 TEXT (not its 16 decoded bytes) over an empty message.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{AccessToken, SessionKey, WeChatClient, WeChatError};

/// `hex(HMAC-SHA256(key = session_key text, message))`, lowercase, as WeChat checks it.
pub fn session_signature(session_key: &SessionKey, message: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(session_key.expose_base64().as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

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
            Some(key) if !key.is_empty() => Ok(SessionKey::new(key)),
            _ => Err(WeChatError::BadResponse("body lacks session_key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tencent's worked examples (vectors.md): keyed by the 24 ASCII bytes of the text.
    #[test]
    fn the_signature_matches_tencents_worked_examples() {
        let key = SessionKey::new("o0q0otL8aEzpcZL/FT9WsQ==".into());
        assert_eq!(
            session_signature(&key, br#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
        assert_eq!(
            session_signature(&key, b""),
            "46e043c5525c2d817c44be603d30837a808a1d930d038f6fdc3e62a201fed128"
        );
    }
}
