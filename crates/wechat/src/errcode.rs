//! WeChat's errcodes, as a closed set of known meanings plus the raw number for everything
//! else: an errcode WeChat adds tomorrow must not fail parsing (the open-wechat crate
//! rejects unknown codes such as 40163). Some numbers mean different things on different
//! endpoints (40013 is "invalid appid" for jscode2session, "binding requirement not met" for
//! the phone number); the caller, who knows the endpoint, decides what to tell its user.

use std::fmt;

/// What an errcode means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errcode {
    /// -1: WeChat is busy. The code may still be valid, but resending it blindly is unsafe.
    Busy,
    /// 40029: the code is wrong, expired, of another appid or mangled in transit.
    InvalidCode,
    /// 40163: the code was already exchanged.
    CodeUsed,
    /// 45011: the per-user frequency limit was hit.
    RateLimited,
    /// 40226: WeChat considers the user high-risk and blocks the login.
    HighRisk,
    /// 40013: WeChat does not know the appid.
    InvalidAppId,
    /// 40125: the app secret is wrong.
    InvalidSecret,
    /// 40001: the access_token is not valid (or not the latest).
    AccessTokenInvalid,
    /// 40014: the access_token is malformed.
    AccessTokenMalformed,
    /// 42001: the access_token has expired.
    AccessTokenExpired,
    /// 87009: a session signature (checksession, resetusersessionkey) does not match the
    /// user's current session_key.
    SessionSignatureInvalid,
    /// Any other errcode, kept verbatim for the caller and the logs.
    Other(i64),
}

impl Errcode {
    /// Classifies a raw errcode.
    pub fn from_raw(raw: i64) -> Self {
        match raw {
            -1 => Self::Busy,
            40029 => Self::InvalidCode,
            40163 => Self::CodeUsed,
            45011 => Self::RateLimited,
            40226 => Self::HighRisk,
            40013 => Self::InvalidAppId,
            40125 => Self::InvalidSecret,
            40001 => Self::AccessTokenInvalid,
            40014 => Self::AccessTokenMalformed,
            42001 => Self::AccessTokenExpired,
            87009 => Self::SessionSignatureInvalid,
            other => Self::Other(other),
        }
    }

    /// The number WeChat sent.
    pub fn raw(self) -> i64 {
        match self {
            Self::Busy => -1,
            Self::InvalidCode => 40029,
            Self::CodeUsed => 40163,
            Self::RateLimited => 45011,
            Self::HighRisk => 40226,
            Self::InvalidAppId => 40013,
            Self::InvalidSecret => 40125,
            Self::AccessTokenInvalid => 40001,
            Self::AccessTokenMalformed => 40014,
            Self::AccessTokenExpired => 42001,
            Self::SessionSignatureInvalid => 87009,
            Self::Other(raw) => raw,
        }
    }

    /// Whether WeChat refused the access_token the call was made with: then it must be
    /// dropped (if still the current one), fetched again, and the call retried once.
    pub fn rejects_access_token(self) -> bool {
        matches!(
            self,
            Self::AccessTokenInvalid | Self::AccessTokenMalformed | Self::AccessTokenExpired
        )
    }
}

impl fmt::Display for Errcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_errcode_round_trips_and_unknown_ones_are_kept() {
        for raw in [
            -1,
            40029,
            40163,
            45011,
            40226,
            40013,
            40125,
            40001,
            40014,
            42001,
            87009,
            0,
            61024,
            i64::MAX,
        ] {
            assert_eq!(Errcode::from_raw(raw).raw(), raw, "errcode {raw}");
        }
        assert_eq!(Errcode::from_raw(40163), Errcode::CodeUsed);
        assert_eq!(Errcode::from_raw(99999), Errcode::Other(99999));
    }
}
