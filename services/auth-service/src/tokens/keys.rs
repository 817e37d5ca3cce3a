//! The keys access tokens are signed with, what the claims say, how long tokens live.

use wxauth_token::{Claims, ISSUER, Jwks, KeyPair, Verifier};

use crate::domain::User;

/// The token keys and lifetimes of this deployment.
#[derive(Debug)]
pub struct TokenKeys {
    signer: KeyPair,
    verifier: Verifier,
    jwks: Jwks,
    /// Access-token lifetime, seconds.
    pub access_ttl_secs: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: i64,
}

impl TokenKeys {
    /// Keys from settings: `signer` signs (the first key when `None`; `None` is returned
    /// when no key has that kid), every one verifies and is published. So keys rotate in two
    /// phases: publish a new key everywhere, then switch the signer.
    pub fn new(
        keys: Vec<KeyPair>,
        signer: Option<&str>,
        access_ttl_secs: i64,
        refresh_ttl_secs: i64,
    ) -> Option<Self> {
        let jwks = Jwks {
            keys: keys.iter().map(KeyPair::jwk).collect(),
        };
        let signer = match signer {
            Some(kid) => keys.into_iter().find(|key| key.kid() == kid)?,
            None => keys.into_iter().next()?,
        };
        Some(Self {
            signer,
            verifier: Verifier::from_jwks(&jwks),
            jwks,
            access_ttl_secs,
            refresh_ttl_secs,
        })
    }

    /// A signed access token for `user` in session family `family_id`, issued at `now`.
    /// Returns the token and its expiry.
    pub fn issue(&self, user: &User, family_id: i64, jti: String, now: i64) -> (String, i64) {
        let exp = now + self.access_ttl_secs;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: user.id.to_string(),
            aud: user.appid.clone(),
            openid: user.openid.clone(),
            unionid: user.unionid.clone(),
            acc: Some(user.account_id.to_string()),
            sid: family_id.to_string(),
            jti,
            iat: now,
            exp,
        };
        (self.signer.sign(&claims), exp)
    }

    /// The kid that signs.
    pub fn signer_kid(&self) -> &str {
        self.signer.kid()
    }

    /// The verifier of this deployment's own tokens.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The public keys, for GetJwks and `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }
}
