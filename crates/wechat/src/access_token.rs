//! An app's access_token, as `stable_token` hands it out (the call is in `client`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// An app's access_token: a secret, redacted in `Debug`, with no `Display`.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token (as WeChat gave it, or unsealed from storage).
    pub fn new(token: String) -> Self {
        Self(SecretString::from(token))
    }

    /// The token, to send to WeChat or to seal; never to log.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// What `stable_token` returns.
#[derive(Debug)]
pub struct StableToken {
    /// The token.
    pub token: AccessToken,
    /// Its REMAINING lifetime in seconds (not always 7200: WeChat hands out the current
    /// token until it rotates it, five minutes before it expires).
    pub expires_in: i64,
}
