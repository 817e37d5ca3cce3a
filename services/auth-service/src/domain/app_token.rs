//! What is known of an app's WeChat access_token, without the token.

/// What an operator may know of an app's token: never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// The app.
    pub appid: String,
    /// When the stored token was fetched, Unix seconds.
    pub fetched_at: Option<i64>,
    /// How long ago that was, by the service's clock, in seconds.
    pub age_secs: Option<i64>,
    /// When it expires, Unix seconds.
    pub expires_at: Option<i64>,
    /// How many times it was fetched.
    pub refreshes: i64,
    /// When a fetch was last tried, Unix seconds.
    pub last_attempt_at: Option<i64>,
    /// How that try ended: `ok`, or what WeChat answered.
    pub last_outcome: Option<String>,
}
