//! `auth-service`: reads its settings, connects to Postgres, applies migrations, prints
//! `listening on <addr>` and serves gRPC until SIGTERM or Ctrl-C.

use std::{process::ExitCode, sync::Arc, time::Duration};

use auth_service::{
    login::{Login, LoginDeps, Policy},
    metrics::Metrics,
    revocation::{self, Revocations},
    settings::Settings,
    store::{PgStore, Pool},
    transport::AuthApi,
};
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use wxauth_runtime::{config, logging};
use wxauth_wechat::WeChatClient;

/// Exit code for a configuration error (sysexits' EX_USAGE).
const EXIT_CONFIG: u8 = 64;
/// Exit code for a dependency that is not there (sysexits' EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[tokio::main]
async fn main() -> ExitCode {
    let settings: Settings = config::parse("auth-service", "WXAUTH_CONFIG");
    let _flush_logs = logging::init(
        settings.log_format,
        "info,sqlx=warn,h2=warn,tower=warn,hyper=warn",
    );
    let config = match settings.into_config() {
        Ok(config) => config,
        Err(err) => {
            error!("invalid settings: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if config.throwaway_keys {
        warn!(
            "DEV MODE: session_keys are encrypted with a throwaway key made at start; sessions will not survive a restart. Never run production like this"
        );
    }

    let options = match config.database_url().parse::<PgConnectOptions>() {
        Ok(options) => options,
        Err(_) => {
            error!("invalid settings: DATABASE_URL is not a postgres:// URL");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let store = PgStore::new(Pool::new(options, config.db_max_connections as usize));
    if let Err(err) = store.ping().await {
        error!(error = %error_chain(&err), "cannot connect to the database");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    if let Err(err) = store.migrate().await {
        error!(error = %error_chain(&err), "cannot apply database migrations");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }

    let wechat = match WeChatClient::new(&config.wechat_api_base, config.wechat_timeout) {
        Ok(client) => client,
        Err(err) => {
            error!(error = %err, "cannot build the wechat client");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let listener = match TcpListener::bind(config.grpc_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            error!(addr = %config.grpc_addr, error = %err, "cannot listen");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let local = listener.local_addr().map_or(config.grpc_addr, |addr| addr);
    let policy: Policy = config.policy;
    info!(apps = config.apps.len(), wechat = %config.wechat_api_base, callers = ?config.callers, "auth-service starting");
    let (metrics, registry) = Metrics::new();
    let metrics = Arc::new(metrics);
    let revocations = Revocations::new(Duration::from_secs(
        u64::try_from(config.tokens.access_ttl_secs).unwrap_or(0),
    ));
    let follower = tokio::spawn(revocation::follow(store.clone(), revocations.clone()));
    let purger = tokio::spawn(auth_service::upkeep::purge_expired(
        store.clone(),
        config.purge_interval,
        500,
    ));
    let health_store = store.clone();
    let closing_store = store.clone();
    let login = Login::new(LoginDeps {
        apps: config.apps,
        wechat,
        store,
        keyring: config.keyring,
        tokens: config.tokens,
        revocations,
        metrics: metrics.clone(),
        policy,
        verified_tokens: config.token_cache_entries,
    });
    let api = AuthApi::new(login, config.callers, metrics.clone());
    let grace = config.shutdown_grace;
    let signals = match wxauth_runtime::signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let metrics_local = match wxauth_runtime::metrics::start(config.metrics_addr, registry).await {
        Ok(addr) => addr,
        Err(err) => {
            error!(addr = %config.metrics_addr, error = %err, "cannot listen for metrics");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    println!("metrics on {metrics_local}");
    println!("listening on {local}");

    // Calls in flight get `grace` to finish; past it the process stops anyway.
    let (stop, deadline) = signals.with_grace(grace);
    let served = tokio::select! {
        served = auth_service::serve(api, health_store, metrics, listener, stop) => served,
        () = deadline => Ok(()),
    };
    follower.abort();
    purger.abort();
    closing_store.close();
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

/// An error and its causes, for a log line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
