//! wxauth's access tokens: compact JWTs (RFC 7519) in the shape of RFC 9068 (`typ: at+jwt`,
//! `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `client_id`, `scope`) signed with Ed25519
//! (`alg: EdDSA`, RFC 8037), each naming its key with `kid`; OpenID Connect ID tokens signed
//! the same way; and the JWKS (RFC 7517) that publishes the public keys so a service can
//! verify tokens offline.
//!
//! Pure code: no clock (callers pass `now`), no network, no storage. The auth-service signs
//! with it; the client crate verifies with it.
//!
//! Verification is strict: the header must say `EdDSA` (no `none`, no algorithm confusion),
//! the `kid` must be a known key, the signature must verify, and `iss`, `exp`, `nbf`/`iat`
//! and (when asked) `aud` must hold.

mod keys;
mod verify;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

pub use keys::{Jwk, Jwks, KeyPair};
pub use verify::{Verifier, peek_kid};

/// The `iss` of the tokens of a deployment that names no issuer URL, and of every token
/// signed before issuers were URLs; a verifier always accepts it, so those tokens stay valid
/// until they expire.
pub const LEGACY_ISSUER: &str = "wxauth";
/// The `typ` of an access token's header (RFC 9068 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// How far a verifier's clock may be behind the issuer's, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// The largest token accepted; ours are about 500 bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The deployment's issuer URL (`WXAUTH_ISSUER`), or [`LEGACY_ISSUER`].
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
    /// The OAuth client the token was issued to: the appid (RFC 9068). Absent from tokens
    /// signed before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The scopes granted, space-separated (RFC 9068). Absent from tokens signed before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// What an OpenID Connect ID token says: who logged in, for which app. It carries no session
/// or token id, so it can never pass as an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// The issuer URL.
    pub iss: String,
    /// The wxauth user id.
    pub sub: String,
    /// The appid (the client the token is for).
    pub aud: String,
    /// The authorized party: the appid again.
    pub azp: String,
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
    /// The issuer is not this deployment.
    #[error("token issuer is not this wxauth deployment")]
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

    const ISSUER: &str = "https://auth.example.com";

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
            client_id: Some("wx4f4bc4dec97d474b".into()),
            scope: Some("openid profile phone".into()),
        }
    }

    fn verifier(pairs: &[&KeyPair]) -> Verifier {
        Verifier::from_jwks(&Jwks {
            keys: pairs.iter().map(|pair| pair.jwk()).collect(),
        })
        .with_issuer(Some(ISSUER))
    }

    #[test]
    fn access_tokens_say_at_jwt_and_tokens_of_before_still_verify() {
        let key = pair("k1", 1);
        let token = key.sign(&claims());
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "EdDSA");
        // Signed before issuers were URLs: `iss` wxauth, no client_id or scope.
        let mut before = claims();
        before.iss = LEGACY_ISSUER.into();
        before.client_id = None;
        before.scope = None;
        let old = key.sign(&before);
        assert!(
            !old.split('.')
                .nth(1)
                .unwrap()
                .contains(&URL_SAFE_NO_PAD.encode("client_id"))
        );
        assert_eq!(verifier(&[&key]).verify(&old, NOW, None), Ok(before));
        // A verifier that knows no issuer yet takes the legacy one only.
        let unconfigured = Verifier::from_jwks(&Jwks {
            keys: vec![key.jwk()],
        });
        assert_eq!(
            unconfigured.verify(&token, NOW, None),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn an_id_token_never_passes_as_an_access_token() {
        let key = pair("k1", 1);
        let id_token = key.sign_id_token(&IdClaims {
            iss: ISSUER.into(),
            sub: "42".into(),
            aud: "wx4f4bc4dec97d474b".into(),
            azp: "wx4f4bc4dec97d474b".into(),
            iat: NOW,
            exp: NOW + 900,
        });
        assert_eq!(
            verifier(&[&key]).verify(&id_token, NOW, None),
            Err(TokenError::Malformed)
        );
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
