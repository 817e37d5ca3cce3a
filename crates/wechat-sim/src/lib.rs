//! A stateful simulator of WeChat's mini-program server API, the only stand-in wxauth's
//! tests use.
//!
//! It is an independent oracle: its JSON, errcodes and crypto follow WeChat's documentation
//! (`shared/wechat/API.md`), not wxauth's own types, so a misunderstanding in wxauth shows up
//! as a failing test instead of being mirrored here.
//!
//! What it models:
//! - `GET /sns/jscode2session` as WeChat answers it: codes valid five minutes and usable once
//!   (40029, 40163), unknown appid (40013), wrong secret (40125), high-risk users (40226), a
//!   per-user frequency limit (45011), and one live session_key per (appid, openid) that each
//!   exchange rotates.
//! - What a test needs to play the mini-program, under `/sim/`: mint a code as `wx.login()`
//!   does, and produce `encryptedData`/`iv`/`rawData`/`signature` as `wx.getUserInfo()` and
//!   the legacy `getPhoneNumber` do, under the user's current session_key.
//! - Faults: answer the next calls with a chosen errcode, or slowly.

mod crypto;
mod miniprogram;
mod routes;
mod state;

pub use miniprogram::{MiniProgramError, SignedUserInfo, Watermark};
pub use routes::router;
pub use state::{App, Sim};

/// Parses `appid:secret` pairs separated by commas, the format of `WECHAT_SIM_APPS` (and of
/// the auth-service's `WXAUTH_APPS`, so one value can configure both in dev).
pub fn parse_apps(raw: &str) -> Result<Vec<App>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((appid, secret)) if !appid.is_empty() && !secret.is_empty() => Ok(App {
                appid: appid.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err("each app must be written appid:secret".to_owned()),
        })
        .collect()
}
