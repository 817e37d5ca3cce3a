//! Tokens: issuing a pair at the end of a login, validating access tokens, rotating refresh
//! tokens, logout and revocation.
//!
//! - [`keys`]: which key signs, what the claims say, the published JWKS;
//! - [`verified`]: access tokens this replica has already verified;
//! - [`introspection`]: what a token is, for RFC 7662.

pub mod introspection;
pub mod keys;
pub mod verified;

use std::sync::Arc;

use tracing::{info, warn};
use wxauth_token::{Claims, Jwks, TokenError};

pub use crate::domain::rotation::RefreshRules;
use crate::{
    audit::AuditLog,
    clock::SharedClock,
    domain::{
        AuditKind, Bearer, CallContext, NewAuditEvent, User,
        scope::{Scope, Scopes},
    },
    error::AuthError,
    revocation::Revocations,
    secrets::{self, Keyring},
    store::{IssuedLogin, NewRefresh, PgStore, RefreshOutcome, Rotation},
};
pub use introspection::Introspected;
pub use keys::TokenKeys;
pub use verified::VerifiedTokens;

/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "wxrt_";

/// The key a refresh token is stored and looked up under. Tokens are ordered by when they
/// were issued ([`secrets::new_ordered_bearer`]), so issuing one writes near the end of
/// `refresh_tokens`' primary key; tokens issued before they were ordered keep their plain
/// digest.
pub(crate) fn refresh_key(token: &str) -> Vec<u8> {
    secrets::ordered_digest(REFRESH_PREFIX, token)
}

/// A token pair as handed out. Its `Debug` shows the expiries only.
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
    /// The opaque refresh token; only its digest is stored.
    pub refresh_token: String,
    /// Unix seconds.
    pub refresh_expires_at: i64,
    /// The OpenID Connect ID token, when the grant asked for `openid`.
    pub id_token: Option<String>,
    /// The scopes granted, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// A user with a new token pair.
#[derive(Debug)]
pub struct Issued {
    /// The user as stored now.
    pub user: User,
    /// The user's tokens.
    pub tokens: TokenPair,
}

/// A refresh token made for a login, not stored yet. Its `Debug` shows nothing of it.
pub struct NewRefreshToken {
    token: String,
    hash: Vec<u8>,
    ttl_secs: i64,
    /// The scopes the login asked for, when it asked.
    scope: Option<String>,
}

impl std::fmt::Debug for NewRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRefreshToken").finish_non_exhaustive()
    }
}

impl NewRefreshToken {
    /// What the store keeps of it.
    pub fn stored(&self) -> NewRefresh<'_> {
        NewRefresh {
            hash: &self.hash,
            ttl_secs: self.ttl_secs,
            scope: self.scope.as_deref(),
        }
    }
}

/// How a caller ends a session family.
#[derive(Debug)]
pub enum LogoutBy {
    /// A valid access token of the family.
    AccessToken(Bearer),
    /// A refresh token of the family, once the access token has expired.
    RefreshToken(Bearer),
}

/// The token service.
#[derive(Debug)]
pub struct Tokens {
    keys: TokenKeys,
    verified: VerifiedTokens,
    revocations: Arc<Revocations>,
    store: PgStore,
    clock: SharedClock,
    /// Seals a rotation's successor for the grace period.
    keyring: Arc<Keyring>,
    rules: RefreshRules,
    /// Where refused refreshes are tallied.
    audit: AuditLog,
}

/// How tokens are made and judged: the settings of [`Tokens`].
#[derive(Debug)]
pub struct TokenSettings {
    /// The signing keys and lifetimes.
    pub keys: TokenKeys,
    /// How many verified access tokens to remember at most.
    pub remembered: u64,
    /// How refresh tokens age.
    pub rules: RefreshRules,
}

impl Tokens {
    /// The service over its settings, the replica's revocation cache and the store.
    pub fn new(
        settings: TokenSettings,
        revocations: Arc<Revocations>,
        store: PgStore,
        clock: SharedClock,
        keyring: Arc<Keyring>,
        audit: AuditLog,
    ) -> Self {
        let TokenSettings {
            keys,
            remembered,
            rules,
        } = settings;
        Self {
            keys,
            verified: VerifiedTokens::new(remembered, clock.clone()),
            revocations,
            store,
            clock,
            keyring,
            rules,
            audit,
        }
    }

    /// The public keys that verify access tokens.
    pub fn jwks(&self) -> &Jwks {
        self.keys.jwks()
    }

