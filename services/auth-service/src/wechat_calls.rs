//! What the service asks WeChat with an app token on a user's behalf: the phone
//! number behind a `getPhoneNumber` code, the content check of a nickname, whether a kept
//! session_key is still current, its reset, and (operators) the state of each app's token.

use std::sync::Arc;

use wxauth_wechat::{AppId, PhoneCode, Scene, Suggest, WeChatClient};

use tracing::info;

use crate::{
    app_tokens::AppTokens,
    domain::{Bearer, CallContext, TokenStatus, User, UserUpdate},
    error::AuthError,
    login_sessions::LoginSessions,
    metrics::Metrics,
    secrets,
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
    metrics: Arc<Metrics>,
}

/// The parts of [`WeChatCalls`].
#[derive(Debug)]
pub struct WeChatParts {
    /// Each app's token.
    pub access: AppTokens,
    /// WeChat.
    pub wechat: WeChatClient,
    /// The users.
    pub users: Arc<Users>,
    /// The login sessions and kept session_keys.
    pub sessions: Arc<LoginSessions>,
    /// The store.
    pub store: PgStore,
    /// Where phone bindings are counted.
    pub metrics: Arc<Metrics>,
}

impl WeChatCalls {
    /// The service.
    pub fn new(parts: WeChatParts) -> Self {
        let WeChatParts {
            access,
            wechat,
            users,
            sessions,
            store,
            metrics,
        } = parts;
        Self {
            access,
            wechat,
            users,
            sessions,
            store,
            metrics,
        }
    }

    /// Binds the phone number behind `code` to the holder of `token`. The code is claimed
    /// first, as a login code is, so it reaches WeChat once at most (each success is paid
    /// for); WeChat is asked to check that it is this user's; nothing is written unless it
    /// answered. Each outcome is counted per app.
    pub async fn bind_phone(
        &self,
        token: &Bearer,
        code: &PhoneCode,
        context: &CallContext,
    ) -> Result<User, AuthError> {
        let user = self.users.me(token, context).await?;
        let appid = AppId::parse("appid", &user.appid).map_err(AuthError::internal)?;
        let claimed = self
            .store
            .claim_code(
                appid.as_str(),
                &secrets::code_digest(appid.as_str(), &format!("phone:{}", code.as_str())),
            )
            .await?;
        if !claimed {
            self.metrics.phone_binding(appid.as_str(), "reused");
            return Err(AuthError::PhoneCodeAlreadyUsed);
        }
        let (wechat, openid) = (&self.wechat, user.openid.as_str());
        let asked = self
            .access
            .call(&appid, "getuserphonenumber", |access| async move {
                wechat.phone_number(&access, code, Some(openid)).await
            })
            .await;
        let info = match asked {
            Ok(info) if info.watermark.appid == appid.as_str() => info,
            // A number for another app: not WeChat's answer to this call.
            Ok(_) => {
                self.metrics.phone_binding(appid.as_str(), "failed");
                return Err(AuthError::WeChatFailed { errcode: None });
            }
            Err(err) => {
                let outcome = match err {
                    AuthError::PhoneCodeRejected { .. } => "refused",
                    _ => "failed",
                };
                self.metrics.phone_binding(appid.as_str(), outcome);
                return Err(err);
            }
        };
        self.metrics.phone_binding(appid.as_str(), "ok");
        let phone = UserUpdate::from_phone(info, None)
            .phone
            .ok_or(AuthError::WeChatFailed { errcode: None })?;
        self.store
            .set_phone(&user, &phone, context)
            .await?
            .ok_or(AuthError::AccountSuspended)
    }

    /// What WeChat's content check says of a nickname `user` typed.
    pub async fn check_nickname(&self, user: &User, nickname: &str) -> Result<Suggest, AuthError> {
        let appid = AppId::parse("appid", &user.appid).map_err(AuthError::internal)?;
        let (wechat, openid) = (&self.wechat, user.openid.as_str());
        let checked = self
            .access
            .call(&appid, "msg_sec_check", |access| async move {
                wechat
                    .msg_sec_check(&access, openid, Scene::Profile, nickname, None)
                    .await
            })
            .await;
        let outcome = match &checked {
            Ok(check) => match check.suggest {
                Suggest::Pass => "pass",
                Suggest::Review => "review",
                Suggest::Risky => "risky",
            },
            Err(_) => "failed",
        };
        self.metrics.nickname_check(appid.as_str(), outcome);
        checked.map(|check| check.suggest)
    }

    /// Whether the session_key kept for a user is still WeChat's current one.
    pub async fn check_session_key(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<KeyState, AuthError> {
        let user = self.users.get_within_reach(user_id, context).await?;
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
        let user = self.users.get_within_reach(user_id, context).await?;
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
