//! `POST /wxa/business/getuserphonenumber`: the phone number behind the code of the
//! `getPhoneNumber` button (the current way; not the login code).

use serde::Deserialize;
use serde_json::json;

use crate::{
    AccessToken, InvalidValue, WeChatClient, WeChatError, crypto::PhoneInfo, types::code_shaped,
};

/// The code the `getPhoneNumber` button gives: single use, five minutes.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneCode(String);

impl PhoneCode {
    /// Parses a code: 1 to 128 letters, digits, `_` or `-` (the shape of WeChat's codes).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        if code_shaped(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue {
                field,
                rule: "must be the code from the getPhoneNumber button: 1 to 128 letters, digits, '_' or '-'",
            })
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhoneCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneCode(<redacted>)")
    }
}

#[derive(Deserialize)]
struct RawPhone {
    phone_info: Option<PhoneInfo>,
}

impl WeChatClient {
    /// The phone number of the user who tapped the button. With `openid`, WeChat also
    /// checks the code belongs to that user.
    pub async fn phone_number(
        &self,
        token: &AccessToken,
        code: &PhoneCode,
        openid: Option<&str>,
    ) -> Result<PhoneInfo, WeChatError> {
        let mut body = json!({ "code": code.as_str() });
        if let Some(openid) = openid {
            body["openid"] = openid.into();
        }
        let raw: RawPhone = self
            .fetch(
                self.http
                    .post(self.urls.phone_number.clone())
                    .query(&[("access_token", token.expose())])
                    .json(&body),
                "body is not getuserphonenumber json",
            )
            .await?;
        raw.phone_info
            .ok_or(WeChatError::BadResponse("body lacks phone_info"))
    }
}
