//! Settings, parsed once at start from flags with environment fallbacks (and a TOML file
//! under both), validated into the [`Config`] the gateway runs with. Errors name the setting
//! and the rule, never a value: AUTH_CALLER_KEY is a secret.

use std::{
    net::SocketAddr,
    num::{NonZeroU8, NonZeroU64, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use clap::Parser;
use secrecy::SecretString;
use wxauth_client::connect::ClientTls;
use wxauth_process::{config, logging};

use crate::{request_id::ClientAddress, state::Upstream};

/// The wxauth HTTP gateway: the mini-program's REST calls in, gRPC to the auth-service out.
///
/// Every flag can also be given through the environment variable named in its help, or in a
/// TOML config file whose keys are the flag names; a flag wins over its variable, which wins
/// over the file. `config/gateway.example.toml` lists them all.
#[derive(Parser)]
#[command(name = "gateway", version)]
pub struct Settings {
    /// A TOML file of settings, keyed by flag name. It holds the caller key: keep it private.
    #[arg(long, env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// How log lines are written to stderr: `text`, or `json` for log shippers.
    #[arg(long, env = "WXAUTH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: logging::LogFormat,

    /// Refuse to start when a `GATEWAY_*` variable names no setting (a typo), instead of
    /// warning about it.
    #[arg(long, env = "GATEWAY_STRICT_ENV", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub strict_env: bool,

    /// Where Prometheus scrapes `/metrics`. Port 0 picks a free port; the address really
    /// bound is printed as `metrics on <addr>`.
    #[arg(long, env = "GATEWAY_METRICS_ADDR", default_value = "127.0.0.1:9465")]
    pub metrics_addr: SocketAddr,

    /// Where the HTTP server listens. Port 0 picks a free port; the address really bound is
    /// printed as `listening on <addr>`.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// The auth-service's gRPC URL; `https://` when it serves TLS (then AUTH_TLS_CA is
    /// needed). Several replicas: their URLs separated by commas, and calls are balanced.
    #[arg(long, env = "AUTH_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    pub auth_grpc_url: String,

    /// Look the host of AUTH_GRPC_URL up again every this many seconds and balance across
    /// every address it names (a headless Service); 0: connect to the URL(s) as given.
    #[arg(long, env = "AUTH_GRPC_RESOLVE_SECS", default_value_t = 0)]
    pub auth_grpc_resolve_secs: u64,

    /// The CA (PEM) that signs the auth-service's certificate, to verify it.
    #[arg(long, env = "AUTH_TLS_CA")]
    pub auth_tls_ca: Option<PathBuf>,

    /// The gateway's client certificate (PEM), when the auth-service wants mutual TLS.
    #[arg(long, env = "AUTH_TLS_CERT")]
    pub auth_tls_cert: Option<PathBuf>,

    /// The key of AUTH_TLS_CERT (PEM). A secret: keep the file private.
    #[arg(long, env = "AUTH_TLS_KEY")]
    pub auth_tls_key: Option<PathBuf>,

    /// The name the auth-service's certificate must carry, when not the URL's host.
    #[arg(long, env = "AUTH_TLS_SERVER_NAME")]
    pub auth_tls_server_name: Option<String>,

    /// The largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GATEWAY_BODY_LIMIT_BYTES", default_value = "65536", value_parser = config::at_least_one::<NonZeroUsize>)]
    pub body_limit_bytes: NonZeroUsize,

    /// The gateway's own key for calling the auth-service (one of its WXAUTH_CALLERS, with
    /// the `login` scope). The only secret the gateway holds.
    #[arg(long, env = "AUTH_CALLER_KEY", hide_env_values = true)]
    pub auth_caller_key: String,

    /// How long requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// How long one call to the auth-service may take, in milliseconds (sent to it as the
    /// call's deadline). Keep it above the auth-service's WECHAT_TIMEOUT_MS.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT_MS", default_value = "10000", value_parser = config::at_least_one::<NonZeroU64>)]
    pub upstream_timeout_ms: NonZeroU64,

    /// How long a whole request may take, body included, in milliseconds; past it the
    /// client gets 503. Keep it above GATEWAY_UPSTREAM_TIMEOUT_MS.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value = "15000", value_parser = config::at_least_one::<NonZeroU64>)]
    pub request_timeout_ms: NonZeroU64,

    /// How long a request body may take to arrive once its headers have, in milliseconds;
    /// a slower one is answered 408. At most GATEWAY_REQUEST_TIMEOUT_MS: a client trickling
    /// a body holds a place among the requests in flight meanwhile.
    #[arg(long, env = "GATEWAY_BODY_TIMEOUT_MS", default_value = "5000", value_parser = config::at_least_one::<NonZeroU64>)]
    pub body_timeout_ms: NonZeroU64,

    /// How long a client may take to send the head of its first request, in milliseconds,
    /// counted from the moment it connects; a slower one (slowloris, or a socket that sends
    /// nothing) is disconnected.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_MS", default_value = "5000", value_parser = config::at_least_one::<NonZeroU64>)]
    pub header_read_timeout_ms: NonZeroU64,

    /// How long a connection, HTTP/1 or HTTP/2, may stay open with no request in flight,
    /// in milliseconds; a later request's head must be complete within it. Keep it above
    /// the idle timeout of whatever pools connections in front (60 s for ingress-nginx and
    /// most load balancers), so the pool, not the gateway, closes an idle connection.
    #[arg(long, env = "GATEWAY_IDLE_TIMEOUT_MS", default_value = "75000", value_parser = config::at_least_one::<NonZeroU64>)]
    pub idle_timeout_ms: NonZeroU64,

    /// The most requests in flight; one more is answered 503 with `retry-after` at once.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value = "1024", value_parser = config::at_least_one::<NonZeroUsize>)]
    pub max_concurrent_requests: NonZeroUsize,

    /// The most requests one client address (an IPv6 /64) may have in flight, on every
    /// route; one more is answered 429 with `retry-after` at once. 0: no limit. Clients
    /// behind one NAT share it.
    #[arg(long, env = "GATEWAY_MAX_REQUESTS_PER_CLIENT", default_value_t = 64)]
    pub max_requests_per_client: usize,

    /// The most connections one peer address (an IPv6 /64) may hold open; one more is
    /// closed as soon as it is accepted. 0: no limit. Unset: 256, or no limit when
    /// GATEWAY_TRUST_FORWARDED_FOR is on (then every connection comes from a proxy).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,

    /// Requests to the login routes one client may make per minute (a token bucket per
    /// client address; 0: no limit). Over it: 429 with 10006 and `retry-after`. Clients
    /// behind one NAT share a bucket: keep it generous. Per gateway replica: with N
    /// gateways, divide the per-client limit by N (or enforce it at the ingress).
    #[arg(long, env = "GATEWAY_LOGIN_RATE_PER_MINUTE", default_value_t = 120)]
    pub login_rate_per_minute: u32,

    /// How many login requests a client may make at once above that rate.
    #[arg(long, env = "GATEWAY_LOGIN_BURST", default_value_t = 60)]
    pub login_burst: u32,

    /// Whether the gateway sits behind proxies that append the client's address to
    /// `x-forwarded-for` (only then: without a proxy, a client could name any address).
    #[arg(long, env = "GATEWAY_TRUST_FORWARDED_FOR", action = clap::ArgAction::Set, default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// How many such proxies stand in front of the gateway, each appending the address it
    /// was reached from (1: an ingress; 2: a CDN, then an ingress). The client is the
    /// `x-forwarded-for` address that many places from the right; what stands left of it
    /// was written by the client and is not believed.
    #[arg(long, env = "GATEWAY_TRUSTED_PROXIES", default_value_t = NonZeroU8::MIN)]
    pub trusted_proxies: NonZeroU8,
}

/// The connections a peer may hold when GATEWAY_MAX_CONNECTIONS_PER_CLIENT is not set and
/// no proxy stands in front.
const DEFAULT_CONNECTIONS_PER_CLIENT: usize = 256;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {rule}")]
pub struct SettingsError {
    /// The environment variable.
    pub setting: &'static str,
    /// What it must be.
    pub rule: String,
}

/// The validated settings the gateway runs with.
pub struct Config {
    /// Where HTTP is served.
    pub http_addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// The auth-service.
    pub upstream: Upstream,
    /// The largest body read.
    pub body_limit: usize,
    /// How long a body may take to arrive.
    pub body_timeout: Duration,
    /// How long a whole request may take.
    pub request_timeout: Duration,
    /// How long a request head may take (the first counted from the connection's start).
    pub header_read_timeout: Duration,
    /// How long a connection may idle.
    pub idle_timeout: Duration,
    /// Requests in flight at most.
    pub max_concurrent_requests: usize,
    /// Requests in flight per client at most.
    pub max_requests_per_client: Option<NonZeroUsize>,
    /// Connections per peer at most.
    pub max_connections_per_client: Option<NonZeroUsize>,
    /// Login requests per client and minute (0: no quota).
    pub login_rate_per_minute: u32,
    /// Login requests at once above that rate.
    pub login_burst: u32,
    /// Where a client's address is learnt.
    pub client_address: ClientAddress,
    /// How long requests in flight may take after SIGTERM.
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Validates the settings.
    pub fn into_config(self) -> Result<Config, SettingsError> {
        let malformed = |setting, rule: &str| SettingsError {
            setting,
            rule: rule.to_owned(),
        };
        let tls = match &self.auth_tls_ca {
            Some(ca) => {
                let identity = match (&self.auth_tls_cert, &self.auth_tls_key) {
                    (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
                    (None, None) => None,
                    _ => {
                        return Err(malformed(
                            "AUTH_TLS_CERT",
                            "AUTH_TLS_CERT and AUTH_TLS_KEY go together",
                        ));
                    }
                };
                Some(
                    ClientTls::from_files(ca, identity, self.auth_tls_server_name.clone())
                        .map_err(|err| SettingsError {
                            setting: "AUTH_TLS_CA",
                            rule: err.to_string(),
                        })?,
                )
            }
            None => None,
        };
        if self.body_timeout_ms > self.request_timeout_ms {
            return Err(malformed(
                "GATEWAY_BODY_TIMEOUT_MS",
                "must not exceed GATEWAY_REQUEST_TIMEOUT_MS",
            ));
        }
        let max_connections_per_client = match self.max_connections_per_client {
            Some(max) => NonZeroUsize::new(max),
            None if self.trust_forwarded_for => None,
            None => NonZeroUsize::new(DEFAULT_CONNECTIONS_PER_CLIENT),
        };
        Ok(Config {
            http_addr: self.http_addr,
            metrics_addr: self.metrics_addr,
            upstream: Upstream {
                url: self.auth_grpc_url,
                tls,
                resolve_every: (self.auth_grpc_resolve_secs > 0)
                    .then(|| Duration::from_secs(self.auth_grpc_resolve_secs)),
                timeout: Duration::from_millis(self.upstream_timeout_ms.get()),
                caller_key: SecretString::from(self.auth_caller_key),
            },
            body_limit: self.body_limit_bytes.get(),
            body_timeout: Duration::from_millis(self.body_timeout_ms.get()),
            request_timeout: Duration::from_millis(self.request_timeout_ms.get()),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.get()),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.get()),
            max_concurrent_requests: self.max_concurrent_requests.get(),
            max_requests_per_client: NonZeroUsize::new(self.max_requests_per_client),
            max_connections_per_client,
            login_rate_per_minute: self.login_rate_per_minute,
            login_burst: self.login_burst,
            client_address: if self.trust_forwarded_for {
                ClientAddress::Forwarded {
                    proxies: self.trusted_proxies,
                }
            } else {
                ClientAddress::Peer
            },
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parsed(extra: &[&str]) -> Result<Config, SettingsError> {
        let mut args = vec!["gateway", "--auth-caller-key=gateway-key-0123456789abcdef"];
        args.extend_from_slice(extra);
        Settings::try_parse_from(args).unwrap().into_config()
    }

    #[test]
    fn the_example_config_file_names_only_real_settings() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/gateway.example.toml"
        );
        let args = vec!["gateway".into(), "--config".into(), path.into()];
        let mut folded =
            config::fold_file_into_args(&Settings::command(), args, "GATEWAY_CONFIG", |_| None)
                .unwrap();
        folded.push("--auth-caller-key=gateway-key-0123456789abcdef".into());
        let settings = Settings::try_parse_from(folded).unwrap();
        assert_eq!(settings.metrics_addr.port(), 9465);
        let missing = config::missing_from_example(
            &Settings::command(),
            &std::fs::read_to_string(path).unwrap(),
        );
        assert!(missing.is_empty(), "the example does not list {missing:?}");
    }

    #[test]
    fn the_connection_cap_is_off_behind_a_proxy_unless_set() {
        let direct = parsed(&[]).unwrap();
        assert_eq!(
            direct.max_connections_per_client,
            NonZeroUsize::new(DEFAULT_CONNECTIONS_PER_CLIENT)
        );
        let proxied = parsed(&["--trust-forwarded-for=true"]).unwrap();
        assert_eq!(proxied.max_connections_per_client, None);
        let chosen = parsed(&[
            "--trust-forwarded-for=true",
            "--max-connections-per-client=9",
        ]);
        assert_eq!(
            chosen.unwrap().max_connections_per_client,
            NonZeroUsize::new(9)
        );
        assert_eq!(
            parsed(&["--max-connections-per-client=0"])
                .unwrap()
                .max_connections_per_client,
            None
        );
        assert_eq!(
            parsed(&["--max-requests-per-client=0"])
                .unwrap()
                .max_requests_per_client,
            None
        );
    }

    #[test]
    fn a_body_deadline_past_the_request_deadline_is_refused() {
        let err = parsed(&["--body-timeout-ms=20000"]).err().unwrap();
        assert_eq!(err.setting, "GATEWAY_BODY_TIMEOUT_MS");
        assert!(parsed(&["--body-timeout-ms=15000"]).is_ok());
    }
}
