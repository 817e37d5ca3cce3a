//! The REST contract's input rules, enforced: what `/openapi.json` promises about each field
//! (required, pattern, length) is checked here, once, before any call goes to the
//! auth-service, so a request the document calls valid is never refused as malformed and one
//! it calls invalid never gets through. The view types carry the same numbers as schema
//! attributes; a test holds the two together.

use wxauth_wechat::{AppId, InvalidValue, JsCode, PhoneCode};

use crate::envelope::ApiError;

/// The longest session id, refresh token or access token accepted, in characters (the
/// auth-service takes 4,096 bytes: four per character at most).
pub const MAX_TOKEN_CHARS: usize = 1024;
/// The longest `encryptedData`, in characters (WeChat's are a few hundred).
pub const MAX_ENCRYPTED_DATA_CHARS: usize = 8192;
/// The longest `iv`, in characters (WeChat's are 24).
pub const MAX_IV_CHARS: usize = 64;
/// The longest `rawData`, in characters.
pub const MAX_RAW_DATA_CHARS: usize = 4096;
/// The longest `signature`, in characters (WeChat's are 40).
pub const MAX_SIGNATURE_CHARS: usize = 128;
/// The longest `wx.login()` code.
pub const MAX_CODE_CHARS: usize = 128;

/// A present, non-empty field of at most `max` characters.
pub fn bounded(field: &str, value: Option<String>, max: usize) -> Result<String, ApiError> {
    let value = value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required")))?;
    if value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(value)
}

/// An optional field: absent and empty are the same; otherwise at most `max` characters.
pub fn optional(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value.filter(|value| !value.is_empty()) {
        Some(value) => bounded(field, Some(value), max).map(Some),
        None => Ok(None),
    }
}

/// A field that may be left out (or null), but not sent empty.
pub fn omissible(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(value) if value.is_empty() => Err(ApiError::bad_request(format!(
            "{field} is empty: leave it out, or send it"
        ))),
        Some(value) => bounded(field, Some(value), max).map(Some),
    }
}

/// A mini-program appid: `wx` and 16 lowercase hex digits (the rule of
/// [`wxauth_wechat::AppId`], which the auth-service parses it with again).
pub fn appid(value: Option<String>) -> Result<String, ApiError> {
    let value = bounded("appid", value, 18)?;
    shaped(AppId::parse("appid", &value), value)
}

/// The code of `wx.login()`: 1 to 128 letters, digits, `_` or `-` ([`JsCode`]'s rule).
pub fn code(value: Option<String>) -> Result<String, ApiError> {
    let value = bounded("code", value, MAX_CODE_CHARS)?;
    shaped(JsCode::parse("code", &value), value)
}

/// The code of the `getPhoneNumber` button: the same shape as a login code ([`PhoneCode`]).
pub fn phone_code(value: Option<String>) -> Result<String, ApiError> {
    let value = bounded("code", value, MAX_CODE_CHARS)?;
    shaped(PhoneCode::parse("code", &value), value)
}

/// The value, once the wechat crate's type has accepted it; its refusal names the field and
/// the rule, never the value.
fn shaped<T>(parsed: Result<T, InvalidValue>, value: String) -> Result<String, ApiError> {
    parsed
        .map(|_| value)
        .map_err(|invalid| ApiError::bad_request(invalid.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appids_and_codes_follow_the_documented_patterns() {
        assert!(appid(Some("wx4f4bc4dec97d474b".into())).is_ok());
        for bad in [
            "",
            "wx4F4BC4DEC97D474B",
            "wx4f4bc4dec97d474",
            "xx4f4bc4dec97d474b",
        ] {
            assert!(appid(Some(bad.into())).is_err(), "{bad}");
        }
        assert!(appid(None).is_err());
        assert!(code(Some("0a3Bc-_9".into())).is_ok());
        assert!(code(Some("a b".into())).is_err());
        assert!(code(Some("x".repeat(129))).is_err());
        assert!(code(Some("x".repeat(128))).is_ok());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(bounded("uuid", Some("界".repeat(MAX_TOKEN_CHARS)), MAX_TOKEN_CHARS).is_ok());
        let err = bounded(
            "uuid",
            Some("a".repeat(MAX_TOKEN_CHARS + 1)),
            MAX_TOKEN_CHARS,
        )
        .unwrap_err();
        assert_eq!(err.msg, "uuid is longer than 1024 characters");
        assert_eq!(optional("rawData", Some(String::new()), 8).unwrap(), None);
        assert_eq!(optional("rawData", None, 8).unwrap(), None);
    }
}
