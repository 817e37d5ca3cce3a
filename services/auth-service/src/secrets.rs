//! Secret material the auth-service makes and keeps: random ids, their digests, and the
//! sealing of WeChat session_keys at rest.

use std::{collections::HashMap, fmt};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Fills `N` bytes from the OS random source.
///
/// An OS whose random source fails cannot issue safe ids; that is an unrecoverable error for
/// the request, reported as internal.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A new bearer secret (session id, token): 256 random bits, base64url, with a prefix that
/// tells a reader what it is (and lets secret scanners find leaked ones).
pub fn new_bearer(prefix: &str) -> Result<String, getrandom::Error> {
    Ok(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// The digest under which a bearer secret is stored and looked up. Looking up by digest
/// means the database never compares the secret itself, and a stolen table cannot be used.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new bearer secret that begins with `order` (8 bytes, big-endian) before its 256 random
/// bits: stored under [`ordered_digest`], bearers made in increasing order land at the end
/// of their table's primary key, not on a random leaf of it. On a large table a random leaf
/// is a random page written (and a full-page image in the WAL after each checkpoint) per
/// bearer issued. The order is not secret: it tells when the bearer was made, as the access
/// token beside it does.
pub fn new_ordered_bearer(prefix: &str, order: u64) -> Result<String, getrandom::Error> {
    let mut body = [0u8; ORDER_BYTES + 32];
    body[..ORDER_BYTES].copy_from_slice(&order.to_be_bytes());
    getrandom::fill(&mut body[ORDER_BYTES..])?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(body)))
}

/// Bytes of order before the random bits of an ordered bearer.
const ORDER_BYTES: usize = 8;

/// The key under which a bearer of [`new_ordered_bearer`] is stored and looked up: its order,
/// then its [`digest`]. A bearer of any other shape (one made by [`new_bearer`] before
/// bearers were ordered, or garbage) keeps its plain digest, so bearers already handed out
/// are still found. The order a presented bearer claims is only a place to look: the digest
/// after it must match too.
pub fn ordered_digest(prefix: &str, secret: &str) -> Vec<u8> {
    let digest = digest(secret);
    let order = secret
        .strip_prefix(prefix)
        .filter(|body| body.len() == ORDERED_BODY_CHARS)
        .and_then(|body| URL_SAFE_NO_PAD.decode(body).ok())
        .filter(|bytes| bytes.len() == ORDER_BYTES + 32);
    match order {
        Some(bytes) => [&bytes[..ORDER_BYTES], &digest[..]].concat(),
        None => digest,
    }
}

/// Characters of an ordered bearer's 40 bytes in base64url without padding.
const ORDERED_BODY_CHARS: usize = 54;

/// The digest of a WeChat code, scoped to its appid.
pub fn code_digest(appid: &str, code: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(appid.as_bytes());
    hasher.update([0]);
    hasher.update(code.as_bytes());
    hasher.finalize().to_vec()
}

/// A session_key sealed for storage.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Which key sealed it.
    pub kid: String,
    /// The 96-bit GCM nonce, random per seal.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why sealing or opening failed. Carries no key material and no plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The row names a key id this process was not given.
    #[error("no session_key encryption key with id {0:?} is configured")]
    UnknownKid(String),
    /// The ciphertext, nonce or associated data do not match (tampering, or wrong row).
    #[error("sealed session_key does not open under key {0:?}")]
    Corrupt(String),
    /// The OS random source failed.
    #[error("the os random source failed")]
    Random(#[from] getrandom::Error),
}

/// The keys that seal WeChat session_keys (and phone numbers) at rest: one active key
/// seals, every configured key opens. Keys rotate in two phases: every replica is given the
/// new key first (it opens what a rotated replica seals), then the active kid is switched,
/// and the background re-seal moves stored values to it.
///
/// Each key also gives an index key (HMAC-SHA256 of the key over a fixed label), for keyed
/// digests: a value found by its digest (a phone number), or remembered only as one (a
/// deleted user's openid). A copy of the table without the key cannot link them to anyone.
pub struct Keyring {
    active: String,
    ciphers: HashMap<String, Aes256Gcm>,
    index_keys: HashMap<String, [u8; 32]>,
}

