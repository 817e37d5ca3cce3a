//! What the service asks WeChat with an app's access_token on a user's behalf: the phone
//! number behind a `getPhoneNumber` code, and (operators) the state of each app's token.

use std::sync::Arc;

use wxauth_wechat::{AppId, PhoneCode, WeChatClient};

use crate::{
    access_tokens::AccessTokens,
    domain::{Bearer, User, UserUpdate},
    error::AuthError,
    store::{PgStore, StoreError, access_tokens::TokenStatus},
    users::Users,
};

/// The platform service.
#[derive(Debug)]
pub struct Platform {
    access: AccessTokens,
    wechat: WeChatClient,
    users: Arc<Users>,
    store: PgStore,
}

impl Platform {
    /// The service.
    pub fn new(
        access: AccessTokens,
        wechat: WeChatClient,
        users: Arc<Users>,
        store: PgStore,
    ) -> Self {
        Self {
            access,
            wechat,
            users,
            store,
        }
    }

    /// Binds the phone number behind `code` to the holder of `token`. WeChat is asked to
    /// check that the code is this user's; nothing is written unless it answered.
    pub async fn bind_phone(&self, token: &Bearer, code: &PhoneCode) -> Result<User, AuthError> {
        let user = self.users.me(token).await?;
        let appid = AppId::parse("appid", &user.appid).map_err(AuthError::internal)?;
        let (wechat, openid) = (&self.wechat, user.openid.as_str());
        let info = self
            .access
            .call(&appid, "getuserphonenumber", |access| async move {
                wechat.phone_number(&access, code, Some(openid)).await
            })
            .await?;
        if info.watermark.appid != appid.as_str() {
            return Err(AuthError::WeChatFailed { errcode: None });
        }
        let phone = UserUpdate::from_phone(info, None)
            .phone
            .ok_or(AuthError::WeChatFailed { errcode: None })?;
        self.store
            .set_phone(user.id, &phone)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Each app's token status, for operators.
    pub async fn access_tokens(&self) -> Result<Vec<TokenStatus>, AuthError> {
        Ok(self.store.access_token_statuses().await?)
    }

    /// Refreshes the tokens about to expire (the upkeep loop).
    pub async fn refresh_expiring(&self) -> Result<usize, StoreError> {
        self.access.refresh_expiring().await
    }
}
