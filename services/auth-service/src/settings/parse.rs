//! The formats of the settings that hold several values: `appid:secret` pairs,
//! `kid:base64` keys and `appid:host|host` avatar hosts; and the checks of the URLs the
//! service is given (the issuer, WeChat's base). Errors name the setting and the rule, never
//! a secret.

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

/// The gateway's default address, the issuer of a dev stack.
const DEV_ISSUER: &str = "http://127.0.0.1:8080";

/// The issuer: an `https://` URL without query or fragment (plain `http://` only to this
/// machine or in dev mode), without a trailing slash (discovery appends paths to it).
pub(super) fn check_issuer(raw: Option<&str>, dev: bool) -> Result<Option<String>, SettingsError> {
    let raw = raw.map(str::trim).filter(|raw| !raw.is_empty());
    let Some(raw) = raw else {
        return Ok(dev.then(|| DEV_ISSUER.to_owned()));
    };
    let malformed = |rule: &str| SettingsError::Malformed {
        setting: "WXAUTH_ISSUER",
        rule: rule.to_owned(),
    };
    let issuer = raw.trim_end_matches('/');
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or_else(|| {
            malformed("must be an https:// URL, the address the gateway is reached at")
        })?;
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    if host.is_empty()
        || issuer.contains(['?', '#', ' '])
        || !issuer.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(malformed(
            "must be an https:// URL with a host and no query or fragment",
        ));
    }
    if issuer.starts_with("http://") && check_wechat_base(issuer, dev).is_err() {
        return Err(malformed(
            "must be https:// (plain http:// only for this machine, or with WXAUTH_DEV=1)",
        ));
    }
    Ok(Some(issuer.to_owned()))
}

/// Whether the URL after `http://`, `rest`, names this machine.
pub(super) fn loopback_host(rest: &str) -> bool {
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    rest.starts_with("[::1]")
        || host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// WeChat's base must be `https://`: the app secret and every session_key cross it. Plain
/// `http://` is taken only for a server on this machine (a simulator in tests) or in dev
/// mode (the simulator of the dev stack).
pub(super) fn check_wechat_base(base: &str, dev: bool) -> Result<(), SettingsError> {
    let malformed = |rule: &str| SettingsError::Malformed {
        setting: "WECHAT_API_BASE",
        rule: rule.to_owned(),
    };
    if base.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = base.strip_prefix("http://") else {
        return Err(malformed("must be an https:// URL"));
    };
    if dev || loopback_host(rest) {
        Ok(())
    } else {
        Err(malformed(
            "must be https:// (plain http:// only for this machine, or with WXAUTH_DEV=1 for the simulator)",
        ))
    }
}

/// The audit trail's retention in seconds, from WXAUTH_AUDIT_RETENTION_DAYS or its finer
/// form WXAUTH_AUDIT_RETENTION_SECS (one of them; 90 days when neither is set).
pub(super) fn audit_retention_secs(
    days: Option<u32>,
    secs: Option<u32>,
) -> Result<i64, SettingsError> {
    match (days, secs) {
        (Some(_), Some(_)) => Err(SettingsError::Malformed {
            setting: "WXAUTH_AUDIT_RETENTION_DAYS",
            rule: "set WXAUTH_AUDIT_RETENTION_DAYS or WXAUTH_AUDIT_RETENTION_SECS, not both".into(),
        }),
        (Some(days), None) => Ok(i64::from(days) * 86_400),
        (None, Some(secs)) => Ok(i64::from(secs)),
        (None, None) => Ok(90 * 86_400),
    }
}
