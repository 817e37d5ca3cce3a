//! The auth-service's one domain error. Each variant's `Display` is the message a client
//! may read: it says what to do and carries no internal detail. Internal causes travel in
//! [`AuthError::Internal`] for the logs only.

use std::time::Duration;

use wxauth_wechat::Errcode;

/// Why a login, validation or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A request field is missing or malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The appid is well-formed but not configured here.
    #[error("this appid is not served by this deployment")]
    UnknownApp,
    /// The session id is unknown, expired, replaced by a newer login, or of another appid.
    #[error("unknown or expired login session: call wx.login() and start again")]
    SessionNotFound,
    /// WeChat refused the code (40029 invalid or expired, 40163 used).
    #[error("wechat rejected the login code (errcode {errcode}): call wx.login() for a new code")]
    CodeRejected {
        /// What WeChat answered.
        errcode: Errcode,
    },
    /// The code was already submitted here; it is never sent to WeChat twice.
    #[error("this login code was already used: call wx.login() for a new code")]
    CodeAlreadyUsed,
    /// WeChat blocked the user as high risk.
    #[error("wechat blocked this login as high risk (errcode {errcode}); do not retry")]
    LoginBlocked {
        /// What WeChat answered.
        errcode: Errcode,
    },
    /// WeChat's per-user frequency limit was hit.
    #[error("wechat's rate limit was hit (errcode {errcode}): slow down and log in again later")]
    RateLimited {
        /// What WeChat answered.
        errcode: Errcode,
    },
    /// WeChat rejected this deployment's appid or secret.
    #[error(
        "wechat rejected this deployment's credentials for the appid (errcode {errcode}): an operator must fix the configuration"
    )]
    WeChatMisconfigured {
        /// What WeChat answered.
        errcode: Errcode,
    },
    /// WeChat is busy, slow or unreachable.
    #[error("wechat is unavailable ({what}): call wx.login() for a new code and retry later")]
    WeChatUnavailable {
        /// What WeChat answered, when it answered.
        errcode: Option<Errcode>,
        /// A short, client-safe description: "busy", "timed out", "unreachable".
        what: &'static str,
    },
    /// WeChat refused the code of the `getPhoneNumber` button.
    #[error(
        "wechat rejected the phone number code (errcode {errcode}): it is used once and lives five minutes, so ask the user to tap the button again"
    )]
    PhoneCodeRejected {
        /// What WeChat answered.
        errcode: Errcode,
    },
    /// The phone code was already sent to WeChat once; it is never sent twice.
    #[error(
        "this phone number code was already used: it works once, so ask the user to tap the button again"
    )]
    PhoneCodeAlreadyUsed,
    /// The stored session_key is not WeChat's current one for the user (87009).
    #[error(
        "the stored session_key is no longer the user's current one at wechat (errcode 87009): the user must log in again"
    )]
    SessionKeyInvalid,
    /// WeChat is busy, slow or unreachable, for a call other than the login exchange.
    #[error("wechat is unavailable ({what}): retry later")]
    WeChatApiUnavailable {
        /// What WeChat answered, when it answered.
        errcode: Option<Errcode>,
        /// A short, client-safe description: "busy", "timed out", "unreachable".
        what: &'static str,
    },
    /// This app is over its quota of calls to WeChat; WeChat was not called.
    #[error(
        "this mini-program is over its limit of calls to wechat (WXAUTH_WECHAT_CALLS_PER_SECOND): retry in {retry_after_secs} s"
    )]
    QuotaExceeded {
        /// When a call will be let through again.
        retry_after_secs: u64,
    },
    /// WeChat answered with an undocumented errcode or a body that is not its API.
    #[error("wechat answered unexpectedly{}: retry later", errcode.map(|e| format!(" (errcode {e})")).unwrap_or_default())]
    WeChatFailed {
        /// What WeChat answered, when it was an errcode.
        errcode: Option<Errcode>,
    },
    /// The encrypted data does not decrypt or verify under the session's key.
    #[error(
        "encryptedData could not be decrypted or verified with this session: the session_key is probably stale, call wx.login() and start again"
    )]
    DecryptionFailed,
    /// rawData does not match its signature.
    #[error(
        "signature does not match rawData: send rawData exactly as wx.getUserInfo() returned it, unencoded"
    )]
    SignatureMismatch,
    /// The token is unknown, altered, revoked, of an unknown key or of another app.
    #[error("token is invalid: log in again")]
    TokenInvalid,
    /// The access token has expired.
    #[error("access token has expired: refresh it")]
    TokenExpired,
    /// The caller presented no key, an unknown one, or several.
    #[error(
        "this call needs one caller key this deployment knows, in the x-wxauth-caller-key metadata"
    )]
    CallerUnauthenticated,
    /// The caller's key lacks the scope the RPC needs.
    #[error("this caller may not call {method}: its key lacks the {scope} scope")]
    CallerForbidden {
        /// The RPC.
        method: &'static str,
        /// The scope it needs.
        scope: &'static str,
    },
    /// No user has that id.
    #[error("no user has that id")]
    UserNotFound,
    /// The user is suspended, or waits out a deletion's cooling-off: no login, no token.
    #[error(
        "account suspended: this user may not log in now; the mini-program should tell them to contact its support"
    )]
    AccountSuspended,
    /// The user was deleted: nothing of them is left.
    #[error("this user was deleted: nothing of them is left to read or change")]
    UserDeleted,
    /// WeChat's content check found the nickname risky.
    #[error("wechat's content check refused this nickname: ask the user for another")]
    NicknameRejected,
    /// The caller serves other apps than the one of the user named or found.
    #[error(
        "this caller may not reach the users of that app: its entry in WXAUTH_CALLERS names the apps it serves"
    )]
    AppForbidden,
    /// A scope was asked for that is not granted here, or not to this login.
    #[error("{0}")]
    InvalidScope(String),
    /// A restore of a user whose deletion is not waiting.
    #[error("this user is not waiting out a deletion: there is nothing to restore")]
    NotDeleting,
    /// The database cannot be reached, or cannot do the work just now (a statement ended at
    /// the statement timeout); the source is logged, never sent.
    #[error("the login service's database cannot be reached or is too slow right now: retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something inside failed; the source is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How long a client should wait after a transient failure here or at WeChat: long enough