    /// A new refresh token, for a login about to be stored that asked for `scope` (`None`:
    /// the default grant).
    pub fn new_refresh(&self, scope: Option<&Scopes>) -> Result<NewRefreshToken, AuthError> {
        let order = u64::try_from(self.clock.timestamp().micros()).unwrap_or(0);
        let token =
            secrets::new_ordered_bearer(REFRESH_PREFIX, order).map_err(AuthError::internal)?;
        Ok(NewRefreshToken {
            hash: refresh_key(&token),
            token,
            ttl_secs: self.keys.refresh_ttl_secs,
            scope: scope.map(ToString::to_string),
        })
    }

    /// The issuer URL, when the deployment names one.
    pub fn issuer(&self) -> Option<&str> {
        self.keys.issuer()
    }

    /// The pair of a stored login: a new access token for the scopes `asked` (else the
    /// family's), with an ID token when they name `openid`, and the refresh token it was
    /// stored with.
    pub fn pair(
        &self,
        issued: IssuedLogin,
        refresh: NewRefreshToken,
        asked: Option<&Scopes>,
    ) -> Result<Issued, AuthError> {
        let jti = hex::encode(secrets::random_bytes::<16>().map_err(AuthError::internal)?);
        let explicit = asked.cloned().or_else(|| {
            issued
                .scope
                .as_deref()
                .map(|scope| Scopes::stored(Some(scope)))
        });
        let scopes = explicit.clone().unwrap_or_else(Scopes::default_grant);
        let now = self.clock.now();
        let (access_token, access_expires_at) =
            self.keys
                .issue(&issued.user, issued.family_id, &scopes, jti, now);
        let id_token = explicit
            .filter(|scopes| scopes.has(Scope::OpenId))
            .map(|_| self.keys.id_token(&issued.user, now));
        Ok(Issued {
            user: issued.user,
            tokens: TokenPair {
                access_token,
                access_expires_at,
                refresh_token: refresh.token,
                refresh_expires_at: issued.refresh_expires_at,
                id_token,
                scope: scopes.to_string(),
            },
        })
    }

    /// Who an access token belongs to: signature, expiry, audience and revocation. The
    /// database is asked only while the revocation cache is not connected.
    pub async fn validate(
        &self,
        token: &Bearer,
        audience: Option<&str>,
    ) -> Result<Arc<Claims>, AuthError> {
        let claims = self
            .verified
            .verify(
                self.keys.verifier(),
                token.expose(),
                self.clock.now(),
                audience,
            )
            .map_err(|err| match err {
                TokenError::Expired => AuthError::TokenExpired,
                _ => AuthError::TokenInvalid,
            })?;
        let family_id = family_of(&claims)?;
        let revoked = self
            .revocations
            .is_revoked(family_id, self.store.is_family_revoked(family_id))
            .await?;
        if revoked {
            return Err(AuthError::TokenInvalid);
        }
        Ok(claims)
    }

    /// Trades a refresh token for a new pair. The same token presented again within the
    /// grace period (a lost answer, two tabs) gets the same successor; later, it is reuse,
    /// and the family is revoked.
    pub async fn refresh(
        &self,
        presented: &Bearer,
        asked: Option<&Scopes>,
        context: &CallContext,
    ) -> Result<Issued, AuthError> {
        let old_hash = refresh_key(presented.expose());
        self.within_reach(&old_hash, context).await?;
        // Never more than the login was granted (RFC 6749 6). An unknown token is refused
        // by the rotation, as any unknown token.
        if let Some(asked) = asked
            && let Some(granted) = self.store.scope_of_refresh(&old_hash).await?
            && !asked.within(&Scopes::stored(granted.as_deref()))
        {
            return Err(AuthError::InvalidScope(format!(
                "scope {asked} asks for more than the login was granted"
            )));
        }
        let refresh = self.new_refresh(None)?;
        let successor = self
            .keyring
            .seal(refresh.token.as_bytes(), &old_hash)
            .map_err(AuthError::internal)?;
        let rotation = Rotation {
            new_hash: &refresh.hash,
            successor: &successor,
            rules: self.rules,
        };
        match self
            .store
            .rotate_refresh(&old_hash, rotation, context)
            .await?
        {
            RefreshOutcome::Rotated(issued) => self.pair(*issued, refresh, asked),
            RefreshOutcome::Replayed { issued, successor } => {
                let token = self
                    .keyring
                    .open(&successor, &old_hash)
                    .map_err(AuthError::internal)
                    .and_then(|bytes| String::from_utf8(bytes).map_err(AuthError::internal))?;
                info!(
                    family_id = issued.family_id,
                    "refresh retried within the grace period"
                );
                let again = NewRefreshToken {
                    hash: refresh_key(&token),
                    token,
                    ttl_secs: self.keys.refresh_ttl_secs,
                    scope: None,
                };
                self.pair(*issued, again, asked)
            }
            RefreshOutcome::Reused { family_id } => {
                self.revocations.insert(family_id);
                warn!(
                    family_id,
                    "refresh token reused: the session family is revoked"
                );
                Err(AuthError::TokenInvalid)
            }
            RefreshOutcome::Refused { why, family } => {
                info!(why = why.name(), "refresh refused");
                let (family_id, user_id, appid) = match family {
                    Some((family_id, user_id, appid)) => {
                        (Some(family_id), Some(user_id), Some(appid))
                    }
                    None => (None, None, None),
                };
                self.audit.tally(NewAuditEvent {
                    kind: AuditKind::RefreshRefused,
                    outcome: why.name().to_owned(),
                    appid,
                    user_id,
                    openid_digest: None,
                    family_id,
                    account_id: None,
                    context: context.clone(),
                });
                Err(match why {
                    crate::domain::rotation::Refusal::Barred => AuthError::AccountSuspended,
                    _ => AuthError::TokenInvalid,
                })
            }
        }
    }

