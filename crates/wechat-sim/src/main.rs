//! `wechat-sim`: WeChat's mini-program server API on loopback, for tests and dev mode.

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;

/// Simulates WeChat's mini-program server API (jscode2session, stable_token, the phone
/// number by code, checksession and resetusersessionkey, and the encryptedData crypto) plus
/// the /sim/ controls tests use to play the mini-program.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to listen. Port 0 picks a free port; the real address is printed as
    /// `listening on <addr>`.
    #[arg(long, env = "WECHAT_SIM_ADDR", default_value = "127.0.0.1:9090")]
    addr: SocketAddr,

    /// The mini-programs the simulator knows, as `appid:secret` entries separated by commas;
    /// `appid:secret:platform` binds an app to an Open Platform account (unionids).
    #[arg(
        long,
        env = "WECHAT_SIM_APPS",
        hide_env_values = true,
        default_value = ""
    )]
    apps: String,

    /// How long the access_tokens it issues live, in seconds (WeChat: 7200).
    #[arg(long, env = "WECHAT_SIM_TOKEN_TTL_SECS", default_value_t = 7200)]
    token_ttl_secs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let apps = match wechat_sim::parse_apps(&args.apps) {
        Ok(apps) => apps,
        Err(reason) => {
            eprintln!("wechat-sim: invalid WECHAT_SIM_APPS: {reason}");
            return std::process::ExitCode::from(64);
        }
    };
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("wechat-sim: cannot listen on {}: {err}", args.addr);
            return std::process::ExitCode::from(1);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| args.addr.to_string(), |addr| addr.to_string());
    let signals = match wxauth_process::signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("wechat-sim: cannot install signal handlers: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    println!("listening on {local}");
    let sim = wechat_sim::Sim::new(apps)
        .with_token_ttl(std::time::Duration::from_secs(args.token_ttl_secs.max(1)));
    let app = wechat_sim::router(sim);
    let served = wxauth_process::http::serve(listener, app, async {
        signals.recv().await;
    })
    .await;
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wechat-sim: server failed: {err}");
            std::process::ExitCode::from(1)
        }
    }
}
