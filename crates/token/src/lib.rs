//! wxauth's access tokens: compact JWTs (RFC 7519) signed with Ed25519 (`alg: EdDSA`,
//! RFC 8037), each naming its key with `kid`, and the JWKS (RFC 7517) that publishes the
//! public keys so a service can verify tokens offline.
//!
//! Pure code: no clock (callers pass `now`), no network, no storage. The auth-service signs
//! with it; the client crate verifies with it.
//!
//! Verification is strict: the header must say `EdDSA` (no `none`, no algorithm confusion),
//! the `kid` must be a known key, the signature must verify, and `iss`, `exp`, `nbf`/`iat`
//! and (when asked) `aud` must hold.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The `iss` of every wxauth token.
pub const ISSUER: &str = "wxauth";
/// How far a verifier's clock may be behind the issuer's, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// The largest token accepted; ours are about 500 bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The wxauth user id.
    pub sub: String,
    /// The audience: the appid the token was issued for.
    pub aud: String,
    /// The user's openid in that app.
    pub openid: String,
    /// The user's unionid, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// The account (one person across the apps of an Open Platform account). Absent from
    /// tokens issued before accounts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<String>,
    /// The session family (one per login); revoking it ends every token of that login.
    pub sid: String,
    /// A unique token id.
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused. The variants are for logs and for choosing between "refresh"
/// and "log in again"; none carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or too long.
    #[error("token is malformed")]
    Malformed,
    /// The header names another algorithm than EdDSA.
    #[error("token algorithm is not EdDSA")]
    UnsupportedAlgorithm,
    /// No known key has this id (it may be newer than the verifier's JWKS).
    #[error("token is signed by an unknown key")]
    UnknownKey {
        /// The key id the token names.
        kid: String,
    },
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// The issuer is not wxauth.
    #[error("token issuer is not wxauth")]
    WrongIssuer,
    /// The token is for another app.
    #[error("token is for another appid")]
    WrongAudience,
    /// The token is past its expiry.
    #[error("token has expired")]
    Expired,
    /// The token claims to be issued in the future.
    #[error("token is not valid yet")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    kid: String,
}

/// A signing key with its id.
pub struct KeyPair {
    kid: String,
    key: SigningKey,
}