/// not to hammer a struggling dependency, short enough that a user barely notices.
const RETRY_SOON: Duration = Duration::from_secs(1);
/// WeChat's frequency limit (45011) counts a user's calls per minute.
const WECHAT_RATE_WINDOW: Duration = Duration::from_secs(60);

impl AuthError {
    /// Wraps an internal failure.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// The WeChat errcode behind this error, when WeChat caused it.
    pub fn wechat_errcode(&self) -> Option<Errcode> {
        match self {
            Self::CodeRejected { errcode }
            | Self::PhoneCodeRejected { errcode }
            | Self::LoginBlocked { errcode }
            | Self::RateLimited { errcode }
            | Self::WeChatMisconfigured { errcode } => Some(*errcode),
            Self::WeChatUnavailable { errcode, .. }
            | Self::WeChatApiUnavailable { errcode, .. }
            | Self::WeChatFailed { errcode } => *errcode,
            Self::SessionKeyInvalid => Some(Errcode::SessionSignatureInvalid),
            Self::QuotaExceeded { .. } => None,
            Self::InvalidArgument(_)
            | Self::UnknownApp
            | Self::SessionNotFound
            | Self::CodeAlreadyUsed
            | Self::DecryptionFailed
            | Self::SignatureMismatch
            | Self::TokenInvalid
            | Self::TokenExpired
            | Self::CallerUnauthenticated
            | Self::CallerForbidden { .. }
            | Self::UserNotFound
            | Self::AccountSuspended
            | Self::UserDeleted
            | Self::NicknameRejected
            | Self::AppForbidden
            | Self::NotDeleting
            | Self::InvalidScope(_)
            | Self::PhoneCodeAlreadyUsed
            | Self::Unavailable(_)
            | Self::Internal(_) => None,
        }
    }

    /// When trying again may succeed, for the errors that pass by themselves: sent as a
    /// `google.rpc.RetryInfo`, and by the gateway as `retry-after`. `None` where retrying the
    /// same call cannot help (a refused code, a bad token) or is the operator's to fix.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::QuotaExceeded { retry_after_secs } => {
                Some(Duration::from_secs(*retry_after_secs))
            }
            Self::RateLimited { .. } => Some(WECHAT_RATE_WINDOW),
            Self::WeChatUnavailable { .. }
            | Self::WeChatApiUnavailable { .. }
            | Self::WeChatFailed { .. }
            | Self::Unavailable(_) => Some(RETRY_SOON),
            Self::InvalidArgument(_)
            | Self::UnknownApp
            | Self::SessionNotFound
            | Self::CodeRejected { .. }
            | Self::CodeAlreadyUsed
            | Self::LoginBlocked { .. }
            | Self::WeChatMisconfigured { .. }
            | Self::PhoneCodeRejected { .. }
            | Self::SessionKeyInvalid
            | Self::DecryptionFailed
            | Self::SignatureMismatch
            | Self::TokenInvalid
            | Self::TokenExpired
            | Self::CallerUnauthenticated
            | Self::CallerForbidden { .. }
            | Self::UserNotFound
            | Self::AccountSuspended
            | Self::UserDeleted
            | Self::NicknameRejected
            | Self::AppForbidden
            | Self::NotDeleting
            | Self::InvalidScope(_)
            | Self::PhoneCodeAlreadyUsed
            | Self::Internal(_) => None,
        }
    }
}

/// A storage failure is "unavailable" when the database cannot be reached, else internal.
impl From<crate::store::StoreError> for AuthError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::from(std::sync::Arc::new(err))
    }
}

