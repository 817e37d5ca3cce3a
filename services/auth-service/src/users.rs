//! Users: looked up by id (operators) or by their own access token, found by what is known
//! of them, their sessions revoked, their audit trail read.

use std::sync::Arc;

use crate::{
    audit::AuditLog,
    domain::{AuditEvent, AuditFilter, Bearer, CallContext, User, lifecycle::Status},
    error::AuthError,
    store::{Found, PgStore, Search},
    tokens::Tokens,
};

/// The user service.
#[derive(Debug)]
pub struct Users {
    store: PgStore,
    tokens: Arc<Tokens>,
    audit: AuditLog,
}

impl Users {
    /// The service over the store, validating tokens with `tokens`.
    pub fn new(store: PgStore, tokens: Arc<Tokens>, audit: AuditLog) -> Self {
        Self {
            store,
            tokens,
            audit,
        }
    }

    /// Audit events, newest first: one user's (who must exist, in the caller's reach) or
    /// everyone's (of the apps in reach).
    pub async fn audit_trail(
        &self,
        filter: &AuditFilter,
        context: &CallContext,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        if let Some(user_id) = filter.user_id {
            match self.get(user_id).await {
                Ok(user) => context.reach.app(&user.appid)?,
                // A deleted user's trail is still there, its personal fields emptied.
                Err(AuthError::UserDeleted) => {}
                Err(err) => return Err(err),
            }
        }
        self.audit.list(filter).await
    }

    /// A user by id; a deleted one is [`AuthError::UserDeleted`].
    pub async fn get(&self, user_id: i64) -> Result<User, AuthError> {
        let user = self
            .store
            .get_user(user_id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if user.standing.status == Status::Deleted {
            return Err(AuthError::UserDeleted);
        }
        Ok(user)
    }

    /// A user by id, if of an app in the caller's reach.
    pub async fn get_within_reach(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<User, AuthError> {
        let user = self.get(user_id).await?;
        context.reach.app(&user.appid)?;
        Ok(user)
    }

    /// The users of an account, oldest first; `UserNotFound` when it has none. A caller that
    /// reaches some apps only is refused the account when a user of it is of another app.
    pub async fn of_account(
        &self,
        account_id: i64,
        context: &CallContext,
    ) -> Result<Vec<User>, AuthError> {
        let users = self.store.users_of_account(account_id).await?;
        if users.is_empty() {
            return Err(AuthError::UserNotFound);
        }
        context
            .reach
            .all(users.iter().map(|user| user.appid.as_str()))?;
        Ok(users)
    }

    /// A page of users found by `search` (of the apps in the caller's reach), after user
    /// `after`.
    pub async fn find(
        &self,
        search: &Search,
        after: i64,
        limit: i64,
        context: &CallContext,
    ) -> Result<Found, AuthError> {
        match search {
            Search::Openid { appid, .. } | Search::NicknamePrefix { appid, .. } => {
                context.reach.app(appid)?;
            }
            Search::Phone(_) if !context.reach.pii => {
                return Err(AuthError::CallerForbidden {
                    method: "FindUsers",
                    scope: "pii",
                });
            }
            Search::Phone(_) | Search::Unionid(_) => {}
        }
        Ok(self
            .store
            .find_users(search, after, limit, context.reach.apps())
            .await?)
    }

    /// The user of a valid access token (of an app in the caller's reach).
    pub async fn me(&self, token: &Bearer, context: &CallContext) -> Result<User, AuthError> {
        let claims = self.tokens.validate(token, None).await?;
        context.reach.app(&claims.aud)?;
        let user_id = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        match self.get(user_id).await {
            // A token outliving its user (the revocation not heard yet) is no token.
            Err(AuthError::UserDeleted | AuthError::UserNotFound) => Err(AuthError::TokenInvalid),
            other => other,
        }
    }

    /// Ends every session family of a user, and their open login sessions.
    pub async fn revoke_sessions(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<u64, AuthError> {
        let user = self.get_within_reach(user_id, context).await?;
        self.tokens.revoke_user(&user, context).await
    }
}
