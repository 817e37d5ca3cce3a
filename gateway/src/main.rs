//! `gateway`: reads its settings, prints `listening on <addr>` and serves the mini-program's
//! REST calls until SIGTERM or Ctrl-C, finishing the requests in flight.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// The wxauth HTTP gateway: the mini-program's REST calls in, gRPC to the auth-service out.
///
/// Every flag can also be given through the environment variable named in its help.
#[derive(Parser)]
#[command(version)]
struct Settings {
    /// Where the HTTP server listens. Port 0 picks a free port; the address really bound is
    /// printed as `listening on <addr>`.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,

    /// The auth-service's gRPC URL.
    #[arg(long, env = "AUTH_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    auth_grpc_url: String,

    /// The largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "GATEWAY_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    body_limit_bytes: usize,

    /// The gateway's own key for calling the auth-service (one of its WXAUTH_CALLERS, with
    /// the `login` scope). The only secret the gateway holds.
    #[arg(long, env = "AUTH_CALLER_KEY", hide_env_values = true)]
    auth_caller_key: String,

    /// How long requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    shutdown_grace_secs: u64,

    /// How long one call to the auth-service may take, in milliseconds. Keep it above the
    /// auth-service's WECHAT_TIMEOUT_MS.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    upstream_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,tower=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let state = match gateway::AppState::connect_lazy(
        &settings.auth_grpc_url,
        Duration::from_millis(settings.upstream_timeout_ms.max(1)),
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
    info!(auth = %settings.auth_grpc_url, "gateway starting");
    let signals = match wxauth_signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {local}");

    let app = gateway::router(state, settings.body_limit_bytes);
    let stop = async {
        let which = signals.recv().await;
        info!(
            signal = which,
            "stop signal received; finishing requests in flight"
        );
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
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