/// The same, for a failure shared by every caller that waited on one query.
impl From<std::sync::Arc<crate::store::StoreError>> for AuthError {
    fn from(err: std::sync::Arc<crate::store::StoreError>) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(Box::new(err))
        } else {
            Self::internal(err)
        }
    }
}

impl From<crate::domain::OutOfReach> for AuthError {
    fn from(_: crate::domain::OutOfReach) -> Self {
        Self::AppForbidden
    }
}

impl From<crate::domain::scope::UnknownScope> for AuthError {
    fn from(err: crate::domain::scope::UnknownScope) -> Self {
        Self::InvalidScope(err.to_string())
    }
}

impl From<crate::domain::InvalidBearer> for AuthError {
    fn from(err: crate::domain::InvalidBearer) -> Self {
        Self::InvalidArgument(err.to_string())
    }
}

impl From<crate::domain::InvalidProfile> for AuthError {
    fn from(err: crate::domain::InvalidProfile) -> Self {
        Self::InvalidArgument(err.to_string())
    }
}

impl From<wxauth_wechat::InvalidValue> for AuthError {
    fn from(err: wxauth_wechat::InvalidValue) -> Self {
        Self::InvalidArgument(err.to_string())
    }
}

/// Maps a failed `jscode2session` to what the caller must do about it.
impl From<wxauth_wechat::WeChatError> for AuthError {
    fn from(err: wxauth_wechat::WeChatError) -> Self {
        use wxauth_wechat::WeChatError;
        match err {
            WeChatError::Timeout(_) => Self::WeChatUnavailable {
                errcode: None,
                what: "timed out",
            },
            WeChatError::Unreachable(_) => Self::WeChatUnavailable {
                errcode: None,
                what: "unreachable",
            },
            WeChatError::BadResponse(_) => Self::WeChatFailed { errcode: None },
            WeChatError::Api { errcode } => match errcode {
                Errcode::Busy => Self::WeChatUnavailable {
                    errcode: Some(errcode),
                    what: "busy",
                },
                Errcode::InvalidCode | Errcode::CodeUsed => Self::CodeRejected { errcode },
                Errcode::RateLimited => Self::RateLimited { errcode },
                Errcode::HighRisk => Self::LoginBlocked { errcode },
                Errcode::InvalidAppId | Errcode::InvalidSecret => {
                    Self::WeChatMisconfigured { errcode }
                }
                Errcode::AccessTokenInvalid
                | Errcode::AccessTokenMalformed
                | Errcode::AccessTokenExpired
                | Errcode::SessionSignatureInvalid
                | Errcode::Other(_) => Self::WeChatFailed {
                    errcode: Some(errcode),
                },
            },
        }
    }
}

impl AuthError {
    /// Maps a failed call made with the app's access_token (the phone number, checksession,
    /// reset) to what the caller must do. The login code's meanings do not apply: 40029 is
    /// the phone code, 40013 a binding requirement the app does not meet.
    pub fn from_app_token_call(err: wxauth_wechat::WeChatError) -> Self {
        use wxauth_wechat::WeChatError;
        let unavailable = |errcode, what| Self::WeChatApiUnavailable { errcode, what };
        match err {
            WeChatError::Timeout(_) => unavailable(None, "timed out"),
            WeChatError::Unreachable(_) => unavailable(None, "unreachable"),
            WeChatError::BadResponse(_) => Self::WeChatFailed { errcode: None },
            WeChatError::Api { errcode } => match errcode {
                Errcode::Busy => unavailable(Some(errcode), "busy"),
                Errcode::InvalidCode => Self::PhoneCodeRejected { errcode },
                Errcode::RateLimited => Self::RateLimited { errcode },
                Errcode::SessionSignatureInvalid => Self::SessionKeyInvalid,
                Errcode::InvalidAppId | Errcode::InvalidSecret => {
                    Self::WeChatMisconfigured { errcode }
                }
                Errcode::CodeUsed
                | Errcode::HighRisk
                | Errcode::AccessTokenInvalid
                | Errcode::AccessTokenMalformed
                | Errcode::AccessTokenExpired
                | Errcode::Other(_) => Self::WeChatFailed {
                    errcode: Some(errcode),
                },
            },
        }
    }
}

/// Maps a decrypt failure: format errors name the field, everything judged with the key is
/// the one uniform error.
impl From<wxauth_wechat::crypto::DecryptError> for AuthError {
    fn from(err: wxauth_wechat::crypto::DecryptError) -> Self {
        use wxauth_wechat::crypto::DecryptError;
        match err {
            DecryptError::InvalidBase64 { .. }
            | DecryptError::InvalidIvLength
            | DecryptError::InvalidCiphertextLength => Self::InvalidArgument(err.to_string()),
            DecryptError::Undecryptable => Self::DecryptionFailed,
            DecryptError::SignatureMismatch => Self::SignatureMismatch,
            // Our own stored key is malformed: not the client's fault.
            DecryptError::InvalidKeyLength => Self::internal(err),
        }
    }
}
