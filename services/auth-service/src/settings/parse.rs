//! The formats of the settings that hold several values: `appid:secret` pairs,
//! `kid:base64` keys and `appid:host|host` avatar hosts. Errors name the setting and the rule,
//! never a secret.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use wxauth_token::KeyPair;
use wxauth_wechat::{AppId, AppSecret};

use super::SettingsError;
use crate::secrets::Keyring;

pub(super) fn parse_apps(raw: &str) -> Result<HashMap<AppId, AppSecret>, SettingsError> {
    let malformed = |rule: &str| SettingsError::Malformed {
        setting: "WXAUTH_APPS",
        rule: rule.to_owned(),
    };
    let mut apps = HashMap::new();
    for pair in raw
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (appid, secret) = pair
            .split_once(':')
            .ok_or_else(|| malformed("each entry must be appid:secret"))?;
        let appid = AppId::parse("appid", appid).map_err(|err| malformed(&err.to_string()))?;
        let secret =
            AppSecret::parse("the secret", secret).map_err(|err| malformed(&err.to_string()))?;
        if apps.insert(appid, secret).is_some() {
            return Err(malformed("an appid is listed twice"));
        }
    }
    if apps.is_empty() {
        return Err(SettingsError::Missing {
            setting: "WXAUTH_APPS",
            hint: "list the mini-programs to serve as appid:secret pairs separated by commas",
        });
    }
    Ok(apps)
}

/// Parses `kid:base64` entries of 32-byte keys separated by commas (the format of both key
/// settings); at least one, no kid twice.
fn parse_kid_keys(
    setting: &'static str,
    raw: &str,
) -> Result<Vec<(String, [u8; 32])>, SettingsError> {
    let malformed = |rule: &str| SettingsError::Malformed {
        setting,
        rule: rule.to_owned(),
    };
    let mut keys: Vec<(String, [u8; 32])> = Vec::new();
    for pair in raw
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (kid, key) = pair
            .split_once(':')
            .ok_or_else(|| malformed("each entry must be kid:base64"))?;
        let kid_ok = !kid.is_empty()
            && kid.len() <= 32
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !kid_ok {
            return Err(malformed(
                "a kid must be 1 to 32 letters, digits, '-' or '_'",
            ));
        }
        let key: [u8; 32] = STANDARD
            .decode(key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("each key must be 32 bytes, base64-encoded"))?;
        if keys.iter().any(|(known, _)| known == kid) {
            return Err(malformed("a kid is listed twice"));
        }
        keys.push((kid.to_owned(), key));
    }
    if keys.is_empty() {
        return Err(malformed("no key is listed"));
    }
    Ok(keys)
}

/// The session_key keyring; `active` (else the first key) seals.
pub(super) fn parse_keys(raw: &str, active: Option<&str>) -> Result<Keyring, SettingsError> {
    let keys = parse_kid_keys("WXAUTH_SESSION_KEY_KEYS", raw)?;
    let active = active.map_or_else(|| keys[0].0.clone(), str::to_owned);
    Keyring::with_active(keys, &active).ok_or(SettingsError::Malformed {
        setting: "WXAUTH_SESSION_KEY_KID",
        rule: "must name one of the kids of WXAUTH_SESSION_KEY_KEYS".into(),
    })
}

pub(super) fn parse_signing_keys(raw: &str) -> Result<Vec<KeyPair>, SettingsError> {
    Ok(parse_kid_keys("WXAUTH_TOKEN_SIGNING_KEYS", raw)?
        .into_iter()
        .map(|(kid, seed)| KeyPair::from_seed(kid, &seed))
        .collect())
}

/// The avatar hosts of each app: `appid:host|host` entries separated by commas, of served
/// apps. A host is lowercase letters, digits, '-' and '.', and may start with '.' (every
/// host under it).
pub(super) fn parse_avatar_hosts(
    raw: &str,
    apps: &HashMap<AppId, AppSecret>,
) -> Result<HashMap<String, Vec<String>>, SettingsError> {
    let malformed = |rule: String| SettingsError::Malformed {
        setting: "WXAUTH_AVATAR_HOSTS",
        rule,
    };
    let mut hosts = HashMap::new();
    for entry in raw
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (appid, list) = entry
            .split_once(':')
            .ok_or_else(|| malformed("each entry must be appid:host|host".to_owned()))?;
        let appid = AppId::parse("appid", appid).map_err(|err| malformed(err.to_string()))?;
        if !apps.contains_key(&appid) {
            return Err(malformed(format!(
                "the app {appid} is not served (WXAUTH_APPS)"
            )));
        }
        let list = list
            .split('|')
            .map(|host| {
                let host = host.trim().to_ascii_lowercase();
                let name = host.strip_prefix('.').unwrap_or(&host);
                let valid = !name.is_empty()
                    && !name.starts_with('.')
                    && !name.ends_with('.')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                valid.then_some(host).ok_or_else(|| {
                    malformed(
                        "a host is letters, digits, '-' and '.', without scheme, port or path \
                         (a leading '.' takes every host under it)"
                            .to_owned(),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if hosts.insert(appid.as_str().to_owned(), list).is_some() {
            return Err(malformed("an appid is listed twice".to_owned()));
        }
    }
    Ok(hosts)
}
