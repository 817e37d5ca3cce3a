//! The JSON the gateway answers with, as types: the handlers build these, and the OpenAPI
//! document is generated from the same types, so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wxauth_proto::v1::{TokenPair, User};

/// What the mini-program may see of a user: the profile and phone, not the WeChat ids.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The wxauth user id.
    pub user_id: String,
    /// Nickname (empty until a real one is known).
    pub nickname: String,
    /// Avatar URL.
    pub avatar_url: String,
    /// 0 unknown, 1 male, 2 female.
    pub gender: i32,
    /// For example "zh_CN".
    pub language: String,
    /// City.
    pub city: String,
    /// Province.
    pub province: String,
    /// Country.
    pub country: String,
    /// Phone number with country code.
    pub phone_number: String,
    /// Phone number without country code.
    pub pure_phone_number: String,
    /// Phone country code, for example "86".
    pub phone_country_code: String,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            user_id: user.user_id,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            gender: user.gender,
            language: user.language,
            city: user.city,
            province: user.province,
            country: user.country,
            phone_number: user.phone_number,
            pure_phone_number: user.pure_phone_number,
            phone_country_code: user.phone_country_code,
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
    pub appid: Option<String>,
    /// The code from `wx.login()`.
    pub code: Option<String>,
}

/// Body of `POST /wxauth/wxsmallusersave` (JSON or form), as the seed client sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SaveUserBody {
    /// The mini-program's appid.
    pub appid: Option<String>,
    /// The session id `getsessionkey` returned.
    pub uuid: Option<String>,
    /// `userinfo` (wx.getUserInfo) or `phone` (legacy getPhoneNumber).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `encryptedData`, base64, as WeChat gave it.
    #[serde(rename = "encryptedData")]
    pub encrypted_data: Option<String>,
    /// `iv`, base64.
    pub iv: Option<String>,
    /// `rawData` of wx.getUserInfo, exactly as received (optional, with `signature`).
    #[serde(rename = "rawData")]
    pub raw_data: Option<String>,
    /// `signature` of wx.getUserInfo (optional, with `rawData`).
    pub signature: Option<String>,
}

/// Body of `POST /v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    /// The mini-program's appid.
    pub appid: Option<String>,
    /// The code from `wx.login()`.
    pub code: Option<String>,
}

/// Body of `POST /v1/token/refresh`, and of `POST /v1/logout` without a bearer token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    /// The refresh token.
    pub refresh_token: Option<String>,
}
