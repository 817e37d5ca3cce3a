//! The mini-program side of WeChat's crypto, written from the documentation: encrypt a JSON
//! payload under the session_key with AES-128-CBC and PKCS#7, and sign rawData.

use aes::Aes128;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use sha1::{Digest, Sha1};

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
