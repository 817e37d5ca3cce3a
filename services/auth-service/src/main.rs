//! `auth-service`: reads its settings, builds the service, prints `metrics on <addr>` and
//! `listening on <addr>`, and serves gRPC until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use auth_service::{
    Application,
    settings::{Migrations, Settings},
    transport::status::error_chain,
};
use tracing::{error, info, warn};
use wxauth_process::{config, logging, stray};

/// Exit code for a configuration error (sysexits' EX_USAGE).
const EXIT_CONFIG: u8 = 64;
/// Exit code for a dependency that is not there (sysexits' EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[tokio::main]
async fn main() -> ExitCode {
    // A `WXAUTH_*` variable no setting reads is a typo until shown otherwise.
    if !stray::report(
        "auth-service",
        &<Settings as clap::CommandFactory>::command(),
        &["WXAUTH_"],
        &auth_service::settings::RENAMED,
        "WXAUTH_STRICT_ENV",
    ) {
        return ExitCode::from(EXIT_CONFIG);
    }
    let settings: Settings = config::parse_renamed(
        "auth-service",
        "WXAUTH_CONFIG",
        &auth_service::settings::RENAMED,
    );
    let _flush_logs = logging::init(
        settings.log_format,
        "info,sqlx=warn,h2=warn,tower=warn,hyper=warn",
    );
    // The migrations job: the database's URL is all it needs.
    if settings.migrations == Migrations::Only {
        if settings.database_url.trim().is_empty() {
            error!("invalid settings: DATABASE_URL is not set: give a postgres:// URL");
            return ExitCode::from(EXIT_CONFIG);
        }
        let direct = settings
            .database_direct_url
            .as_deref()
            .filter(|url| !url.trim().is_empty());
        let timeout = std::time::Duration::from_millis(settings.db_statement_timeout_ms.get());
        return match auth_service::schema::migrate_only(&settings.database_url, direct, timeout)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                error!(error = %error_chain(&err), "cannot apply the migrations");
                ExitCode::from(if err.is_settings() {
                    EXIT_CONFIG
                } else {
                    EXIT_UNAVAILABLE
                })
            }
        };
    }
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
    if config.throwaway_token_keys {
        warn!(
            "DEV MODE: access tokens are signed with a throwaway key made at start; no token survives a restart and no other replica accepts them. Never run production like this"
        );
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            error!(error = %error_chain(&err), "cannot start");
            return ExitCode::from(if err.is_settings() {
                EXIT_CONFIG
            } else {
                EXIT_UNAVAILABLE
            });
        }
    };
    // Installed before the address is printed: a SIGTERM the moment a test or an
    // orchestrator sees it must start a graceful shutdown.
    let signals = match wxauth_process::signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    println!("metrics on {}", app.metrics_addr());
    println!("listening on {}", app.grpc_addr());
    match app
        .run(async {
            let which = signals.recv().await;
            info!(signal = which, "stop signal received");
        })
        .await
    {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(error = %error_chain(&err), "server failed");
            ExitCode::FAILURE
        }
    }
}
