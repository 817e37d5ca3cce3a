//! The JSON the gateway answers with, as types: the handlers build these, and the OpenAPI
//! document is generated from the same types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wxauth_proto::v1::{TokenPair, User};

/// What the mini-program may see of a user: the profile and phone, not the WeChat ids. A
/// field nothing is known of yet is left out, not sent empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The wxauth user id.
    pub user_id: String,
    /// The account: the same person across the mini-programs of one Open Platform account.
    pub account_id: String,
    /// Nickname, once a real one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Avatar URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// 1 male, 2 female (left out when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<i32>,
    /// For example "zh_CN".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Province.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    /// Country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Phone number with country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Phone number without country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pure_phone_number: Option<String>,
    /// Phone country code, for example "86".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_country_code: Option<String>,
}

/// Text the auth-service sends empty when nothing is known (proto3 has no absence).
fn known(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            user_id: user.user_id,
            account_id: user.account_id,
            nickname: known(user.nickname),
            avatar_url: known(user.avatar_url),
            gender: (user.gender != 0).then_some(user.gender),
            language: known(user.language),
            city: known(user.city),
            province: known(user.province),
            country: known(user.country),
            phone_number: known(user.phone_number),
            pure_phone_number: known(user.pure_phone_number),
            phone_country_code: known(user.phone_country_code),
        }
    }
}

/// `data` of `wxsmallusersave`: the seed client reads `token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedLogin {
    /// The access token (a JWT), for `authorization: Bearer`.
    pub token: String,
    /// When the access token expires, Unix seconds.
    pub expires_at: Option<i64>,
    /// The refresh token, for `POST /v1/token/refresh`.
    pub refresh_token: String,
    /// When the refresh token expires, Unix seconds.
    pub refresh_token_expires_at: Option<i64>,
    /// The user.
    pub user: Option<UserView>,
}

/// `data` of `DELETE /v1/me`: what the deletion did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    /// Whether the data is erased already.
    pub erased: bool,
    /// When it is erased (Unix seconds), during a cooling-off; null once erased.
    pub erase_at: Option<i64>,
}

impl From<wxauth_proto::v1::DeleteMeResponse> for DeletedView {
    fn from(deleted: wxauth_proto::v1::DeleteMeResponse) -> Self {
        Self {
            erased: deleted.erased,
            erase_at: deleted.erase_at.map(|at| at.seconds),
        }
    }
}

/// A token pair, with OAuth 2.0 field names.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairView {
    /// The access token (a JWT), for `authorization: Bearer`.
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: String,
    /// When the access token expires, Unix seconds.
    pub expires_at: Option<i64>,
    /// The single-use refresh token.
    pub refresh_token: String,
    /// When the refresh token expires, Unix seconds.
    pub refresh_token_expires_at: Option<i64>,
}

impl From<TokenPair> for TokenPairView {
    fn from(tokens: TokenPair) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_at: tokens.access_token_expires_at.map(|at| at.seconds),
            refresh_token: tokens.refresh_token,
            refresh_token_expires_at: tokens.refresh_token_expires_at.map(|at| at.seconds),
        }
    }
}

/// `data` of `POST /v1/login`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilentLogin {
    /// The tokens.
    #[serde(flatten)]
    pub tokens: TokenPairView,
    /// A session for sending encrypted data later (phone number) through `wxsmallusersave`.
    pub session_id: String,
    /// The user.
    pub user: Option<UserView>,
}

/// Query of `GET /wxauth/getsessionkey`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionKeyQuery {
    /// The mini-program's appid.
    #[param(value_type = String, required = true, pattern = "^wx[0-9a-f]{16}$", example = "wx4f4bc4dec97d474b")]
    pub appid: Option<String>,
    /// The code from `wx.login()`.
    #[param(value_type = String, required = true, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub code: Option<String>,
}

/// Body of `POST /wxauth/wxsmallusersave` (JSON or form), as the seed client sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SaveUserBody {
    /// The mini-program's appid.
    #[schema(value_type = String, required = true, pattern = "^wx[0-9a-f]{16}$", example = "wx4f4bc4dec97d474b")]
    pub appid: Option<String>,
    /// The session id `getsessionkey` returned.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    pub uuid: Option<String>,
    /// `userinfo` (wx.getUserInfo) or `phone` (legacy getPhoneNumber).
    #[serde(rename = "type")]
    #[schema(value_type = DataType, required = true)]
    pub kind: Option<String>,
    /// `encryptedData`, base64, as WeChat gave it.
    #[serde(rename = "encryptedData")]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 8192)]
    pub encrypted_data: Option<String>,
    /// `iv`, base64.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 64)]
    pub iv: Option<String>,
    /// `rawData` of wx.getUserInfo, exactly as received. Optional, but only with
    /// `signature` and `type=userinfo`; empty counts as absent.
    #[serde(rename = "rawData")]
    #[schema(max_length = 4096)]
    pub raw_data: Option<String>,
    /// `signature` of wx.getUserInfo: sent with `rawData` or not at all.
    #[schema(max_length = 128)]
    pub signature: Option<String>,
}

/// What `encryptedData` holds: the `type` of `wxsmallusersave`, documented as an enum (the
/// handler reads it as text, to answer an unknown one with a message).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// From `wx.getUserInfo()`.
    UserInfo,
    /// From the legacy `getPhoneNumber`.
    Phone,
}

/// Body of `POST /v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    /// The mini-program's appid.
    #[schema(value_type = String, required = true, pattern = "^wx[0-9a-f]{16}$", example = "wx4f4bc4dec97d474b")]
    pub appid: Option<String>,
    /// The code from `wx.login()`.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub code: Option<String>,
}

/// Body of `POST /v1/logout`: the refresh token, needed only when no bearer token is sent.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LogoutBody {
    /// The refresh token of the session to end.
    #[schema(min_length = 1, max_length = 1024)]
    pub refresh_token: Option<String>,
}

/// Body of `POST /v1/token/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    /// The refresh token.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    pub refresh_token: Option<String>,
}

/// Body of `POST /v1/me/profile`: what the user filled in (`chooseAvatar`, the nickname
/// input). Either field or both; what is not sent is kept.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProfileBody {
    /// 1 to 64 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]{1,64}$"
    )]
    pub nickname: Option<String>,
    /// An https URL of printable ASCII, at most 1,024 bytes.
    #[schema(max_length = 1024, pattern = "^https://[!-.0-~][!-~]*$")]
    pub avatar_url: Option<String>,
}

/// Body of `POST /v1/me/phone`: the code of the `getPhoneNumber` button.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneBody {
    /// `e.detail.code` of the button's callback (not the login code).
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub code: Option<String>,
}
