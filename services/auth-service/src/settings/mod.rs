//! Settings, parsed once at start from flags with environment fallbacks (the names are part
//! of the contract: the README's settings table lists them). Secrets are never echoed: their environment values are hidden
//! from `--help`, they are parsed here (not by clap, whose errors quote the value), and every
//! error names the setting and the rule only.
//!
//! - [`config`]: what the settings become, the validated [`Config`]; `error`: why they are
//!   refused, and the migrations choice;
//! - [`parse`]: the formats of list and key settings, and the checks of URL settings;
//! - [`webhooks`]: the webhook subscriptions and how deliveries are retried.

pub mod config;
mod error;
mod parse;
mod required;
mod webhooks;

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use clap::Parser;
use secrecy::SecretString;
use wxauth_token::KeyPair;

use crate::{
    apps::Apps,
    callers::Callers,
    secrets::Keyring,
    tls::TlsFiles,
    tokens::{RefreshRules, TokenKeys},
};
pub use config::Config;
pub use error::{Migrations, SettingsError};

/// Settings whose environment variable was renamed: the old name is still read.
pub const RENAMED: [wxauth_process::config::Renamed; 1] = [wxauth_process::config::Renamed {
    old: "WXAUTH_ACCESS_TOKEN_CHECK_MS",
    new: "WXAUTH_APP_TOKEN_CHECK_MS",
}];
use parse::{
    check_issuer, check_wechat_base, loopback_host, parse_apps, parse_avatar_hosts, parse_keys,
    parse_signing_keys,
};

/// The wxauth auth-service: WeChat Mini Program login over gRPC.
///
/// Every flag can also be given through the environment variable named in its help, or in a
/// TOML config file whose keys are the flag names (`grpc-addr = "0.0.0.0:50051"`); a flag wins
/// over its variable, which wins over the file. `config/auth-service.example.toml` lists them all.
#[derive(Parser)]
#[command(version)]
pub struct Settings {
    /// A TOML file of settings, keyed by flag name. It may hold secrets: keep it private.
    #[arg(long, env = "WXAUTH_CONFIG")]
    pub config: Option<PathBuf>,

    /// How log lines are written to stderr: `text`, or `json` for log shippers.
    #[arg(long, env = "WXAUTH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: wxauth_process::logging::LogFormat,

    /// Where Prometheus scrapes `/metrics` (its own address, never the gRPC one). Port 0 picks
    /// a free port; the address really bound is printed as `metrics on <addr>`.
    #[arg(long, env = "WXAUTH_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,

    /// PostgreSQL connection URL (required). Migrations are applied at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = "")]
    pub database_url: String,

    /// A direct connection URL to the same database, when DATABASE_URL goes through a
    /// connection pooler in transaction mode (PgBouncer, CloudNativePG's Pooler). Then the
    /// requests go through the pooler without prepared statements or session settings, and
    /// what needs a session of its own (the migrations' advisory lock, LISTEN for
    /// revocations) uses this URL. Unset: DATABASE_URL is a direct connection.
    #[arg(long, env = "WXAUTH_DATABASE_DIRECT_URL", hide_env_values = true)]
    pub database_direct_url: Option<String>,

    /// Where the gRPC server listens. Port 0 picks a free port; the address really bound is
    /// printed as `listening on <addr>`.
    #[arg(long, env = "WXAUTH_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// The mini-programs served, as `appid:secret` pairs separated by commas. Several apps
    /// may be served at once.
    #[arg(long, env = "WXAUTH_APPS", hide_env_values = true, default_value = "")]
    pub apps: String,

