//! The code of the `getPhoneNumber` button (the current way to a phone number; not the login
//! code). The call that redeems it is in `client`.

use crate::{InvalidValue, types::code_shaped};

/// The code the `getPhoneNumber` button gives: single use, five minutes.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneCode(String);

impl PhoneCode {
    /// Parses a code: 1 to 128 letters, digits, `_` or `-` (the shape of WeChat's codes).
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        if code_shaped(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue {
                field,
                rule: "must be the code of the getPhoneNumber button (e.detail.code): 1 to 128 letters, digits, '_' or '-'",
            })
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PhoneCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneCode(<redacted>)")
    }
}
