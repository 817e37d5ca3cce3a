//! The webhook settings: the subscriptions (JSON, with their secrets) and how deliveries
//! are retried and kept.

use std::{
    collections::HashSet,
    num::{NonZeroU32, NonZeroU64},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use secrecy::SecretSlice;
use serde::Deserialize;

use super::{SettingsError, loopback_host};
use crate::{
    domain::events::{EventKind, RetryPolicy},
    webhooks::{Subscription, WebhookSettings},
};

/// The webhook flags.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Webhook subscriptions, a JSON array of `{"name", "appid", "url", "secret", "events",
    /// "pii"}`: `secret` is a Standard Webhooks `whsec_` secret (base64 of 24 to 64 random
    /// bytes), `events` the kinds taken (`user.created`, `user.login`,
    /// `user.profile_updated`, `user.phone_bound`, `session.revoked`,
    /// `session.reuse_detected`, `user.suspended`, `user.deleted`), `pii` (default false)
    /// lets payloads carry full phone numbers. Empty: no events are written.
    #[arg(
        long,
        env = "WXAUTH_WEBHOOKS",
        hide_env_values = true,
        default_value = ""
    )]
    pub webhooks: String,

    /// How long a webhook event is retried after it was written, seconds; then it is dead
    /// until an operator replays it (ReplayEvents).
    #[arg(
        long,
        env = "WXAUTH_WEBHOOK_RETRY_WINDOW_SECS",
        default_value = "86400"
    )]
    pub webhook_retry_window_secs: NonZeroU32,

    /// The wait after a webhook delivery first fails, milliseconds; each later wait doubles
    /// (with 20% jitter either side) up to WXAUTH_WEBHOOK_LONGEST_RETRY_SECS.
    #[arg(long, env = "WXAUTH_WEBHOOK_FIRST_RETRY_MS", default_value = "5000")]
    pub webhook_first_retry_ms: NonZeroU64,

    /// The longest wait between two attempts at a webhook event, seconds.
    #[arg(
        long,
        env = "WXAUTH_WEBHOOK_LONGEST_RETRY_SECS",
        default_value = "3600"
    )]
    pub webhook_longest_retry_secs: NonZeroU32,

    /// How long delivered and dead webhook events are kept, seconds.
    #[arg(long, env = "WXAUTH_WEBHOOK_RETENTION_SECS", default_value = "604800")]
    pub webhook_retention_secs: NonZeroU32,

    /// How often each replica looks for due webhook events when it found none, milliseconds.
    #[arg(long, env = "WXAUTH_WEBHOOK_POLL_MS", default_value = "1000")]
    pub webhook_poll_ms: NonZeroU64,

    /// How long a webhook receiver may take to answer, milliseconds.
    #[arg(long, env = "WXAUTH_WEBHOOK_TIMEOUT_MS", default_value = "5000")]
    pub webhook_timeout_ms: NonZeroU64,
}

/// One subscription as written in WXAUTH_WEBHOOKS.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    appid: String,
    url: String,
    secret: String,
    events: Vec<String>,
    #[serde(default)]
    pii: bool,
}

const SETTING: &str = "WXAUTH_WEBHOOKS";

fn malformed(rule: String) -> SettingsError {
    SettingsError::Malformed {
        setting: SETTING,
        rule,
    }
}

impl WebhookArgs {
    /// The webhook settings, their subscriptions checked against the apps served (`served`)
    /// and `dev` (plain `http://` receivers only on this machine, or in dev mode).
    pub(super) fn parse(
        &self,
        served: &dyn Fn(&str) -> bool,
        dev: bool,
    ) -> Result<WebhookSettings, SettingsError> {
        let raw = self.webhooks.trim();
        let entries: Vec<Entry> = if raw.is_empty() {
            Vec::new()
        } else {
            // The error names a position and the rule, never a value (the JSON holds secrets).
            serde_json::from_str(raw).map_err(|err| {
                malformed(format!(
                    "must be a JSON array of {{\"name\", \"appid\", \"url\", \"secret\", \
                     \"events\", \"pii\"}} objects (at line {} column {}: {})",
                    err.line(),
                    err.column(),
                    match err.classify() {
                        serde_json::error::Category::Data => "a missing, unknown or mistyped field",
                        _ => "not JSON",
                    }
                ))
            })?
        };
        let mut names = HashSet::new();
        let subscriptions = entries
            .into_iter()
            .map(|entry| {
                let name = entry.name.trim().to_owned();
                let valid_name = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid_name {
                    return Err(malformed(
                        "a subscription's name is 1 to 64 letters, digits, '-' and '_'".into(),
                    ));
                }
                if !names.insert(name.clone()) {
                    return Err(malformed(format!(
                        "the subscription {name} is listed twice"
                    )));
                }
                let about = |rule: &str| malformed(format!("subscription {name}: {rule}"));
                if !served(&entry.appid) {
                    return Err(about("its appid is not served (WXAUTH_APPS)"));
                }
                let url = checked_url(&entry.url, dev).map_err(&about)?;
                let key = entry
                    .secret
                    .strip_prefix("whsec_")
                    .and_then(|key| STANDARD.decode(key).ok())
                    .filter(|key| (24..=64).contains(&key.len()))
                    .ok_or_else(|| {
                        about(
                            "its secret must be whsec_ and the base64 of 24 to 64 random bytes \
                             (make one with `echo whsec_$(head -c32 /dev/urandom | base64)`)",
                        )
                    })?;
                let kinds = entry
                    .events
                    .iter()
                    .map(|kind| EventKind::parse(kind))
                    .collect::<Option<Vec<_>>>()
                    .filter(|kinds| !kinds.is_empty())
                    .ok_or_else(|| {
                        about(&format!(
                            "events must list one or more of {}",
                            EventKind::ALL.map(EventKind::name).join(", ")
                        ))
                    })?;
                Ok(Subscription {
                    name,
                    appid: entry.appid,
                    url,
                    key: SecretSlice::from(key),
                    kinds,
                    pii: entry.pii,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WebhookSettings {
            subscriptions,
            retry: RetryPolicy {
                first: Duration::from_millis(self.webhook_first_retry_ms.get()),
                longest: Duration::from_secs(u64::from(self.webhook_longest_retry_secs.get())),
                window: Duration::from_secs(u64::from(self.webhook_retry_window_secs.get())),
            },
            retention_secs: i64::from(self.webhook_retention_secs.get()),
            poll: Duration::from_millis(self.webhook_poll_ms.get()),
            timeout: Duration::from_millis(self.webhook_timeout_ms.get()),
        })
    }
}

/// A receiver's URL: `https://`, or plain `http://` on this machine or in dev mode (the
/// events carry openids and, with pii, phone numbers).
fn checked_url(raw: &str, dev: bool) -> Result<reqwest::Url, &'static str> {
    let url =
        reqwest::Url::parse(raw.trim()).map_err(|_| "its url must be an absolute https:// URL")?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if dev || loopback_host(raw.trim().trim_start_matches("http://")) => Ok(url),
        "http" => Err(
            "its url must be https:// (plain http:// only for this machine, or with WXAUTH_DEV=1)",
        ),
        _ => Err("its url must be an absolute https:// URL"),
    }
}
