//! The mini-programs this deployment serves.

use std::collections::HashMap;

use wxauth_wechat::{AppId, AppSecret};

use crate::error::AuthError;

/// The apps served, each with its secret.
pub struct Apps(HashMap<AppId, AppSecret>);

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut appids: Vec<&str> = self.0.keys().map(AppId::as_str).collect();
        appids.sort_unstable();
        f.debug_tuple("Apps").field(&appids).finish()
    }
}

impl Apps {
    /// The apps of the settings.
    pub fn new(apps: HashMap<AppId, AppSecret>) -> Self {
        Self(apps)
    }

    /// The secret of `appid`, or "not served here".
    pub fn secret(&self, appid: &AppId) -> Result<&AppSecret, AuthError> {
        self.0.get(appid).ok_or(AuthError::UnknownApp)
    }

    /// Whether `appid` is served here.
    pub fn serves(&self, appid: &AppId) -> Result<(), AuthError> {
        self.secret(appid).map(drop)
    }

    /// The appids served.
    pub fn appids(&self) -> impl Iterator<Item = &AppId> {
        self.0.keys()
    }

    /// How many apps are served.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is (settings refuse that).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
