//! Users: looked up by id (operators) or by their own access token, their sessions
//! revoked, their audit trail read.

use std::sync::Arc;

use crate::{
    audit::AuditLog,
    domain::{AuditEvent, AuditFilter, Bearer, CallContext, FilledProfile, User},
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

    /// Audit events, newest first: one user's (who must exist) or everyone's.
    pub async fn audit_trail(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, AuthError> {
        if let Some(user_id) = filter.user_id {
            self.get(user_id).await?;
        }
        self.audit.list(filter).await
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

    /// Stores what the holder of `token` filled in of their profile, and audits it.
    pub async fn update_profile(
        &self,
        token: &Bearer,
        filled: &FilledProfile,
        context: &CallContext,
    ) -> Result<User, AuthError> {
        let claims = self.tokens.validate(token, None).await?;
        let user_id = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        self.store
            .update_profile(user_id, filled, context)
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
