//! `POST /cgi-bin/stable_token`: an app's access_token, the secret in the body (never in a
//! URL, so never in an access log).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::{AppId, AppSecret, WeChatClient, WeChatError};

/// An app's access_token: a secret, redacted in `Debug`, with no `Display`.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token (as WeChat gave it, or unsealed from storage).
    pub fn new(token: String) -> Self {
        Self(SecretString::from(token))
    }

    /// The token, to send to WeChat or to seal; never to log.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// What `stable_token` returns.
#[derive(Debug)]
pub struct StableToken {
    /// The token.
    pub token: AccessToken,
    /// Its REMAINING lifetime in seconds (not always 7200: WeChat hands out the current
    /// token until it rotates it, five minutes before it expires).
    pub expires_in: i64,
}

#[derive(Deserialize)]
struct RawStableToken {
    access_token: Option<String>,
    expires_in: Option<i64>,
}

impl WeChatClient {
    /// The app's stable access_token. `force_refresh` makes WeChat issue a new one (and end
    /// the old): WeChat allows it rarely, so only an operator should ask for it.
    pub async fn stable_token(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        force_refresh: bool,
    ) -> Result<StableToken, WeChatError> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": appid.as_str(),
            "secret": secret.expose(),
            "force_refresh": force_refresh,
        });
        let raw: RawStableToken = self
            .fetch(
                self.http.post(self.urls.stable_token.clone()).json(&body),
                "body is not stable_token json",
            )
            .await?;
        match (raw.access_token, raw.expires_in) {
            (Some(token), Some(expires_in)) if !token.is_empty() && expires_in > 0 => {
                Ok(StableToken {
                    token: AccessToken::new(token),
                    expires_in,
                })
            }
            _ => Err(WeChatError::BadResponse(
                "body lacks access_token or expires_in",
            )),
        }
    }
}
