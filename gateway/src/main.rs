//! `gateway`: reads its settings, prints `listening on <addr>` and serves the mini-program's
//! REST calls until SIGTERM or Ctrl-C, finishing the requests in flight.

use std::{
    net::SocketAddr,
    num::{NonZeroU8, NonZeroU64, NonZeroUsize},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};
use wxauth_client::connect::ClientTls;
use wxauth_runtime::{config, logging};

/// The wxauth HTTP gateway: the mini-program's REST calls in, gRPC to the auth-service out.
///
/// Every flag can also be given through the environment variable named in its help, or in a
/// TOML config file whose keys are the flag names; a flag wins over its variable, which wins
/// over the file. `config/gateway.example.toml` lists them all.
#[derive(Parser)]
#[command(version)]
struct Settings {
    /// A TOML file of settings, keyed by flag name. It holds the caller key: keep it private.
    #[arg(long, env = "GATEWAY_CONFIG")]
    config: Option<PathBuf>,

    /// How log lines are written to stderr: `text`, or `json` for log shippers.
    #[arg(long, env = "WXAUTH_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: logging::LogFormat,

    /// Where Prometheus scrapes `/metrics`. Port 0 picks a free port; the address really
    /// bound is printed as `metrics on <addr>`.
    #[arg(long, env = "GATEWAY_METRICS_ADDR", default_value = "127.0.0.1:9465")]
    metrics_addr: SocketAddr,

    /// Where the HTTP server listens. Port 0 picks a free port; the address really bound is
    /// printed as `listening on <addr>`.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,

    /// The auth-service's gRPC URL; `https://` when it serves TLS (then AUTH_TLS_CA is
    /// needed). Several replicas: their URLs separated by commas, and calls are balanced.
    #[arg(long, env = "AUTH_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    auth_grpc_url: String,

    /// Look the host of AUTH_GRPC_URL up again every this many seconds and balance across
    /// every address it names (a headless Service); 0: connect to the URL(s) as given.
    #[arg(long, env = "AUTH_GRPC_RESOLVE_SECS", default_value_t = 0)]
    auth_grpc_resolve_secs: u64,

    /// The CA (PEM) that signs the auth-service's certificate, to verify it.
    #[arg(long, env = "AUTH_TLS_CA")]
    auth_tls_ca: Option<PathBuf>,

    /// The gateway's client certificate (PEM), when the auth-service wants mutual TLS.
    #[arg(long, env = "AUTH_TLS_CERT")]
    auth_tls_cert: Option<PathBuf>,

    /// The key of AUTH_TLS_CERT (PEM). A secret: keep the file private.
    #[arg(long, env = "AUTH_TLS_KEY")]
    auth_tls_key: Option<PathBuf>,

    /// The name the auth-service's certificate must carry, when not the URL's host.
    #[arg(long, env = "AUTH_TLS_SERVER_NAME")]
    auth_tls_server_name: Option<String>,

    /// The largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GATEWAY_BODY_LIMIT_BYTES", default_value = "65536", value_parser = config::at_least_one::<NonZeroUsize>)]
    body_limit_bytes: NonZeroUsize,

    /// The gateway's own key for calling the auth-service (one of its WXAUTH_CALLERS, with
    /// the `login` scope). The only secret the gateway holds.
    #[arg(long, env = "AUTH_CALLER_KEY", hide_env_values = true)]
    auth_caller_key: String,

    /// How long requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    shutdown_grace_secs: u64,

    /// How long one call to the auth-service may take, in milliseconds (sent to it as the
    /// call's deadline). Keep it above the auth-service's WECHAT_TIMEOUT_MS.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT_MS", default_value = "10000", value_parser = config::at_least_one::<NonZeroU64>)]
    upstream_timeout_ms: NonZeroU64,

    /// How long a whole request may take, body included, in milliseconds; past it the
    /// client gets 503. Keep it above GATEWAY_UPSTREAM_TIMEOUT_MS.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT_MS", default_value = "15000", value_parser = config::at_least_one::<NonZeroU64>)]
    request_timeout_ms: NonZeroU64,

    /// How long a client may take to send the headers of a request, in milliseconds; a
    /// slower one (slowloris) is disconnected.
    #[arg(long, env = "GATEWAY_HEADER_READ_TIMEOUT_MS", default_value = "5000", value_parser = config::at_least_one::<NonZeroU64>)]
    header_read_timeout_ms: NonZeroU64,

    /// The most requests in flight; one more is answered 503 with `retry-after` at once.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_REQUESTS", default_value = "1024", value_parser = config::at_least_one::<NonZeroUsize>)]
    max_concurrent_requests: NonZeroUsize,

