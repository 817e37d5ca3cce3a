//! `gateway`: reads its settings, builds the gateway, prints `metrics on <addr>` and
//! `listening on <addr>`, and serves the mini-program's REST calls until SIGTERM or Ctrl-C,
//! finishing the requests in flight.

use std::process::ExitCode;

use gateway::{Application, settings::Settings};
use tracing::{error, info};
use wxauth_process::{
    config,
    exit::{self, StartFailure as _},
    logging::{self, error_chain},
    stray,
};

#[tokio::main]
async fn main() -> ExitCode {
    // A `GATEWAY_*` variable no setting reads is a typo until shown otherwise.
    if !stray::report(
        "gateway",
        &<Settings as clap::CommandFactory>::command(),
        &["GATEWAY_"],
        &[],
        "GATEWAY_STRICT_ENV",
    ) {
        return ExitCode::from(exit::CONFIG);
    }
    let settings: Settings = config::parse("gateway", "GATEWAY_CONFIG");
    let _flush_logs = logging::init(settings.log_format, "info,h2=warn,tower=warn,hyper=warn");
    let config = match settings.into_config() {
        Ok(config) => config,
        Err(err) => {
            error!("invalid settings: {err}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            error!(error = %error_chain(&err), "cannot start");
            return err.exit_code();
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
    println!("listening on {}", app.http_addr());
    let stop = async move {
        let which = signals.recv().await;
        info!(signal = which, "stop signal received");
    };
    match app.run(stop).await {
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
