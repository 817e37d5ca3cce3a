//! `POST /wxa/business/getuserphonenumber`: the phone number behind the code of the
//! `getPhoneNumber` button.

use serde::Deserialize;
use serde_json::json;

use super::{WeChatClient, WeChatError};
use crate::{AccessToken, PhoneCode, crypto::PhoneInfo};

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
