//! A stateful simulator of WeChat's mini-program server API, the only stand-in wxauth's
//! tests use.
//!
//! It is an independent oracle: its JSON, errcodes and crypto follow WeChat's documentation
//! (`docs/wechat.md`), not wxauth's own types, so a misunderstanding in wxauth shows up
//! as a failing test instead of being mirrored here.
//!
//! What it models:
//! - `GET /sns/jscode2session` as WeChat answers it: codes valid five minutes and usable once
//!   (40029, 40163), unknown appid (40013), wrong secret (40125), high-risk users (40226), a
//!   per-user frequency limit (45011), and one live session_key per (appid, openid) that each
//!   exchange rotates.
//! - What a test needs to play the mini-program, under `/sim/`: mint a code as `wx.login()`
//!   does (for an openid, or for a person: then the openid is the person's in that app and,
//!   for apps bound to one Open Platform account, the unionid is the person's across them), and produce `encryptedData`/`iv`/`rawData`/`signature` as `wx.getUserInfo()` and
//!   the legacy `getPhoneNumber` do, under the user's current session_key.
//! - `POST /cgi-bin/stable_token`: one current token per app, handed out until five minutes
//!   before it expires, then a new one (the old keeps working until it expires);
//!   `force_refresh` (at most every 30 s) ends the old one at once. Calls made with an
//!   invalidated token get 40001, with an expired one 42001; `/sim/access_token` ends an
//!   app's tokens either way, and `/sim/stats` counts fetches, new tokens and refusals.
//! - `POST /wxa/business/getuserphonenumber`: codes of the `getPhoneNumber` button (minted
//!   with `/sim/phone_code`), used once, for five minutes, for their app and user (40029).
//! - `GET /wxa/checksession` and `GET /wxa/resetusersessionkey`: the HMAC-SHA256 session
//!   signature keyed by the session_key text (87009 when it does not match, 87008 for
//!   another sig_method); a reset gives the user a new session_key at once.
//! - `POST /wxa/msg_sec_check` (version 2): a word list answers risky, review or pass in
//!   WeChat's JSON; 40003 for an openid that is not the app's user, 61010 for one not seen
//!   within two hours (`/sim/seen` moves that back).
//! - Faults: answer the next calls of an endpoint with a chosen errcode, or slowly, or with
//!   garbage or a redirect.

mod answers;
mod crypto;
mod miniprogram;
mod platform;
mod routes;
mod security;
mod state;
mod wxa;

pub use miniprogram::{MiniProgramError, SignedUserInfo, Watermark};
pub use routes::router;
pub use state::{App, Sim};

/// Parses `appid:secret` entries separated by commas, the format of `WECHAT_SIM_APPS` (and
/// of the auth-service's `WXAUTH_APPS`, so one value can configure both in dev). An entry
/// `appid:secret:platform` binds the app to an Open Platform account: its users get the
/// platform's unionid.
pub fn parse_apps(raw: &str) -> Result<Vec<App>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let mut parts = entry.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(appid), Some(secret), platform)
                    if !appid.is_empty()
                        && !secret.is_empty()
                        && platform.is_none_or(|name| !name.is_empty()) =>
                {
                    Ok(App {
                        appid: appid.to_owned(),
                        secret: secret.to_owned(),
                        platform: platform.map(str::to_owned),
                    })
                }
                _ => {
                    Err("each app must be written appid:secret or appid:secret:platform".to_owned())
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn apps_may_name_their_open_platform_account() {
        let apps = super::parse_apps("wxa:s1, wxb:s2:open-1").unwrap();
        assert_eq!(apps[0].platform, None);
        assert_eq!(apps[1].platform.as_deref(), Some("open-1"));
        assert!(super::parse_apps("wxa").is_err());
        assert!(super::parse_apps("wxa:s:").is_err());
    }
}
