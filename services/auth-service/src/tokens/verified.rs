//! Access tokens this replica has already verified, so ValidateToken checks an Ed25519
//! signature once per token instead of once per call.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is not kept), hold the
//! verified claims, and leave the cache at the token's expiry. A hit is still checked against
//! `now` and the audience asked for; revocation is not cached here at all: the caller checks
//! it on every call, hit or miss, so a revoked token is refused the moment its family is.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{Expiry, sync::Cache};
use sha2::{Digest, Sha256};
use wxauth_token::{Claims, TokenError, Verifier};

use crate::clock::SharedClock;

/// Removes an entry when its token expires.
struct UntilExpiry(SharedClock);

impl Expiry<[u8; 32], Arc<Claims>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &[u8; 32],
        claims: &Arc<Claims>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            u64::try_from(claims.exp - self.0.now()).unwrap_or(0),
        ))
    }
}

/// Verified tokens, bounded in number; `capacity` 0 turns the cache off.
pub struct VerifiedTokens {
    cache: Option<Cache<[u8; 32], Arc<Claims>>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("entries", &self.cache.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens, expiring them by `clock`.
    pub fn new(capacity: u64, clock: SharedClock) -> Self {
        Self {
            cache: (capacity > 0).then(|| {
                Cache::builder()
                    .max_capacity(capacity)
                    .expire_after(UntilExpiry(clock))
                    .build()
            }),
        }
    }

    /// The claims of `token` at `now` for `audience` (any appid when `None`): from the cache
    /// when this token was verified before, else verified with `verifier` and remembered.
    pub fn verify(
        &self,
        verifier: &Verifier,
        token: &str,
        now: i64,
        audience: Option<&str>,
    ) -> Result<Arc<Claims>, TokenError> {
        let Some(cache) = &self.cache else {
            return verifier.verify(token, now, audience).map(Arc::new);
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = match cache.get(&key) {
            Some(claims) => {
                if claims.exp <= now {
                    cache.invalidate(&key);
                    return Err(TokenError::Expired);
                }
                claims
            }
            None => {
                // Verified for any audience, so one entry serves every caller.
                let claims = Arc::new(verifier.verify(token, now, None)?);
                cache.insert(key, claims.clone());
                claims
            }
        };
        if audience.is_some_and(|expected| expected != claims.aud) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use wxauth_token::{Jwks, KeyPair, LEGACY_ISSUER};

    use super::*;
    use crate::clock::{Clock, SystemClock};

    fn now() -> i64 {
        SystemClock.now()
    }

    fn remembering(capacity: u64) -> VerifiedTokens {
        VerifiedTokens::new(capacity, Arc::new(SystemClock))
    }

    fn setup(exp_in: i64) -> (KeyPair, Verifier, String, i64) {
        let key = KeyPair::from_seed("k1", &[7; 32]);
        let verifier = Verifier::from_jwks(&Jwks {
            keys: vec![key.jwk()],
        });
        let now = now();
        let token = key.sign(&Claims {
            iss: LEGACY_ISSUER.into(),
            sub: "1".into(),
            aud: "wx4f4bc4dec97d474b".into(),
            openid: "o1".into(),
            unionid: None,
            acc: None,
            sid: "9".into(),
            jti: "j".into(),
            iat: now,
            exp: now + exp_in,
            client_id: None,
            scope: None,
        });
        (key, verifier, token, now)
    }

    #[test]
    fn a_cached_token_is_refused_from_its_expiry_on() {
        let (_, verifier, token, now) = setup(60);
        let cache = remembering(100);
        assert!(cache.verify(&verifier, &token, now, None).is_ok());
        // Served from the cache: an empty verifier would refuse it.
        let empty = Verifier::default();
        assert!(cache.verify(&empty, &token, now + 59, None).is_ok());
        assert_eq!(
            cache.verify(&empty, &token, now + 60, None),
            Err(TokenError::Expired)
        );
        assert!(
            matches!(
                cache.verify(&empty, &token, now, None),
                Err(TokenError::UnknownKey { .. })
            ),
            "the expired entry is gone, not kept"
        );
    }

    #[test]
    fn the_audience_is_checked_on_every_hit() {
        let (_, verifier, token, now) = setup(60);
        let cache = remembering(100);
        assert!(
            cache
                .verify(&verifier, &token, now, Some("wx4f4bc4dec97d474b"))
                .is_ok()
        );
        assert_eq!(
            cache.verify(&verifier, &token, now, Some("wx0123456789abcdef")),
            Err(TokenError::WrongAudience)
        );
        assert!(cache.verify(&verifier, &token, now, None).is_ok());
    }

    #[test]
    fn a_bad_token_is_never_remembered() {
        let (_, verifier, token, now) = setup(60);
        let cache = remembering(100);
        let tampered = format!("{token}x");
        assert!(cache.verify(&verifier, &tampered, now, None).is_err());
        assert!(
            cache
                .verify(&Verifier::default(), &tampered, now, None)
                .is_err()
        );
        let off = remembering(0);
        assert!(off.verify(&verifier, &token, now, None).is_ok());
        assert!(off.verify(&Verifier::default(), &token, now, None).is_err());
    }
}
