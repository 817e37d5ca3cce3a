//! What completing a login checks: the rawData signature, the decryption and the watermark
//! of the data WeChat encrypted under the session's key. Pure: no network, no storage.

use wxauth_wechat::{AppId, crypto};

use crate::{
    domain::{Bearer, UserUpdate},
    error::AuthError,
    login_sessions::OpenedSession,
};

/// How far in the future a watermark may be (clocks differ), in seconds.
const MAX_FUTURE_SECS: i64 = 300;

/// What the encrypted data of a completed login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `wx.getUserInfo()`.
    UserInfo,
    /// Legacy `getPhoneNumber`.
    Phone,
}

/// rawData and its signature, as `wx.getUserInfo()` returned them.
#[derive(Debug, Clone)]
pub struct SignedRawData {
    /// The profile JSON, exactly as received.
    pub raw_data: String,
    /// `hex(sha1(rawData + session_key))`.
    pub signature: String,
}

/// A completed login as the transport parsed it: every field present and well-formed.
#[derive(Debug)]
pub struct CompleteRequest {
    /// The appid the client claims.
    pub appid: AppId,
    /// The session id from `create_session`.
    pub session_id: Bearer,
    /// What was encrypted.
    pub kind: DataKind,
    /// base64 ciphertext.
    pub encrypted_data: String,
    /// base64 iv.
    pub iv: String,
    /// rawData and signature, when the client sent them (only with user info).
    pub signed_raw_data: Option<SignedRawData>,
}

/// What the data allows to write to the user, once the signature, the decryption and the
/// watermark (appid, openid, age at `now`) have been checked under the session's key.
pub fn check(
    req: &CompleteRequest,
    session: &OpenedSession,
    now: i64,
    max_age_secs: i64,
) -> Result<UserUpdate, AuthError> {
    if let Some(signed) = &req.signed_raw_data {
        crypto::verify_signature(&session.session_key, &signed.raw_data, &signed.signature)?;
    }
    let freshness = crypto::Freshness {
        now,
        max_age_secs: Some(max_age_secs),
        max_future_secs: MAX_FUTURE_SECS,
    };
    Ok(match req.kind {
        DataKind::UserInfo => UserUpdate::from_user_info(
            crypto::decrypt_user_info(
                &session.session_key,
                &req.encrypted_data,
                &req.iv,
                &req.appid,
                &session.openid,
                freshness,
            )?,
            session.unionid.clone(),
        ),
        DataKind::Phone => UserUpdate::from_phone(
            crypto::decrypt_phone(
                &session.session_key,
                &req.encrypted_data,
                &req.iv,
                &req.appid,
                freshness,
            )?,
            session.unionid.clone(),
        ),
    })
}
