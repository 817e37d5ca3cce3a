//! `POST /cgi-bin/stable_token`: the secret in the body, never in a URL (so never in an
//! access log).

use serde::Deserialize;
use serde_json::json;

use super::{WeChatClient, WeChatError};
use crate::{AccessToken, AppId, AppSecret, StableToken};

/// The longest lifetime WeChat gives a token, in seconds. A longer one is not believed (it
/// would be kept past WeChat's own expiry, or overflow the database's interval): the token
/// is used for at most this long, then fetched again, which `stable_token` answers with the
/// same token while it lives.
const MAX_EXPIRES_IN: i64 = 7200;

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
                    expires_in: expires_in.min(MAX_EXPIRES_IN),
                })
            }
            _ => Err(WeChatError::BadResponse(
                "body lacks access_token or expires_in",
            )),
        }
    }
}
