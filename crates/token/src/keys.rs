//! The signing side: a key pair signs access and ID tokens, and publishes its public half as
//! a JWK for verifiers that hold no secret.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::{ACCESS_TOKEN_TYPE, Claims, Header, IdClaims};

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

    /// Signs `claims` into a compact JWT access token (`typ: at+jwt`).
    pub fn sign(&self, claims: &Claims) -> String {
        self.sign_json(ACCESS_TOKEN_TYPE, claims)
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`).
    pub fn sign_id_token(&self, claims: &IdClaims) -> String {
        self.sign_json("JWT", claims)
    }

    fn sign_json(&self, typ: &str, claims: &impl Serialize) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some(typ.into()),
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
