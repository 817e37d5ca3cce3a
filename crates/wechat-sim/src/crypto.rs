//! The mini-program side of WeChat's crypto, written from the documentation: encrypt a JSON
//! payload under the session_key with AES-128-CBC and PKCS#7, and sign rawData.

use aes::Aes128;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// 16 random bytes, base64: a session_key, as WeChat issues them.
pub(crate) fn new_session_key() -> String {
    STANDARD.encode(random_bytes::<16>())
}

/// Random bytes from the OS.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not a state a simulator can continue from.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the os random source works");
    bytes
}

/// Encrypts `plaintext` under the base64 `session_key` with a fresh iv; returns
/// (`encryptedData`, `iv`), both base64.
pub(crate) fn encrypt(session_key: &str, plaintext: &[u8]) -> Option<(String, String)> {
    let key: [u8; 16] = STANDARD.decode(session_key).ok()?.try_into().ok()?;
    let iv = random_bytes::<16>();
    let ciphertext = cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    Some((STANDARD.encode(ciphertext), STANDARD.encode(iv)))
}

/// `hex(sha1(rawData + session_key))`.
pub(crate) fn sign(raw_data: &str, session_key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// The session signature of checksession and resetusersessionkey, as WeChat documents it:
/// lowercase hex of HMAC-SHA256 keyed by the session_key's base64 text, over `message`.
pub(crate) fn session_signature(session_key: &str, message: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(session_key.as_bytes()) else {
        unreachable!("hmac accepts keys of any length")
    };
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    /// The worked examples of `docs/wechat.md`.
    #[test]
    fn the_session_signature_is_tencents() {
        let key = "o0q0otL8aEzpcZL/FT9WsQ==";
        assert_eq!(
            super::session_signature(key, br#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
        assert_eq!(
            super::session_signature(key, b""),
            "46e043c5525c2d817c44be603d30837a808a1d930d038f6fdc3e62a201fed128"
        );
    }
}
