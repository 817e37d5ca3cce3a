//! The settings a start cannot do without, all named in one report.

use super::{Settings, SettingsError};

impl Settings {
    /// The required settings that are not set (empty counts as unset), each with how to set
    /// it. Outside dev mode the keys are required too.
    pub(super) fn missing(&self) -> Vec<SettingsError> {
        let unset = |value: Option<&str>| value.is_none_or(|value| value.trim().is_empty());
        let apps_unset = self.apps.split(',').all(|pair| pair.trim().is_empty());
        [
            (unset(Some(&self.database_url)), "DATABASE_URL", "give a postgres:// URL"),
            (
                apps_unset,
                "WXAUTH_APPS",
                "list the mini-programs to serve as appid:secret pairs separated by commas",
            ),
            (
                unset(Some(&self.callers)),
                "WXAUTH_CALLERS",
                "list who may call as name:scope+scope:key entries (scopes: login, validate, admin)",
            ),
            (
                !self.dev && unset(self.session_key_keys.as_deref()),
                "WXAUTH_SESSION_KEY_KEYS",
                "give kid:base64 entries of 32 random bytes each (make one with `head -c32 /dev/urandom | base64`), or set WXAUTH_DEV=1 for throwaway keys",
            ),
            (
                !self.dev && unset(self.token_signing_keys.as_deref()),
                "WXAUTH_TOKEN_SIGNING_KEYS",
                "give kid:base64 entries of 32-byte Ed25519 seeds (make one with `head -c32 /dev/urandom | base64`), or set WXAUTH_DEV=1 for a throwaway key",
            ),
        ]
        .into_iter()
        .filter(|(missing, ..)| *missing)
        .map(|(_, setting, hint)| SettingsError::Missing { setting, hint })
        .collect()
    }
}
