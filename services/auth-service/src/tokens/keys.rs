//! The keys access tokens are signed with, what the claims say, how long tokens live.

use wxauth_token::{Claims, IdClaims, Jwks, KeyPair, LEGACY_ISSUER, Verifier};

use crate::domain::{User, scope::Scopes};

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
    /// The `iss` of the tokens: `WXAUTH_ISSUER`, when set.
    issuer: Option<String>,
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
        issuer: Option<String>,
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
            verifier: Verifier::from_jwks(&jwks).with_issuer(issuer.as_deref()),
            jwks,
            access_ttl_secs,
            refresh_ttl_secs,
            issuer,
        })
    }

    /// The issuer URL, when the deployment names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The `iss` the tokens carry.
    fn iss(&self) -> String {
        self.issuer.as_deref().unwrap_or(LEGACY_ISSUER).to_owned()
    }

    /// A signed access token (RFC 9068) for `user` in session family `family_id`, granted
    /// `scopes`, issued at `now`. Returns the token and its expiry.
    pub fn issue(
        &self,
        user: &User,
        family_id: i64,
        scopes: &Scopes,
        jti: String,
        now: i64,
    ) -> (String, i64) {
        let exp = now + self.access_ttl_secs;
        let claims = Claims {
            iss: self.iss(),
            sub: user.id.to_string(),
            aud: user.appid.clone(),
            openid: user.openid.clone(),
            unionid: user.unionid.clone(),
            acc: Some(user.account_id.to_string()),
            sid: family_id.to_string(),
            jti,
            iat: now,
            exp,
            client_id: Some(user.appid.clone()),
            scope: Some(scopes.to_string()),
        };
        (self.signer.sign(&claims), exp)
    }

    /// An OpenID Connect ID token for `user`, issued at `now`, living as long as an access
    /// token.
    pub fn id_token(&self, user: &User, now: i64) -> String {
        self.signer.sign_id_token(&IdClaims {
            iss: self.iss(),
            sub: user.id.to_string(),
            aud: user.appid.clone(),
            azp: user.appid.clone(),
            iat: now,
            exp: now + self.access_ttl_secs,
        })
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