    /// Requests to the login routes one client may make per minute (a token bucket per
    /// client address; 0: no limit). Over it: 429 with 10006 and `retry-after`. Clients
    /// behind one NAT share a bucket: keep it generous.
    #[arg(long, env = "GATEWAY_LOGIN_RATE_PER_MINUTE", default_value_t = 120)]
    login_rate_per_minute: u32,

    /// How many login requests a client may make at once above that rate.
    #[arg(long, env = "GATEWAY_LOGIN_BURST", default_value_t = 60)]
    login_burst: u32,

    /// Whether the gateway sits behind proxies that append the client's address to
    /// `x-forwarded-for` (only then: without a proxy, a client could name any address).
    #[arg(long, env = "GATEWAY_TRUST_FORWARDED_FOR", action = clap::ArgAction::Set, default_value_t = false)]
    trust_forwarded_for: bool,

    /// How many such proxies stand in front of the gateway, each appending the address it
    /// was reached from (1: an ingress; 2: a CDN, then an ingress). The client is the
    /// `x-forwarded-for` address that many places from the right; what stands left of it
    /// was written by the client and is not believed.
    #[arg(long, env = "GATEWAY_TRUSTED_PROXIES", default_value_t = NonZeroU8::MIN)]
    trusted_proxies: NonZeroU8,
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings: Settings = config::parse("gateway", "GATEWAY_CONFIG");
    let _flush_logs = logging::init(settings.log_format, "info,h2=warn,tower=warn,hyper=warn");

    let tls = match &settings.auth_tls_ca {
        Some(ca) => {
            let identity = match (&settings.auth_tls_cert, &settings.auth_tls_key) {
                (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
                (None, None) => None,
                _ => {
                    error!("invalid settings: AUTH_TLS_CERT and AUTH_TLS_KEY go together");
                    return ExitCode::from(64);
                }
            };
            match ClientTls::from_files(ca, identity, settings.auth_tls_server_name.clone()) {
                Ok(tls) => Some(tls),
                Err(err) => {
                    error!("invalid settings: {err}");
                    return ExitCode::from(64);
                }
            }
        }
        None => None,
    };
    let state = match gateway::AppState::connect_lazy(
        &settings.auth_grpc_url,
        tls.as_ref(),
        (settings.auth_grpc_resolve_secs > 0)
            .then(|| Duration::from_secs(settings.auth_grpc_resolve_secs)),
        Duration::from_millis(settings.upstream_timeout_ms.get()),
        &settings.auth_caller_key,
    ) {
        Ok(state) => state,
        Err(err) => {
            error!("invalid settings: {err}");
            return ExitCode::from(64);
        }
    };
    let listener = match TcpListener::bind(settings.http_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            error!(addr = %settings.http_addr, error = %err, "cannot listen");
            return ExitCode::from(69);
        }
    };
    let local = listener
        .local_addr()
        .map_or(settings.http_addr, |addr| addr);
    let (metrics, registry) = gateway::metrics::Metrics::new();
    info!(auth = %settings.auth_grpc_url, "gateway starting");
    let signals = match wxauth_runtime::signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let metrics_local =
        match wxauth_runtime::metrics::start(settings.metrics_addr, registry, None).await {
            Ok(addr) => addr,
            Err(err) => {
                error!(addr = %settings.metrics_addr, error = %err, "cannot listen for metrics");
                return ExitCode::from(69);
            }
        };
    println!("metrics on {metrics_local}");
    println!("listening on {local}");

    let limits = gateway::limits::Limits::new(
        settings.max_concurrent_requests.get(),
        Duration::from_millis(settings.request_timeout_ms.get()),
    );
    let metrics = Arc::new(metrics);
    let quota = gateway::quota::ClientQuota::new(
        settings.login_rate_per_minute,
        settings.login_burst,
        metrics.clone(),
    );
    let forgetting = quota.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            forgetting.forget_idle();
        }
    });
    let clients = gateway::Clients {
        quota,
        address: if settings.trust_forwarded_for {
            gateway::ClientAddress::Forwarded {
                proxies: settings.trusted_proxies,
            }
        } else {
            gateway::ClientAddress::Peer
        },
    };
    let app = gateway::router(
        state,
        settings.body_limit_bytes.get(),
        limits,
        clients,
        metrics,
    );
    let connection_limits = wxauth_runtime::http::Limits {
        header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms.get()),
        ..wxauth_runtime::http::Limits::default()
    };
    // Requests in flight get `grace` to finish; past it the process stops anyway.
    let (stop, deadline) = signals.with_grace(Duration::from_secs(settings.shutdown_grace_secs));
    let served = tokio::select! {
        served = wxauth_runtime::http::serve_with(listener, app, stop, connection_limits) => served,
        () = deadline => Ok(()),
    };
    match served {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

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
}
