//! Users: looked up by id (operators) or by their own access token, their sessions
//! revoked, their audit trail read.

use std::sync::Arc;

use crate::{
    audit::AuditLog,
    domain::{AuditEvent, Bearer, CallContext, FilledProfile, User},
    error::AuthError,
    store::PgStore,
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

    /// A user's audit trail, newest first.
    pub async fn audit_trail(
        &self,
        user_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        self.get(user_id).await?;
        self.audit.of_user(user_id, before, limit).await
    }

    /// A user by id.
    pub async fn get(&self, user_id: i64) -> Result<User, AuthError> {
        self.store
            .get_user(user_id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// The users of an account, oldest first; `UserNotFound` when it has none.
    pub async fn of_account(&self, account_id: i64) -> Result<Vec<User>, AuthError> {
        let users = self.store.users_of_account(account_id).await?;
        if users.is_empty() {
            return Err(AuthError::UserNotFound);
        }
        Ok(users)
    }

    /// The user of a valid access token.
    pub async fn me(&self, token: &Bearer) -> Result<User, AuthError> {
        let claims = self.tokens.validate(token, None).await?;
        let user_id = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        self.get(user_id).await
    }

    /// Stores what the holder of `token` filled in of their profile.
    pub async fn update_profile(
        &self,
        token: &Bearer,
        filled: &FilledProfile,
    ) -> Result<User, AuthError> {
        let claims = self.tokens.validate(token, None).await?;
        let user_id = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        self.store
            .update_profile(user_id, filled)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Ends every session family of a user, and their open login sessions.
    pub async fn revoke_sessions(
        &self,
        user_id: i64,
        context: &CallContext,
    ) -> Result<u64, AuthError> {
        let user = self.get(user_id).await?;
        self.tokens.revoke_user(&user, context).await
    }
}