    /// WeChat's API base URL. Point it at wechat-sim for development and tests.
    #[arg(
        long,
        env = "WECHAT_API_BASE",
        default_value = "https://api.weixin.qq.com"
    )]
    pub wechat_api_base: String,

    /// How long one WeChat call may take, in milliseconds, before it counts as unavailable.
    #[arg(long, env = "WECHAT_TIMEOUT_MS", default_value = "5000", value_parser = wxauth_process::config::at_least_one::<NonZeroU64>)]
    pub wechat_timeout_ms: NonZeroU64,

    /// Keys that encrypt WeChat session_keys at rest, as `kid:base64` pairs separated by
    /// commas, each key 32 random bytes (`head -c32 /dev/urandom | base64`). All of them
    /// decrypt; the one named by WXAUTH_SESSION_KEY_KID (else the first) encrypts. Required
    /// unless dev mode is on. docs/key-rotation.md says how to rotate them.
    #[arg(long, env = "WXAUTH_SESSION_KEY_KEYS", hide_env_values = true)]
    pub session_key_keys: Option<String>,

    /// The kid of WXAUTH_SESSION_KEY_KEYS that encrypts new session_keys (default: the
    /// first). Switched only once every replica has the key.
    #[arg(long, env = "WXAUTH_SESSION_KEY_KID")]
    pub session_key_kid: Option<String>,

    /// How long a login session (the id handed to the mini-program) is accepted, in seconds.
    #[arg(long, env = "WXAUTH_SESSION_TTL_SECS", default_value_t = 2 * 3600, value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub session_ttl_secs: u32,

    /// Keys that sign access tokens (Ed25519), as `kid:base64` pairs separated by commas,
    /// each the 32-byte seed of a key (`head -c32 /dev/urandom | base64`). All are published
    /// in the JWKS and verify; the one named by WXAUTH_TOKEN_SIGNING_KID (else the first)
    /// signs. Required unless dev mode is on. docs/key-rotation.md says how to rotate them.
    #[arg(long, env = "WXAUTH_TOKEN_SIGNING_KEYS", hide_env_values = true)]
    pub token_signing_keys: Option<String>,

    /// The kid of WXAUTH_TOKEN_SIGNING_KEYS that signs new access tokens (default: the
    /// first). Switched only once every replica and every offline verifier has the key.
    #[arg(long, env = "WXAUTH_TOKEN_SIGNING_KID")]
    pub token_signing_kid: Option<String>,

    /// How long an access token is accepted, in seconds. Short: revocation is also enforced,
    /// but offline verifiers only see expiry.
    #[arg(long, env = "WXAUTH_ACCESS_TTL_SECS", default_value_t = 15 * 60, value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub access_ttl_secs: u32,

    /// How long a refresh token is accepted, in seconds: the idle limit of a session
    /// family (each refresh starts it again).
    #[arg(long, env = "WXAUTH_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 3600, value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub refresh_ttl_secs: u32,

    /// The longest a session family lives, however often it is refreshed, in seconds; then
    /// the user logs in again.
    #[arg(long, env = "WXAUTH_FAMILY_MAX_AGE_SECS", default_value_t = 90 * 24 * 3600, value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub family_max_age_secs: u32,

    /// How long after a rotation a refresh token presented again (a lost answer, two tabs)
    /// gets the same successor instead of revoking its family, in seconds; 0 turns the grace
    /// off.
    #[arg(long, env = "WXAUTH_REFRESH_GRACE_SECS", default_value_t = 10)]
    pub refresh_grace_secs: u32,

    /// How long audit events are kept, in days (90 when neither this nor
    /// WXAUTH_AUDIT_RETENTION_SECS is set).
    #[arg(long, env = "WXAUTH_AUDIT_RETENTION_DAYS", value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub audit_retention_days: Option<u32>,

    /// How long audit events are kept, in seconds: the finer form of
    /// WXAUTH_AUDIT_RETENTION_DAYS, for tests and drills. Set one of the two.
    #[arg(long, env = "WXAUTH_AUDIT_RETENTION_SECS", value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub audit_retention_secs: Option<u32>,

    /// How often each replica checks that its revocation listener still hears the database
    /// (a NOTIFY to itself), in milliseconds; one not back within twice this marks the
    /// replica's cache stale at once.
    #[arg(long, env = "WXAUTH_REVOCATION_HEARTBEAT_MS", default_value_t = 1000, value_parser = wxauth_process::config::at_least::<50, u64>)]
    pub revocation_heartbeat_ms: u64,

    /// How often each replica looks for app tokens (WeChat's access_token of each app) about
    /// to expire, in milliseconds. Formerly WXAUTH_ACCESS_TOKEN_CHECK_MS, which is still read.
    #[arg(
        long,
        env = "WXAUTH_APP_TOKEN_CHECK_MS",
        alias = "access-token-check-ms",
        default_value_t = 30_000,
        value_parser = wxauth_process::config::at_least::<100, u64>
    )]
    pub app_token_check_ms: u64,

    /// Calls to WeChat each app may make per second, across all replicas (each replica a
    /// token bucket of its share; 0: no limit). Over it a call is refused before WeChat is
    /// called: RESOURCE_EXHAUSTED with RATE_LIMITED and a RetryInfo, 429 with 10006 and
    /// `retry-after` at the gateway.
    #[arg(long, env = "WXAUTH_WECHAT_CALLS_PER_SECOND", default_value_t = 500)]
    pub wechat_calls_per_second: u32,

    /// How many calls to WeChat an app may make at once above that rate, across all replicas.
    #[arg(long, env = "WXAUTH_WECHAT_CALLS_BURST", default_value_t = 1000)]
    pub wechat_calls_burst: u32,

    /// Who may call: `name:scopes:key` entries separated by commas; scopes are `login` (the
    /// gateway), `validate` (internal services) and `admin` (operators), joined by `+`; keys
    /// are at least 24 characters (`head -c24 /dev/urandom | base64`). Callers send their key
    /// in the `x-wxauth-caller-key` metadata.
    #[arg(
        long,
        env = "WXAUTH_CALLERS",
        hide_env_values = true,
        default_value = ""
    )]
    pub callers: String,

    /// How many verified access tokens ValidateToken keeps, so a token presented again skips
    /// the signature check (revocation is still checked on every call); 0 turns it off.
    #[arg(long, env = "WXAUTH_TOKEN_CACHE_ENTRIES", default_value_t = 10_000)]
    pub token_cache_entries: u64,

    /// The oldest WeChat watermark accepted on encrypted data, in seconds.
    #[arg(long, env = "WXAUTH_WATERMARK_MAX_AGE_SECS", default_value_t = 24 * 3600, value_parser = wxauth_process::config::at_least::<1, u32>)]
    pub watermark_max_age_secs: u32,

    /// The most database connections this process opens.
    #[arg(long, env = "WXAUTH_DB_MAX_CONNECTIONS", default_value = "10", value_parser = wxauth_process::config::at_least_one::<NonZeroU32>)]
    pub db_max_connections: NonZeroU32,

    /// The longest one SQL statement may run, in milliseconds (`statement_timeout`).
    #[arg(long, env = "WXAUTH_DB_STATEMENT_TIMEOUT_MS", default_value = "5000", value_parser = wxauth_process::config::at_least_one::<NonZeroU64>)]
    pub db_statement_timeout_ms: NonZeroU64,

    /// The most AuthService calls in flight on this replica; one more is refused at once
    /// with RESOURCE_EXHAUSTED (reason OVERLOADED) and a one-second RetryInfo. Health and
    /// reflection are not counted.
    #[arg(long, env = "WXAUTH_MAX_CONCURRENT_CALLS", default_value = "256", value_parser = wxauth_process::config::at_least_one::<NonZeroUsize>)]
    pub max_concurrent_calls: NonZeroUsize,

    /// How often expired codes, sessions and tokens are purged, in seconds.
    #[arg(long, env = "WXAUTH_PURGE_INTERVAL_SECS", default_value = "300", value_parser = wxauth_process::config::at_least_one::<NonZeroU64>)]
    pub purge_interval_secs: NonZeroU64,

    /// How long calls in flight may take to finish after SIGTERM, in seconds; past it the
    /// process stops anyway.
    #[arg(long, env = "WXAUTH_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// The TLS certificate chain of the gRPC port, PEM; with WXAUTH_TLS_KEY, gRPC is served
    /// over TLS only. Read again when the file changes.
    #[arg(long, env = "WXAUTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of WXAUTH_TLS_CERT, PEM. It is a secret: keep the file private.
    #[arg(long, env = "WXAUTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// A CA (PEM) that signs client certificates: with it, every client must present one
    /// (mutual TLS), and a caller may be known by its certificate (`cert-sha256:` entries of
    /// WXAUTH_CALLERS).
    #[arg(long, env = "WXAUTH_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// How often the certificate files are checked for a change, in seconds.
    #[arg(long, env = "WXAUTH_TLS_RELOAD_SECS", default_value = "60", value_parser = wxauth_process::config::at_least_one::<NonZeroU64>)]
    pub tls_reload_secs: NonZeroU64,

    /// Serve gRPC server reflection (v1 and v1alpha), so grpcurl can list and describe the
    /// API; `false` to hide it.
    #[arg(long, env = "WXAUTH_REFLECTION", action = clap::ArgAction::Set, default_value_t = true)]
    pub reflection: bool,

    /// The issuer of the tokens, the `iss` they carry: the https URL the gateway is reached at
    /// (`https://auth.example.com`), under which it serves OpenID Connect discovery. Unset:
    /// `http://127.0.0.1:8080` in dev mode; otherwise tokens say `wxauth` and discovery is off.
    #[arg(long, env = "WXAUTH_ISSUER")]
    pub issuer: Option<String>,

    /// How long a deletion waits before the user's data is erased, in seconds; meanwhile the
    /// user is suspended and an operator may undo it (RestoreUser). 0: erased at once.
    #[arg(long, env = "WXAUTH_DELETION_COOLING_OFF_SECS", default_value_t = 0)]
    pub deletion_cooling_off_secs: u32,

    /// What happens to a nickname when WeChat's content check (msgSecCheck) cannot be made:
    /// `fail-closed` refuses it (503, retry later), `fail-open` stores it flagged
    /// `unchecked`, `off` checks no nickname at all.
    #[arg(
        long,
        env = "WXAUTH_NICKNAME_CHECK",
        value_enum,
        default_value = "fail-closed"
    )]
    pub nickname_check: crate::profiles::NicknamePolicy,

    /// The hosts each app keeps avatars on, as `appid:host|host` entries separated by commas
    /// (`.example.com` takes every host under it). An avatar_url elsewhere is refused; an app
    /// without an entry takes any https host.
    #[arg(long, env = "WXAUTH_AVATAR_HOSTS", default_value = "")]
    pub avatar_hosts: String,

    /// Webhook subscriptions and deliveries.
    #[command(flatten)]
    pub webhooks: webhooks::WebhookArgs,

    /// What the start does with the schema: `apply` the migrations (every replica may; they
    /// take a lock), `skip` them and wait until the schema is this build's (when a job with a
    /// schema-changing role applies them, and the service's role may not), or apply them
    /// `only` and exit (that job; only DATABASE_URL is needed).
    #[arg(long, env = "WXAUTH_MIGRATIONS", value_enum, default_value = "apply")]
    pub migrations: Migrations,

    /// Refuse to start when a `WXAUTH_*` variable names no setting (a typo), instead of
    /// warning about it.
    #[arg(long, env = "WXAUTH_STRICT_ENV", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_env: bool,

    /// Dev mode (`WXAUTH_DEV=1`): missing keys are replaced by throwaway ones made at start,
    /// and the log says so. Never in production: sessions do not survive a restart.
    #[arg(long, env = "WXAUTH_DEV", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
}

