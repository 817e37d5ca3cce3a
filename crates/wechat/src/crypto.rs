//! Decryption and verification of what `wx.getUserInfo()` and the legacy `getPhoneNumber`
//! hand the mini-program: AES-128-CBC with PKCS#7 under the user's `session_key`.
//!
//! The rules that the peers get wrong are enforced here, in one place:
//! - every length is checked before the cipher runs, so no input can panic;
//! - padding is checked strictly, and every failure after the cipher (padding, UTF-8, JSON,
//!   watermark, openid) is the one [`DecryptError::Undecryptable`], so an attacker learns
//!   nothing about why (no padding oracle);
//! - the rawData signature is compared in constant time.

use aes::Aes128;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::{AppId, SessionKey, types::id_shaped};

type Aes128CbcDec = cbc::Decryptor<Aes128>;

/// The largest `encryptedData` accepted, in base64 characters. WeChat's payloads are about
/// 1 KiB; anything far larger is not WeChat's.
pub const MAX_ENCRYPTED_DATA_LEN: usize = 16 * 1024;

/// Why encrypted data was refused.
///
/// The format variants say exactly what is wrong with a field, because they can be judged
/// without the key (they leak nothing) and the usual cause, a `+` turned into a space in
/// transit, deserves a precise message. Everything judged with the key collapses into
/// [`DecryptError::Undecryptable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// A field is not valid base64. `space` is true when it holds a space, the sign of a
    /// `+` decoded as a space by form or URL decoding.
    #[error("{field} is not valid base64{}", if *space { " (it holds a space: a '+' was probably turned into a space in transit; send it in a JSON body or percent-encode it)" } else { "" })]
    InvalidBase64 {
        /// The field, as the client names it.
        field: &'static str,
        /// Whether the field contains a space.
        space: bool,
    },
    /// The iv does not decode to 16 bytes.
    #[error("iv must be 16 bytes after base64 decoding")]
    InvalidIvLength,
    /// The session key does not decode to 16 bytes (a storage or WeChat fault, not the client's).
    #[error("session_key must be 16 bytes after base64 decoding")]
    InvalidKeyLength,
    /// The ciphertext is empty, not a multiple of 16 bytes, or too large.
    #[error(
        "encryptedData must decode to a non-empty multiple of 16 bytes, at most {MAX_ENCRYPTED_DATA_LEN} base64 characters"
    )]
    InvalidCiphertextLength,
    /// The data does not decrypt, parse or verify under this key. The key is probably stale:
    /// each `wx.login()` may rotate it, so the user must log in again.
    #[error(
        "encryptedData could not be decrypted or verified with this session: the session_key is probably stale, log in again"
    )]
    Undecryptable,
    /// A rawData signature did not match `sha1(rawData + session_key)`.
    #[error(
        "signature does not match rawData: send rawData exactly as wx.getUserInfo() returned it, unencoded"
    )]
    SignatureMismatch,
}

/// The watermark WeChat puts in every encrypted payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Watermark {
    /// The appid the data was produced for.
    pub appid: String,
    /// When WeChat produced the data, in Unix seconds.
    pub timestamp: i64,
}

/// The decrypted result of `wx.getUserInfo()`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// The user's openid in this app; must be the session's.
    pub open_id: String,
    /// Since 2021 usually WeChat's placeholder "微信用户".
    #[serde(default)]
    pub nick_name: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    pub gender: Option<i32>,
    /// For example "zh_CN".
    #[serde(default)]
    pub language: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Province.
    #[serde(default)]
    pub province: Option<String>,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Present when the app is bound to an Open Platform account.
    #[serde(default)]
    pub union_id: Option<String>,
    /// Checked against the session's appid.
    pub watermark: Watermark,
}

/// The decrypted result of the legacy `getPhoneNumber` button.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneInfo {
    /// With the country code for numbers outside China.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    /// For example "86"; kept (uni-id drops it). WeChat sends a string in practice but its
    /// own example shows a number: both are read, as text.
    #[serde(deserialize_with = "text_or_number")]
    pub country_code: String,
    /// Checked against the session's appid.
    pub watermark: Watermark,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(u64),
    }
    Ok(match TextOrNumber::deserialize(deserializer)? {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(number) => number.to_string(),
    })
}

/// Limits on the watermark timestamp. WeChat's clock and ours differ a little, and data
/// produced long ago under a still-valid key is a replay.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// The current time in Unix seconds (injected, so tests with old vectors say so).
    pub now: i64,
    /// The oldest accepted watermark, in seconds before `now`; `None` accepts any age.
    pub max_age_secs: Option<i64>,
    /// How far in the future a watermark may be, for clock skew.
    pub max_future_secs: i64,
}