impl Keyring {
    /// Builds a keyring from (kid, 32-byte key) pairs; the first one seals.
    pub fn new(keys: Vec<(String, [u8; 32])>) -> Option<Self> {
        let active = keys.first()?.0.clone();
        Self::with_active(keys, &active)
    }

    /// Builds a keyring from (kid, 32-byte key) pairs in which `active` seals; `None` when no
    /// key has that kid.
    pub fn with_active(keys: Vec<(String, [u8; 32])>, active: &str) -> Option<Self> {
        let index_keys: HashMap<String, [u8; 32]> = keys
            .iter()
            .map(|(kid, key)| (kid.clone(), keyed_digest(key, INDEX_LABEL)))
            .collect();
        let ciphers: HashMap<String, Aes256Gcm> = keys
            .into_iter()
            .map(|(kid, key)| (kid, Aes256Gcm::new(&key.into())))
            .collect();
        ciphers.contains_key(active).then(|| Self {
            active: active.to_owned(),
            ciphers,
            index_keys,
        })
    }

    /// The keyed digest of `value` under the active key's index key, and that kid.
    pub fn index(&self, value: &[u8]) -> Result<Indexed, SealError> {
        let key = self
            .index_keys
            .get(&self.active)
            .ok_or_else(|| SealError::UnknownKid(self.active.clone()))?;
        Ok(Indexed {
            kid: self.active.clone(),
            digest: keyed_digest(key, value).to_vec(),
        })
    }

    /// The keyed digests `value` may be stored under: one per key this keyring holds (a row
    /// indexed before a rotation is found until the re-seal moves it).
    pub fn indexes(&self, value: &[u8]) -> Vec<Vec<u8>> {
        let mut kids: Vec<&String> = self.index_keys.keys().collect();
        kids.sort();
        kids.into_iter()
            .filter_map(|kid| self.index_keys.get(kid))
            .map(|key| keyed_digest(key, value).to_vec())
            .collect()
    }

    /// The kid that seals.
    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// The kids this keyring opens but no longer seals with: what a rotation re-seals.
    pub fn retired_kids(&self) -> Vec<&str> {
        self.ciphers
            .keys()
            .map(String::as_str)
            .filter(|kid| *kid != self.active)
            .collect()
    }

