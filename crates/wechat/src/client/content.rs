//! `POST /wxa/msg_sec_check` (version 2): WeChat's content check of text a user typed, for
//! a nickname filled in outside WeChat's own input (which checks only inside the client).

use serde::Deserialize;
use serde_json::json;

use super::{WeChatClient, WeChatError};
use crate::AccessToken;

/// What WeChat suggests doing with the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suggest {
    /// Nothing wrong.
    Pass,
    /// A person should look at it.
    Review,
    /// Refuse it.
    Risky,
}

/// The scene of a check: what the text is for. WeChat judges each by its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scene {
    /// 1: a profile (nickname, signature).
    Profile,
}

impl Scene {
    fn number(self) -> u8 {
        match self {
            Self::Profile => 1,
        }
    }
}

/// What WeChat said of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentCheck {
    /// Its suggestion.
    pub suggest: Suggest,
    /// Its label: 100 normal, 10001 ads, 20001 politics, 20002 porn, 20003 abuse, 20006
    /// crime, 20008 fraud, 20012 vulgar, 20013 copyright, 21000 other.
    pub label: i64,
}

#[derive(Deserialize)]
struct RawResult {
    suggest: String,
    #[serde(default)]
    label: i64,
}

#[derive(Deserialize)]
struct RawCheck {
    result: Option<RawResult>,
}

impl WeChatClient {
    /// Checks `content` written by the user `openid` (who must have opened the mini-program
    /// within the last two hours: else 61010) for `scene`. `nickname` is also sent as the
    /// text's author name when the content is one.
    pub async fn msg_sec_check(
        &self,
        token: &AccessToken,
        openid: &str,
        scene: Scene,
        content: &str,
        nickname: Option<&str>,
    ) -> Result<ContentCheck, WeChatError> {
        let mut body = json!({
            "version": 2,
            "openid": openid,
            "scene": scene.number(),
            "content": content,
        });
        if let Some(nickname) = nickname {
            body["nickname"] = nickname.into();
        }
        let raw: RawCheck = self
            .fetch(
                self.http
                    .post(self.urls.msg_sec_check.clone())
                    .query(&[("access_token", token.expose())])
                    .json(&body),
                "body is not msg_sec_check json",
            )
            .await?;
        let result = raw
            .result
            .ok_or(WeChatError::BadResponse("body lacks result"))?;
        let suggest = match result.suggest.as_str() {
            "pass" => Suggest::Pass,
            "review" => Suggest::Review,
            "risky" => Suggest::Risky,
            _ => {
                return Err(WeChatError::BadResponse(
                    "result.suggest is not pass, review or risky",
                ));
            }
        };
        Ok(ContentCheck {
            suggest,
            label: result.label,
        })
    }
}
