//! What a token is, for an OAuth 2.0 introspection (RFC 7662): an access token is active
//! while it verifies and its family is not revoked (the same check as ValidateToken, so a
//! revocation anywhere reads inactive everywhere within a second); a refresh token while the
//! rotation rule would trade it (unused, unexpired, its family live, its user in good
//! standing). Anything else, or a token of an app out of the caller's reach, is inactive.

use std::sync::Arc;

use wxauth_token::Claims;

use super::{REFRESH_PREFIX, Tokens, refresh_key};
use crate::{
    domain::{
        Bearer, CallContext,
        rotation::{self, Decision},
    },
    error::AuthError,
    store::families::RefreshRecord,
};

/// What an introspected token is.
#[derive(Debug)]
pub enum Introspected {
    /// Not usable now (unknown, expired, revoked, used, or out of the caller's reach).
    Inactive,
    /// A live access token.
    Access(Arc<Claims>),
    /// A live refresh token.
    Refresh(RefreshRecord),
}

impl Tokens {
    /// What `token` is; `hint` says which kind to try first (both are tried).
    pub async fn introspect(
        &self,
        token: &Bearer,
        hint: Option<&str>,
        context: &CallContext,
    ) -> Result<Introspected, AuthError> {
        let looks_like_refresh = token.expose().starts_with(REFRESH_PREFIX);
        let refresh_first = hint == Some("refresh_token") || looks_like_refresh;
        let found = if refresh_first {
            match self.inspect_refresh(token).await? {
                Introspected::Inactive if !looks_like_refresh => self.inspect_access(token).await?,
                found => found,
            }
        } else {
            match self.inspect_access(token).await? {
                Introspected::Inactive => self.inspect_refresh(token).await?,
                found => found,
            }
        };
        let appid = match &found {
            Introspected::Inactive => return Ok(Introspected::Inactive),
            Introspected::Access(claims) => claims.aud.clone(),
            Introspected::Refresh(record) => record.appid.clone(),
        };
        Ok(if context.reach.app(&appid).is_ok() {
            found
        } else {
            Introspected::Inactive
        })
    }

    async fn inspect_access(&self, token: &Bearer) -> Result<Introspected, AuthError> {
        match self.validate(token, None).await {
            Ok(claims) => Ok(Introspected::Access(claims)),
            Err(AuthError::TokenInvalid | AuthError::TokenExpired) => Ok(Introspected::Inactive),
            Err(err) => Err(err),
        }
    }

    async fn inspect_refresh(&self, token: &Bearer) -> Result<Introspected, AuthError> {
        let hash = refresh_key(token.expose());
        let Some(record) = self.store.refresh_record(&hash).await? else {
            return Ok(Introspected::Inactive);
        };
        let decision =
            rotation::decide(Some(&record.presented), self.clock.timestamp(), self.rules);
        Ok(match decision {
            Decision::Rotate { .. } => Introspected::Refresh(record),
            Decision::Replay | Decision::Reuse | Decision::Refuse(_) => Introspected::Inactive,
        })
    }
}
