//! What the service asks WeChat with an app token on a user's behalf: the phone
//! number behind a `getPhoneNumber` code, whether a kept session_key is still current, its
//! reset, and (operators) the state of each app's token.

use std::sync::Arc;

use wxauth_wechat::{AppId, PhoneCode, WeChatClient};

use tracing::info;

use crate::{
    app_tokens::AppTokens,
    domain::{Bearer, CallContext, TokenStatus, User, UserUpdate},
    error::AuthError,
    login_sessions::LoginSessions,
    store::{PgStore, StoreError},
    users::Users,
};

/// What WeChat says of the session_key kept for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// It is the user's current one.
    Current,
    /// It is not any more (87009).
    Stale,
    /// None is kept.
    NoneKept,
}

/// Calls to WeChat made with an app token.
#[derive(Debug)]
pub struct WeChatCalls {
    access: AppTokens,
    wechat: WeChatClient,
    users: Arc<Users>,
    sessions: Arc<LoginSessions>,
    store: PgStore,
}

impl WeChatCalls {
    /// The service.
    pub fn new(
        access: AppTokens,
        wechat: WeChatClient,
        users: Arc<Users>,
        sessions: Arc<LoginSessions>,
        store: PgStore,
    ) -> Self {
        Self {
            access,
            wechat,
            users,
            sessions,
            store,
        }
    }

    /// Binds the phone number behind `code` to the holder of `token`. WeChat is asked to
    /// check that the code is this user's; nothing is written unless it answered.
    pub async fn bind_phone(
        &self,
        token: &Bearer,
        code: &PhoneCode,
        context: &CallContext,
    ) -> Result<User, AuthError> {
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
            .set_phone(user.id, &phone, context)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Whether the session_key kept for a user is still WeChat's current one.
    pub async fn check_session_key(&self, user_id: i64) -> Result<KeyState, AuthError> {
        let user = self.users.get(user_id).await?;
        let appid = AppId::parse("appid", &user.appid).map_err(AuthError::internal)?;
        let Some((key, _)) = self.sessions.latest_key(&user.appid, &user.openid).await? else {
            return Ok(KeyState::NoneKept);
        };
        let (wechat, openid, key) = (&self.wechat, user.openid.as_str(), &key);
        let checked = self
            .access
            .call(&appid, "checksession", |access| async move {
                wechat.check_session(&access, openid, key).await
            })
            .await;
        match checked {
            Ok(()) => Ok(KeyState::Current),
            Err(AuthError::SessionKeyInvalid) => Ok(KeyState::Stale),
            Err(err) => Err(err),
        }
    }

    /// Has WeChat replace a user's session_key; keeps the new one and ends the user's open
    /// login sessions.
    pub async fn reset_session_key(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<(), AuthError> {
        let user = self.users.get(user_id).await?;
        let appid = AppId::parse("appid", &user.appid).map_err(AuthError::internal)?;
        let (key, sealed) = self
            .sessions
            .latest_key(&user.appid, &user.openid)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        let (wechat, openid, key) = (&self.wechat, user.openid.as_str(), &key);
        let new = self
            .access
            .call(&appid, "resetusersessionkey", |access| async move {
                wechat.reset_session_key(&access, openid, key).await
            })
            .await?;
        let replaced = self
            .sessions
            .replace_key(&user.appid, &user.openid, &sealed, &new, context)
            .await?;
        info!(%appid, user_id, replaced, "session_key reset");
        Ok(())
    }

    /// Each app's token status, for operators.
    pub async fn app_tokens(&self) -> Result<Vec<TokenStatus>, AuthError> {
        Ok(self.store.app_token_statuses().await?)
    }

    /// Refreshes the tokens about to expire (the upkeep loop).
    pub async fn refresh_expiring(&self) -> Result<usize, StoreError> {
        self.access.refresh_expiring().await
    }
}
