//! Validated values that cross the WeChat boundary. Each is parsed once, where it enters,
//! so nothing downstream handles a raw string that could be malformed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Why a value was refused. The message names the field and the rule, never the value,
/// because some of these values are secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct InvalidValue {
    /// The field that was refused, as the caller named it.
    pub field: &'static str,
    /// What the field must look like.
    pub rule: &'static str,
}

/// A mini-program appid: "wx" followed by 16 lowercase hex digits.
///
/// Checked strictly so that a typo is a clear error here instead of a 40013 from WeChat, and
/// so an appid is always safe to log and to use as a key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    /// Parses an appid.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        let valid = raw.len() == 18
            && raw.starts_with("wx")
            && raw[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue {
                field,
                rule: "must be a mini-program appid: \"wx\" followed by 16 lowercase hex digits",
            })
        }
    }

    /// The appid as WeChat spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mini-program's app secret. Redacted in `Debug`, no `Display`; only the client reads it.
#[derive(Clone)]
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub struct AppSecret(SecretString);

impl AppSecret {
    /// Wraps a secret read from settings. WeChat's secrets are 32 hex digits, but we only
    /// insist on something plausible: a wrong secret is WeChat's 40125 to report.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue {
                field,
                rule: "must be 1 to 128 printable ASCII characters",
            });
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    #[cfg(feature = "client")]
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret(<redacted>)")
    }
}

/// Whether `raw` has the shape of WeChat's one-time codes (the login code, the phone
/// button's code): 1 to 128 letters, digits, `_` or `-`, so it is safe in a URL or JSON.
pub(crate) fn code_shaped(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `raw` can be a user's openid or unionid as WeChat hands them out: 1 to 128 bytes
/// and no control character. WeChat's ids are 28 characters of base64url today; the rule is
/// loose on purpose, so that a new format at WeChat does not stop logins, and strict where it
/// counts: PostgreSQL's text cannot hold a NUL (the login would fail as an internal error),
/// and an id with a line break or a NUL in it is not WeChat's.
pub(crate) fn id_shaped(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 128 && !raw.chars().any(char::is_control)
}

/// A `wx.login()` code. Only its shape is checked: 1 to 128 characters of `[0-9A-Za-z_-]`.
///
/// A code with a quote or a space in it would end up in a URL; WxJava #3245 shows what a
/// malformed code does there (the whole URL, secret included, lands in an error message).
#[derive(Clone, PartialEq, Eq)]
pub struct JsCode(String);

impl JsCode {
    /// Parses a code.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        if code_shaped(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue {
                field,
                rule: "must be the code from wx.login(): 1 to 128 letters, digits, '_' or '-'",
            })
        }
    }

    /// The code as the client sent it. A code is single-use and short-lived, but it still
    /// buys a session: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsCode(<redacted>)")
    }
}

/// A user's `session_key` as WeChat gives it: base64 of 16 bytes. Redacted in `Debug`.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl SessionKey {
    /// Wraps the base64 string WeChat returned (or that was decrypted from storage).
    pub fn new(base64: String) -> Self {
        Self(SecretString::from(base64))
    }

    /// Takes the session_key of a WeChat answer, if it is one: base64 of the 16 bytes of an
    /// AES-128 key. Anything else, kept, would fail every later decryption of the user's
    /// data as an internal error; refused here, it is WeChat's malformed answer, at once.
    #[cfg(feature = "client")]
    pub(crate) fn from_wechat(base64: String) -> Option<Self> {
        use base64::{Engine as _, engine::general_purpose::STANDARD};
        let decoded = STANDARD.decode(&base64).ok()?;
        (decoded.len() == 16).then(|| Self::new(base64))
    }

    /// The base64 string, for the rawData signature and for sealing at rest.
    pub fn expose_base64(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "client")]
    #[test]
    fn a_session_key_from_wechat_is_base64_of_sixteen_bytes() {
        let key = SessionKey::from_wechat("tiihtNczf5v6AKRyjwEUhQ==".into());
        assert_eq!(
            key.map(|key| key.expose_base64().to_owned()).as_deref(),
            Some("tiihtNczf5v6AKRyjwEUhQ==")
        );
        for bad in [
            "",
            "c2hvcnQ=",
            "tiihtNczf5v6AKRyjwEUhQ",
            "tiihtNczf5v6AKRyjwEUhQ==tiihtNczf5v6AKRyjwEUhQ==",
            "tiihtNczf5v6AKRyjwEU h==",
        ] {
            assert!(SessionKey::from_wechat(bad.into()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn appid_accepts_only_the_wechat_shape() {
        assert!(AppId::parse("appid", "wx4f4bc4dec97d474b").is_ok());
        for bad in [
            "",
            "wx",
            "wx4f4bc4dec97d474",
            "wx4f4bc4dec97d474bb",
            "WX4f4bc4dec97d474b",
            "wx4F4BC4DEC97D474B",
            "wx4f4bc4dec97d474g",
            "wx4f4bc4dec97d474\u{e9}",
        ] {
            assert!(AppId::parse("appid", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn code_refuses_characters_that_would_break_a_url() {
        assert!(JsCode::parse("code", "0a3Xyz_-9").is_ok());
        for bad in ["", "a b", "a\"b", "a&secret=x", "a/b", &"x".repeat(129)] {
            assert!(JsCode::parse("code", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_errors_do_not_echo_values() {
        let secret = AppSecret::parse("secret", "s3cr3t-value").unwrap();
        let key = SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==".into());
        let code = JsCode::parse("code", "c0de").unwrap();
        let printed = format!("{secret:?} {key:?} {code:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(!printed.contains("tiihtN"), "{printed}");
        assert!(!printed.contains("c0de"), "{printed}");
        let err = AppSecret::parse("secret", "bad secret").unwrap_err();
        assert!(!err.to_string().contains("bad secret"));
    }
}