impl KeyPair {
    /// A key from its 32-byte Ed25519 seed.
    pub fn from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Self {
        Self {
            kid: kid.into(),
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as a JWK.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: self.kid.clone(),
        };
        // Serializing these plain structs (strings and integers) cannot fail.
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key as JSON Web Key (RFC 8037 `OKP`/`Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always "OKP".
    pub kty: String,
    /// Always "Ed25519".
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id tokens name.
    pub kid: String,
    /// Always "EdDSA".
    pub alg: String,
    /// Always "sig".
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A JWK Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys; several are live during a rotation.
    pub keys: Vec<Jwk>,
}

/// Verifies tokens against a set of public keys.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    keys: HashMap<String, VerifyingKey>,
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
        Self { keys }
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
        if claims.iss != ISSUER {
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

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn pair(kid: &str, byte: u8) -> KeyPair {
        KeyPair::from_seed(kid, &[byte; 32])
    }

    fn claims() -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "42".into(),
            aud: "wx4f4bc4dec97d474b".into(),
            openid: "o1".into(),
            unionid: Some("u1".into()),
            acc: Some("3".into()),
            sid: "7".into(),
            jti: "j1".into(),
            iat: NOW,
            exp: NOW + 900,
        }
    }

    fn verifier(pairs: &[&KeyPair]) -> Verifier {
        Verifier::from_jwks(&Jwks {
            keys: pairs.iter().map(|pair| pair.jwk()).collect(),
        })
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let key = pair("k1", 1);
        let token = key.sign(&claims());
        assert_eq!(peek_kid(&token).as_deref(), Some("k1"));
        let verified = verifier(&[&key]).verify(&token, NOW + 10, Some("wx4f4bc4dec97d474b"));
        assert_eq!(verified, Ok(claims()));
    }

    #[test]
    fn each_way_a_token_can_be_wrong_is_refused() {
        let key = pair("k1", 1);
        let other = pair("k1", 2);
        let verifier = verifier(&[&key]);
        let good = key.sign(&claims());
        let mut foreign_issuer = claims();
        foreign_issuer.iss = "someone".into();
        let (header, rest) = good.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let hs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        let mut tampered_claims = claims();
        tampered_claims.sub = "1".into();
        let swapped = format!(
            "{header}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).unwrap()),
            good.rsplit('.').next().unwrap()
        );
        let cases: Vec<(&str, String, i64, Option<&str>, TokenError)> = vec![
            ("garbage", "abc".into(), NOW, None, TokenError::Malformed),
            (
                "four parts",
                format!("{good}.x"),
                NOW,
                None,
                TokenError::Malformed,
            ),
            (
                "alg none",
                format!("{none_header}.{rest}"),
                NOW,
                None,
                TokenError::UnsupportedAlgorithm,
            ),
            (
                "alg hs256",
                format!("{hs_header}.{rest}"),
                NOW,
                None,
                TokenError::UnsupportedAlgorithm,
            ),
            (
                "signed by a stranger with our kid",
                other.sign(&claims()),
                NOW,
                None,
                TokenError::BadSignature,
            ),
            (
                "unknown kid",
                pair("k9", 1).sign(&claims()),
                NOW,
                None,
                TokenError::UnknownKey { kid: "k9".into() },
            ),
            (
                "claims swapped",
                swapped,
                NOW,
                None,
                TokenError::BadSignature,
            ),
            (
                "expired",
                good.clone(),
                NOW + 900,
                None,
                TokenError::Expired,
            ),
            (
                "from the future",
                good.clone(),
                NOW - 3600,
                None,
                TokenError::NotYetValid,
            ),
            (
                "another app",
                good.clone(),
                NOW,
                Some("wx0123456789abcdef"),
                TokenError::WrongAudience,
            ),
            (
                "foreign issuer",
                key.sign(&foreign_issuer),
                NOW,
                None,
                TokenError::WrongIssuer,
            ),
            (
                "too long",
                "a".repeat(5000),
                NOW,
                None,
                TokenError::Malformed,
            ),
        ];
        for (case, token, now, audience, expected) in cases {
            assert_eq!(
                verifier.verify(&token, now, audience),
                Err(expected),
                "case {case:?}"
            );
        }
    }

    #[test]
    fn during_a_rotation_both_keys_verify() {
        let old = pair("old", 1);
        let new = pair("new", 2);
        let verifier = verifier(&[&new, &old]);
        assert!(verifier.verify(&old.sign(&claims()), NOW, None).is_ok());
        assert!(verifier.verify(&new.sign(&claims()), NOW, None).is_ok());
        assert!(verifier.knows("old") && !verifier.knows("gone"));
    }

    #[test]
    fn the_jwks_holds_only_public_keys_in_the_standard_shape() {
        let key = pair("k1", 1);
        let json = serde_json::to_value(Jwks {
            keys: vec![key.jwk()],
        })
        .unwrap();
        let jwk = &json["keys"][0];
        assert_eq!(
            (
                jwk["kty"].as_str(),
                jwk["crv"].as_str(),
                jwk["use"].as_str()
            ),
            (Some("OKP"), Some("Ed25519"), Some("sig"))
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(jwk.get("d").is_none(), "no private part");
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode([1u8; 32])));
    }

    proptest! {
        /// No string panics the verifier, and none forged without the key passes.
        #[test]
        fn arbitrary_tokens_never_panic_or_pass(token in "[A-Za-z0-9_.-]{0,300}") {
            prop_assert!(verifier(&[&pair("k1", 1)]).verify(&token, NOW, None).is_err());
        }
    }
}