impl Freshness {
    fn accepts(&self, timestamp: i64) -> bool {
        let not_future = timestamp <= self.now.saturating_add(self.max_future_secs);
        let not_stale = self
            .max_age_secs
            .is_none_or(|max_age| timestamp >= self.now.saturating_sub(max_age));
        not_future && not_stale
    }
}

/// Decrypts `encryptedData` with `iv` under `session_key` and returns the plaintext bytes.
///
/// Lengths are checked before the cipher runs; padding is checked strictly.
pub fn decrypt(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
) -> Result<Vec<u8>, DecryptError> {
    if encrypted_data.len() > MAX_ENCRYPTED_DATA_LEN {
        return Err(DecryptError::InvalidCiphertextLength);
    }
    let key = STANDARD
        .decode(session_key.expose_base64())
        .map_err(|_| DecryptError::InvalidKeyLength)?;
    let key: [u8; 16] = key.try_into().map_err(|_| DecryptError::InvalidKeyLength)?;
    let iv = decode_field("iv", iv)?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| DecryptError::InvalidIvLength)?;
    let mut ciphertext = decode_field("encryptedData", encrypted_data)?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(DecryptError::InvalidCiphertextLength);
    }
    let plaintext_len = Aes128CbcDec::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut ciphertext)
        .map_err(|_| DecryptError::Undecryptable)?
        .len();
    ciphertext.truncate(plaintext_len);
    Ok(ciphertext)
}

/// Decrypts and verifies a `wx.getUserInfo()` payload for the session of (`appid`, `openid`).
pub fn decrypt_user_info(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    appid: &AppId,
    openid: &str,
    freshness: Freshness,
) -> Result<UserInfo, DecryptError> {
    let plaintext = decrypt(session_key, encrypted_data, iv)?;
    let info: UserInfo =
        serde_json::from_slice(&plaintext).map_err(|_| DecryptError::Undecryptable)?;
    check_watermark(&info.watermark, appid, freshness)?;
    // A unionId that cannot be an id (a NUL, a line break) is not WeChat's.
    if info.open_id != openid
        || info
            .union_id
            .as_deref()
            .is_some_and(|id| !id.is_empty() && !id_shaped(id))
    {
        return Err(DecryptError::Undecryptable);
    }
    Ok(info)
}

/// Decrypts and verifies a legacy `getPhoneNumber` payload for a session of `appid`.
pub fn decrypt_phone(
    session_key: &SessionKey,
    encrypted_data: &str,
    iv: &str,
    appid: &AppId,
    freshness: Freshness,
) -> Result<PhoneInfo, DecryptError> {
    let plaintext = decrypt(session_key, encrypted_data, iv)?;
    let info: PhoneInfo =
        serde_json::from_slice(&plaintext).map_err(|_| DecryptError::Undecryptable)?;
    check_watermark(&info.watermark, appid, freshness)?;
    Ok(info)
}

/// Checks `signature == hex(sha1(rawData + session_key))` in constant time.
///
/// rawData must be the exact string the client got; a URL-encoded one (WxJava #1056) fails.
pub fn verify_signature(
    session_key: &SessionKey,
    raw_data: &str,
    signature: &str,
) -> Result<(), DecryptError> {
    let expected = signature_of(session_key, raw_data);
    let given = hex::decode(signature.trim().to_ascii_lowercase())
        .map_err(|_| DecryptError::SignatureMismatch)?;
    if given.len() == expected.len() && bool::from(given.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(DecryptError::SignatureMismatch)
    }
}

/// `sha1(rawData + session_key)`, the digest WeChat signs rawData with.
pub fn signature_of(session_key: &SessionKey, raw_data: &str) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.expose_base64().as_bytes());
    hasher.finalize().into()
}

fn check_watermark(
    watermark: &Watermark,
    appid: &AppId,
    freshness: Freshness,
) -> Result<(), DecryptError> {
    if watermark.appid != appid.as_str() || !freshness.accepts(watermark.timestamp) {
        return Err(DecryptError::Undecryptable);
    }
    Ok(())
}

fn decode_field(field: &'static str, value: &str) -> Result<Vec<u8>, DecryptError> {
    STANDARD
        .decode(value)
        .map_err(|_| DecryptError::InvalidBase64 {
            field,
            space: value.contains(' '),
        })
}

#[cfg(test)]
mod tests;
