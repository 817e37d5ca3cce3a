//! A login session: what a mini-program holds between `wx.login()` and sending its
//! encrypted data (the "3rd_session").

use crate::{domain::merge::AccountState, secrets::Sealed};

/// A live login session, as stored. The session_key in it is sealed.
#[derive(Debug, Clone)]
pub struct LoginSession {
    /// The mini-program.
    pub appid: String,
    /// The user's openid.
    pub openid: String,
    /// The unionid WeChat returned with the code, if any.
    pub unionid: Option<String>,
    /// The sealed session_key.
    pub sealed_key: Sealed,
    /// What the account rule needs, as read when the session was stored; kept only by the
    /// replica that stored it (a session read from the database has none).
    pub account: Option<AccountState>,
}
