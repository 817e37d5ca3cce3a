//! The validated configuration the service runs with: everything parsed, nothing left to
//! fail at run time.

use std::{fmt, net::SocketAddr, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    apps::Apps,
    callers::Callers,
    secrets::Keyring,
    tls::TlsFiles,
    tokens::{RefreshRules, TokenKeys},
};

/// The validated configuration.
pub struct Config {
    /// The database URL (it may hold a password: redacted in `Debug`).
    pub database_url: SecretString,
    /// A direct URL to the database when `database_url` is a pooler in transaction mode.
    pub database_direct_url: Option<SecretString>,
    /// Where to listen.
    pub grpc_addr: SocketAddr,
    /// Where to serve metrics.
    pub metrics_addr: SocketAddr,
    /// The apps served.
    pub apps: Apps,
    /// WeChat's base URL.
    pub wechat_api_base: String,
    /// Per-call WeChat timeout.
    pub wechat_timeout: Duration,
    /// session_key encryption keys.
    pub keyring: Keyring,
    /// Whether the keys were made up because dev mode is on.
    pub throwaway_keys: bool,
    /// How long a login session is accepted, in seconds.
    pub session_ttl_secs: i64,
    /// The oldest watermark accepted, in seconds; WeChat data older than this is a replay.
    pub watermark_max_age_secs: i64,
    /// Token signing keys and lifetimes.
    pub tokens: TokenKeys,
    /// Whether the token keys were made up because dev mode is on.
    pub throwaway_token_keys: bool,
    /// Who may call what.
    pub callers: Callers,
    /// Pool size.
    pub db_max_connections: u32,
    /// The longest one statement may run.
    pub db_statement_timeout: Duration,
    /// The most AuthService calls in flight.
    pub max_concurrent_calls: usize,
    /// How many verified access tokens are remembered.
    pub token_cache_entries: u64,
    /// Whether gRPC server reflection is served.
    pub reflection: bool,
    /// TLS on the gRPC port, when configured.
    pub tls: Option<TlsFiles>,
    /// Refresh grace and the longest life of a session family.
    pub refresh_rules: RefreshRules,
    /// How long audit events are kept, in seconds.
    pub audit_retention_secs: i64,
    /// How often the revocation listener is checked.
    pub revocation_heartbeat: Duration,
    /// How often access_tokens about to expire are looked for.
    pub app_token_check: Duration,
    /// Calls to WeChat per app per second (0: no limit).
    pub wechat_calls_per_second: u32,
    /// Burst above that rate.
    pub wechat_calls_burst: u32,
    /// How long calls in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often expired rows are purged.
    pub purge_interval: Duration,
    /// How long a deletion waits before erasing; zero: at once.
    pub deletion_cooling_off: Duration,
    /// What happens to a nickname when WeChat's check cannot be made.
    pub nickname_check: crate::profiles::NicknamePolicy,
    /// The hosts each app keeps avatars on.
    pub avatar_hosts: std::collections::HashMap<String, Vec<String>>,
    /// Webhook subscriptions and how deliveries are retried.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Whether the start applies the migrations or waits for them.
    pub migrations: super::Migrations,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("pooled", &self.database_direct_url.is_some())
            .field("grpc_addr", &self.grpc_addr)
            .field("apps", &self.apps)
            .field("wechat_api_base", &self.wechat_api_base)
            .field("wechat_timeout", &self.wechat_timeout)
            .field("keyring", &self.keyring)
            .field("throwaway_keys", &self.throwaway_keys)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("watermark_max_age_secs", &self.watermark_max_age_secs)
            .field("tokens", &self.tokens)
            .field("callers", &self.callers)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The database URL, for connecting.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    /// The direct database URL, when the other goes through a pooler.
    pub fn database_direct_url(&self) -> Option<&str> {
        self.database_direct_url
            .as_ref()
            .map(|url| url.expose_secret())
    }
}
