//! Looking users up: by id (operators), or by their own access token.

use std::sync::Arc;

use crate::{
    domain::{Bearer, User},
    error::AuthError,
    store::PgStore,
    tokens::Tokens,
};

/// The user service.
#[derive(Debug)]
pub struct Users {
    store: PgStore,
    tokens: Arc<Tokens>,
}

impl Users {
    /// The service over the store, validating tokens with `tokens`.
    pub fn new(store: PgStore, tokens: Arc<Tokens>) -> Self {
        Self { store, tokens }
    }

    /// A user by id.
    pub async fn get(&self, user_id: i64) -> Result<User, AuthError> {
        self.store
            .get_user(user_id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// The user of a valid access token.
    pub async fn me(&self, token: &Bearer) -> Result<User, AuthError> {
        let claims = self.tokens.validate(token, None).await?;
        let user_id = claims.sub.parse().map_err(|_| AuthError::TokenInvalid)?;
        self.get(user_id).await
    }

    /// Ends every session family of a user.
    pub async fn revoke_sessions(&self, user_id: i64) -> Result<u64, AuthError> {
        let user = self.get(user_id).await?;
        self.tokens.revoke_user(&user).await
    }
}