    /// Ends the session family of a valid access token or of a refresh token, and the
    /// user's open login sessions.
    pub async fn logout(&self, by: LogoutBy, context: &CallContext) -> Result<(), AuthError> {
        let family_id = match by {
            LogoutBy::AccessToken(token) => {
                let claims = self.validate(&token, None).await?;
                context.reach.app(&claims.aud)?;
                family_of(&claims)?
            }
            LogoutBy::RefreshToken(token) => {
                let hash = refresh_key(token.expose());
                self.within_reach(&hash, context).await?;
                self.store
                    .family_of_refresh(&hash)
                    .await?
                    .ok_or(AuthError::TokenInvalid)?
            }
        };
        self.store.revoke_family(family_id, context).await?;
        self.revocations.insert(family_id);
        info!(family_id, "logged out");
        Ok(())
    }

    /// Adds families revoked by a change made elsewhere (a suspension, a deletion) to this
    /// replica's revocations at once; the others hear of them through the database.
    pub fn revoked(&self, families: &[i64]) {
        for &family_id in families {
            self.revocations.insert(family_id);
        }
    }

    /// Ends every session family of a user, and their open login sessions.
    pub async fn revoke_user(&self, user: &User, context: &CallContext) -> Result<u64, AuthError> {
        let reason = format!(
            "revoked by {}",
            context.caller.as_deref().unwrap_or("an operator")
        );
        let families = self.store.revoke_user(user.id, &reason, context).await?;
        // Known here at once, as a logout is: the notification reaches this replica's own
        // listener a moment later (or, with the listener silenced, not before its heartbeat
        // is missed), and the caller may validate a token of the user straight after.
        for &family_id in &families {
            self.revocations.insert(family_id);
        }
        let revoked = families.len() as u64;
        info!(user_id = user.id, revoked, "user sessions revoked");
        Ok(revoked)
    }
}

impl Tokens {
    /// Whether the refresh token of digest `hash` is of an app the caller reaches: asked of
    /// the database only for a caller that reaches some apps only.
    async fn within_reach(&self, hash: &[u8], context: &CallContext) -> Result<(), AuthError> {
        if context.reach.apps.is_none() {
            return Ok(());
        }
        match self.store.app_of_refresh(hash).await? {
            Some(appid) => Ok(context.reach.app(&appid)?),
            // Unknown: the refresh refuses it as such.
            None => Ok(()),
        }
    }
}

/// The session family a token belongs to.
fn family_of(claims: &Claims) -> Result<i64, AuthError> {
    claims.sid.parse().map_err(|_| AuthError::TokenInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let pair = TokenPair {
            access_token: "eyJsecret-access".into(),
            access_expires_at: 1,
            refresh_token: "wxrt_secret-refresh".into(),
            refresh_expires_at: 2,
            id_token: Some("eyJsecret-id".into()),
            scope: "openid".into(),
        };
        let fresh = NewRefreshToken {
            token: "wxrt_secret-new".into(),
            hash: vec![1],
            ttl_secs: 3,
            scope: None,
        };
        let printed = format!("{pair:?} {fresh:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("access_expires_at"), "{printed}");
    }
}
