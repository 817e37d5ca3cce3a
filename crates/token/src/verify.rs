//! The verifying side: needs only the published JWKS, so any service can check a token
//! offline, and refuses anything but an EdDSA signature by a known key.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

use crate::{
    Claims, Header, Jwks, LEEWAY_SECS, LEGACY_ISSUER, MAX_TOKEN_LEN, TokenError, decode_json,
};

/// Verifies tokens against a set of public keys, from the deployment's issuer (or the
/// legacy one).
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    keys: HashMap<String, VerifyingKey>,
    issuer: Option<String>,
}

impl Verifier {
    /// A verifier for the given JWKS; keys that are not Ed25519 or do not decode are skipped.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter(|jwk| jwk.kty == "OKP" && jwk.crv == "Ed25519")
            .filter_map(|jwk| {
                let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&jwk.x).ok()?.try_into().ok()?;
                Some((jwk.kid.clone(), VerifyingKey::from_bytes(&bytes).ok()?))
            })
            .collect();
        Self { keys, issuer: None }
    }

    /// The same verifier, accepting tokens of `issuer` too (besides [`LEGACY_ISSUER`]).
    #[must_use]
    pub fn with_issuer(self, issuer: Option<&str>) -> Self {
        Self {
            issuer: issuer
                .filter(|issuer| !issuer.is_empty())
                .map(str::to_owned),
            ..self
        }
    }

    /// Whether a key with this id is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Verifies `token` at time `now` (Unix seconds); when `audience` is given, the token
    /// must have been issued for that appid.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
        audience: Option<&str>,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(header_b64)?;
        if header.alg != "EdDSA" {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let key = self
            .keys
            .get(&header.kid)
            .ok_or_else(|| TokenError::UnknownKey {
                kid: header.kid.clone(),
            })?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        key.verify(signing_input.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::BadSignature)?;

        let claims: Claims = decode_json(claims_b64)?;
        if claims.iss != LEGACY_ISSUER && self.issuer.as_deref() != Some(claims.iss.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if audience.is_some_and(|expected| expected != claims.aud) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }
}

/// The `kid` a token's header names, without verifying anything: lets a verifier decide to
/// refetch its JWKS when the key is new to it.
pub fn peek_kid(token: &str) -> Option<String> {
    let header_b64 = token.split('.').next()?;
    decode_json::<Header>(header_b64)
        .ok()
        .map(|header| header.kid)
}