    /// Seals `plaintext`, binding it to `context` (the row it belongs to), so a sealed value
    /// copied into another row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, SealError> {
        let cipher = self
            .ciphers
            .get(&self.active)
            .ok_or_else(|| SealError::UnknownKid(self.active.clone()))?;
        let nonce = random_bytes::<12>()?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Corrupt(self.active.clone()))?;
        Ok(Sealed {
            kid: self.active.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a sealed value for `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = self
            .ciphers
            .get(&sealed.kid)
            .ok_or_else(|| SealError::UnknownKid(sealed.kid.clone()))?;
        if sealed.nonce.len() != 12 {
            return Err(SealError::Corrupt(sealed.kid.clone()));
        }
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Corrupt(sealed.kid.clone()))
    }
}

/// A keyed digest and the kid of the key it was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    /// Which key.
    pub kid: String,
    /// HMAC-SHA256 of the value under that key's index key.
    pub digest: Vec<u8>,
}

/// The label each sealing key is turned into its index key with.
const INDEX_LABEL: &[u8] = b"wxauth.index.v1";

/// HMAC-SHA256 of `message` keyed by `key`.
fn keyed_digest(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.ciphers.keys().collect();
        kids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[(&str, u8)]) -> Keyring {
        Keyring::new(
            keys.iter()
                .map(|(kid, byte)| ((*kid).to_owned(), [*byte; 32]))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn sealed_values_open_only_in_their_context_and_survive_rotation() {
        let old = ring(&[("k1", 1)]);
        let sealed = old.seal(b"session-key", b"row-1").unwrap();
        assert_eq!(sealed.kid, "k1");
        assert_ne!(sealed.ciphertext, b"session-key");
        assert_eq!(old.open(&sealed, b"row-1").unwrap(), b"session-key");
        assert!(matches!(
            old.open(&sealed, b"row-2"),
            Err(SealError::Corrupt(_))
        ));

        let rotated = ring(&[("k2", 2), ("k1", 1)]);
        assert_eq!(rotated.open(&sealed, b"row-1").unwrap(), b"session-key");
        assert_eq!(rotated.seal(b"x", b"c").unwrap().kid, "k2");

        let without_old = ring(&[("k2", 2)]);
        assert!(matches!(
            without_old.open(&sealed, b"row-1"),
            Err(SealError::UnknownKid(_))
        ));
    }

    #[test]
    fn indexes_are_keyed_stable_and_found_under_every_key() {
        let keys = ring(&[("k1", 1)]);
        let first = keys.index(b"13800138000").unwrap();
        assert_eq!(first.kid, "k1");
        assert_eq!(first, keys.index(b"13800138000").unwrap(), "stable");
        assert_ne!(first.digest, keys.index(b"13800138001").unwrap().digest);
        assert_ne!(
            first.digest,
            ring(&[("k1", 2)]).index(b"13800138000").unwrap().digest,
            "keyed"
        );
        assert_ne!(first.digest, Sha256::digest(b"13800138000").to_vec());
        let rotated = ring(&[("k2", 2), ("k1", 1)]);
        assert_eq!(rotated.index(b"13800138000").unwrap().kid, "k2");
        assert!(
            rotated.indexes(b"13800138000").contains(&first.digest),
            "a value indexed before the rotation is still found"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let keys = ring(&[("k1", 1)]);
        let mut sealed = keys.seal(b"session-key", b"row").unwrap();
        sealed.ciphertext[0] ^= 1;
        assert!(keys.open(&sealed, b"row").is_err());
        sealed.nonce.pop();
        assert!(keys.open(&sealed, b"row").is_err());
    }

    #[test]
    fn bearers_are_random_prefixed_and_digests_are_stable() {
        let a = new_bearer("wxs_").unwrap();
        let b = new_bearer("wxs_").unwrap();
        assert!(a.starts_with("wxs_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert_ne!(code_digest("wx1", "c"), code_digest("wx2", "c"));
    }

    #[test]
    fn ordered_bearers_sort_by_their_order_and_old_bearers_keep_their_digest() {
        let early = new_ordered_bearer("wxrt_", 1_700_000_000_000_000).unwrap();
        let late = new_ordered_bearer("wxrt_", 1_700_000_000_000_001).unwrap();
        assert!(
            early.starts_with("wxrt_") && early.len() == 5 + 54,
            "{early}"
        );
        let (early_key, late_key) = (
            ordered_digest("wxrt_", &early),
            ordered_digest("wxrt_", &late),
        );
        assert!(early_key < late_key, "keys sort as their orders do");
        assert_eq!(early_key.len(), 40);
        assert_eq!(&early_key[..8], &1_700_000_000_000_000u64.to_be_bytes());
        assert_eq!(&early_key[8..], &digest(&early)[..]);
        // The same order with other random bits is another key.
        let twin = new_ordered_bearer("wxrt_", 1_700_000_000_000_000).unwrap();
        assert_ne!(ordered_digest("wxrt_", &twin), early_key);
        // A bearer of before (32 random bytes) and anything else keep the plain digest.
        let old = new_bearer("wxrt_").unwrap();
        for other in [
            old.as_str(),
            "wxrt_unknown",
            "x",
            "",
            early.trim_start_matches("wxrt_"),
        ] {
            assert_eq!(ordered_digest("wxrt_", other), digest(other), "{other}");
        }
        // Not base64url of the right length: the plain digest, never a panic.
        let bent = format!("wxrt_{}", "*".repeat(54));
        assert_eq!(ordered_digest("wxrt_", &bent), digest(&bent));
    }

    #[test]
    fn debug_shows_key_ids_but_no_key_material() {
        let printed = format!("{:?}", ring(&[("k1", 0xAB)]));
        assert!(printed.contains("k1"));
        assert!(
            !printed.to_lowercase().contains("ab, ") && !printed.contains("171"),
            "{printed}"
        );
    }
}