impl Settings {
    /// Validates the settings into the configuration the service runs with.
    pub fn into_config(self) -> Result<Config, SettingsError> {
        // Every required setting that is missing, in one report rather than one per start.
        let mut missing = self.missing();
        match missing.len() {
            0 => {}
            1 => return Err(missing.remove(0)),
            _ => return Err(SettingsError::Several(missing)),
        }
        let apps = parse_apps(&self.apps)?;
        check_wechat_base(&self.wechat_api_base, self.dev)?;
        let issuer = check_issuer(self.issuer.as_deref(), self.dev)?;
        // An empty value (as `WXAUTH_SESSION_KEY_KEYS=` from a compose file) means unset.
        let given_keys = self
            .session_key_keys
            .as_deref()
            .filter(|raw| !raw.trim().is_empty());
        let (keyring, throwaway_keys) = match (given_keys, self.dev) {
            (Some(raw), _) => (parse_keys(raw, self.session_key_kid.as_deref())?, false),
            (None, true) => {
                let key =
                    crate::secrets::random_bytes::<32>().map_err(|_| SettingsError::Missing {
                        setting: "WXAUTH_SESSION_KEY_KEYS",
                        hint: "the os random source failed, so no throwaway key could be made",
                    })?;
                let keyring =
                    Keyring::new(vec![("dev".to_owned(), key)]).ok_or(SettingsError::Missing {
                        setting: "WXAUTH_SESSION_KEY_KEYS",
                        hint: "no throwaway key could be made",
                    })?;
                (keyring, true)
            }
            (None, false) => {
                return Err(SettingsError::Missing {
                    setting: "WXAUTH_SESSION_KEY_KEYS",
                    hint: "give kid:base64 entries of 32 random bytes each (make one with `head -c32 /dev/urandom | base64`), or set WXAUTH_DEV=1 for throwaway keys",
                });
            }
        };
        let callers = Callers::parse(&self.callers).map_err(|rule| {
            if self.callers.trim().is_empty() {
                SettingsError::Missing {
                    setting: "WXAUTH_CALLERS",
                    hint: "list who may call as name:scope+scope:key entries (scopes: login, validate, admin)",
                }
            } else {
                SettingsError::Malformed {
                    setting: "WXAUTH_CALLERS",
                    rule: rule.to_string(),
                }
            }
        })?;
        if let Some((caller, appid)) = callers
            .apps_named()
            .find(|(_, appid)| !apps.keys().any(|served| served.as_str() == *appid))
        {
            return Err(SettingsError::Malformed {
                setting: "WXAUTH_CALLERS",
                rule: format!(
                    "caller {caller} names the app {appid}, which WXAUTH_APPS does not serve"
                ),
            });
        }
        let avatar_hosts = parse_avatar_hosts(&self.avatar_hosts, &apps)?;
        let webhooks = self.webhooks.parse(
            &|appid| apps.keys().any(|served| served.as_str() == appid),
            self.dev,
        )?;
        let given_signing_keys = self
            .token_signing_keys
            .as_deref()
            .filter(|raw| !raw.trim().is_empty());
        let (signing_keys, throwaway_token_keys) = match (given_signing_keys, self.dev) {
            (Some(raw), _) => (parse_signing_keys(raw)?, false),
            (None, true) => {
                let seed =
                    crate::secrets::random_bytes::<32>().map_err(|_| SettingsError::Missing {
                        setting: "WXAUTH_TOKEN_SIGNING_KEYS",
                        hint: "the os random source failed, so no throwaway key could be made",
                    })?;
                let kid = format!("dev-{}", hex::encode(&seed[..4]));
                (vec![KeyPair::from_seed(kid, &seed)], true)
            }
            (None, false) => {
                return Err(SettingsError::Missing {
                    setting: "WXAUTH_TOKEN_SIGNING_KEYS",
                    hint: "give kid:base64 entries of 32-byte Ed25519 seeds (make one with `head -c32 /dev/urandom | base64`), or set WXAUTH_DEV=1 for a throwaway key",
                });
            }
        };
        // A family's record, and with it the mark that it was revoked, is purged once its
        // refresh tokens have expired; its access tokens must be gone by then, or a replica
        // starting later would not know to refuse them.
        if self.access_ttl_secs > self.refresh_ttl_secs {
            return Err(SettingsError::Malformed {
                setting: "WXAUTH_ACCESS_TTL_SECS",
                rule: format!(
                    "must not exceed WXAUTH_REFRESH_TTL_SECS ({}): an access token may not \
                     outlive the refresh token issued with it",
                    self.refresh_ttl_secs
                ),
            });
        }
        Ok(Config {
            database_url: SecretString::from(self.database_url),
            database_direct_url: self
                .database_direct_url
                .filter(|url| !url.trim().is_empty())
                .map(SecretString::from),
            grpc_addr: self.grpc_addr,
            metrics_addr: self.metrics_addr,
            apps: Apps::new(apps),
            wechat_api_base: self.wechat_api_base,
            wechat_timeout: Duration::from_millis(self.wechat_timeout_ms.get()),
            keyring,
            throwaway_keys,
            session_ttl_secs: i64::from(self.session_ttl_secs),
            watermark_max_age_secs: i64::from(self.watermark_max_age_secs),
            tokens: TokenKeys::new(
                signing_keys,
                self.token_signing_kid.as_deref(),
                i64::from(self.access_ttl_secs),
                i64::from(self.refresh_ttl_secs),
                issuer,
            )
            .ok_or(SettingsError::Malformed {
                setting: "WXAUTH_TOKEN_SIGNING_KID",
                rule: "must name one of the kids of WXAUTH_TOKEN_SIGNING_KEYS".into(),
            })?,
            throwaway_token_keys,
            callers,
            db_max_connections: self.db_max_connections.get(),
            db_statement_timeout: Duration::from_millis(self.db_statement_timeout_ms.get()),
            max_concurrent_calls: self.max_concurrent_calls.get(),
            token_cache_entries: self.token_cache_entries,
            reflection: self.reflection,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert,
                    key,
                    client_ca: self.tls_client_ca,
                    reload_every: Duration::from_secs(self.tls_reload_secs.get()),
                }),
                (None, None) if self.tls_client_ca.is_none() => None,
                _ => {
                    return Err(SettingsError::Malformed {
                        setting: "WXAUTH_TLS_CERT",
                        rule: "WXAUTH_TLS_CERT and WXAUTH_TLS_KEY go together (and WXAUTH_TLS_CLIENT_CA needs both)".into(),
                    });
                }
            },
            refresh_rules: RefreshRules {
                grace_secs: i64::from(self.refresh_grace_secs),
                idle_secs: i64::from(self.refresh_ttl_secs),
                family_max_age_secs: i64::from(self.family_max_age_secs),
            },
            audit_retention_secs: parse::audit_retention_secs(
                self.audit_retention_days,
                self.audit_retention_secs,
            )?,
            revocation_heartbeat: Duration::from_millis(self.revocation_heartbeat_ms),
            app_token_check: Duration::from_millis(self.app_token_check_ms),
            wechat_calls_per_second: self.wechat_calls_per_second,
            wechat_calls_burst: self.wechat_calls_burst,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            purge_interval: Duration::from_secs(self.purge_interval_secs.get()),
            deletion_cooling_off: Duration::from_secs(u64::from(self.deletion_cooling_off_secs)),
            nickname_check: self.nickname_check,
            avatar_hosts,
            webhooks,
            migrations: self.migrations,
        })
    }
}

#[cfg(test)]
mod tests;
