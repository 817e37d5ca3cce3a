//! What a user fills in of their profile themselves (`UpdateProfile`): the avatar must be on
//! a host the app keeps avatars on, and the nickname goes through WeChat's content check
//! (`msgSecCheck` v2), since WeChat's nickname input checks only inside the client and a
//! direct call to the API skips it. `risky` is refused, `review` stored flagged; when the
//! check itself fails, [`NicknamePolicy`] decides.

use std::{collections::HashMap, sync::Arc};

use wxauth_wechat::Suggest;

use crate::{
    domain::{Bearer, CallContext, FilledProfile, NicknameCheck, User, profile},
    error::AuthError,
    store::PgStore,
    users::Users,
    wechat_calls::WeChatCalls,
};

/// What happens to a nickname when WeChat's content check cannot be made (WeChat down,
/// 61010 "user not seen within two hours").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NicknamePolicy {
    /// Refuse it: 503 with `retry-after` (the default).
    FailClosed,
    /// Store it, flagged `unchecked` for operators.
    FailOpen,
    /// Do not check nicknames at all (a deployment whose own moderation does it).
    Off,
}

/// The profile service.
#[derive(Debug)]
pub struct Profiles {
    users: Arc<Users>,
    wechat_calls: Arc<WeChatCalls>,
    store: PgStore,
    policy: NicknamePolicy,
    /// The hosts each app keeps avatars on; an app without an entry takes any https host.
    avatar_hosts: HashMap<String, Vec<String>>,
}

impl Profiles {
    /// The service.
    pub fn new(
        users: Arc<Users>,
        wechat_calls: Arc<WeChatCalls>,
        store: PgStore,
        policy: NicknamePolicy,
        avatar_hosts: HashMap<String, Vec<String>>,
    ) -> Self {
        Self {
            users,
            wechat_calls,
            store,
            policy,
            avatar_hosts,
        }
    }

    /// Stores what the holder of `token` filled in, once checked, and audits it.
    pub async fn update(
        &self,
        token: &Bearer,
        filled: &FilledProfile,
        context: &CallContext,
    ) -> Result<User, AuthError> {
        let user = self.users.me(token, context).await?;
        if let Some(url) = &filled.avatar_url {
            profile::avatar_on_allowed_host(
                url,
                self.avatar_hosts.get(&user.appid).map(Vec::as_slice),
            )?;
        }
        let check = match &filled.nickname {
            Some(nickname) if self.policy != NicknamePolicy::Off => {
                Some(self.check(&user, nickname).await?)
            }
            _ => None,
        };
        self.store
            .update_profile(user.id, filled, check, context)
            .await?
            .ok_or(AuthError::AccountSuspended)
    }

    /// What the content check says of `nickname`, as stored; a risky one is refused, and a
    /// failed check as the policy says.
    async fn check(&self, user: &User, nickname: &str) -> Result<NicknameCheck, AuthError> {
        match self.wechat_calls.check_nickname(user, nickname).await {
            Ok(Suggest::Pass) => Ok(NicknameCheck::Passed),
            Ok(Suggest::Review) => Ok(NicknameCheck::Review),
            Ok(Suggest::Risky) => Err(AuthError::NicknameRejected),
            Err(err) => match self.policy {
                NicknamePolicy::FailOpen | NicknamePolicy::Off => Ok(NicknameCheck::Unchecked),
                NicknamePolicy::FailClosed => Err(match err {
                    // These already say when to come back.
                    AuthError::QuotaExceeded { .. }
                    | AuthError::RateLimited { .. }
                    | AuthError::WeChatApiUnavailable { .. }
                    | AuthError::Unavailable(_) => err,
                    other => AuthError::WeChatApiUnavailable {
                        errcode: other.wechat_errcode(),
                        what: "the nickname could not be checked",
                    },
                }),
            },
        }
    }
}
