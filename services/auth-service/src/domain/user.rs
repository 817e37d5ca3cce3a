//! A user of one mini-program.

use super::{NicknameCheck, Phone, Profile, lifecycle::Standing};

/// A user: one person in one mini-program, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// wxauth's id for the user.
    pub id: i64,
    /// The account: one person across the apps of one Open Platform account (by unionid).
    pub account_id: i64,
    /// The mini-program.
    pub appid: String,
    /// The user's openid in that mini-program (empty for a deleted user: erased).
    pub openid: String,
    /// The user's unionid, once WeChat gave one.
    pub unionid: Option<String>,
    /// What is known of the profile.
    pub profile: Profile,
    /// The phone number, once given (stored sealed; here opened).
    pub phone: Option<Phone>,
    /// What WeChat's content check said of the nickname, when it was checked.
    pub nickname_check: Option<NicknameCheck>,
    /// Where the user stands: active, suspended, being deleted, deleted.
    pub standing: Standing,
    /// When the user first logged in, Unix seconds.
    pub created_at: i64,
    /// When the user last changed, Unix seconds.
    pub updated_at: i64,
}
