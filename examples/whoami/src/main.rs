//! `whoami`: the example internal service.
//!
//! Settings (environment): `WHOAMI_ADDR` (default `127.0.0.1:50061`), `AUTH_GRPC_URL`
//! (default `http://127.0.0.1:50051`), `AUTH_CALLER_KEY` (a key with the `validate` scope),
//! `WHOAMI_APPID` (the mini-program whose tokens it takes; `*` for any app the deployment
//! serves), `WHOAMI_VERIFY` (`offline`, the default, or `online`).

use std::process::ExitCode;

use tokio::net::TcpListener;
use wxauth_client::{Audience, Authenticator, Mode};

#[tokio::main]
async fn main() -> ExitCode {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let addr = env("WHOAMI_ADDR", "127.0.0.1:50061");
    let auth_url = env("AUTH_GRPC_URL", "http://127.0.0.1:50051");
    let Ok(caller_key) = std::env::var("AUTH_CALLER_KEY") else {
        eprintln!(
            "whoami: AUTH_CALLER_KEY is not set: give a wxauth caller key with the validate scope"
        );
        return ExitCode::from(64);
    };
    let audience = match std::env::var("WHOAMI_APPID").as_deref() {
        Ok("*") => Audience::AnyApp,
        Ok(appid) if !appid.is_empty() => Audience::App(appid.to_owned()),
        _ => {
            eprintln!(
                "whoami: WHOAMI_APPID is not set: give the appid whose tokens this service takes, or * for any"
            );
            return ExitCode::from(64);
        }
    };
    let mode = match env("WHOAMI_VERIFY", "offline").as_str() {
        "offline" => Mode::Offline,
        "online" => Mode::Online,
        _ => {
            eprintln!("whoami: WHOAMI_VERIFY must be offline or online");
            return ExitCode::from(64);
        }
    };
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(auth_url) else {
        eprintln!("whoami: AUTH_GRPC_URL must be an http:// or https:// URL");
        return ExitCode::from(64);
    };
    let Ok(authenticator) = Authenticator::new(
        endpoint.tcp_nodelay(true).connect_lazy(),
        &caller_key,
        mode,
        audience,
    ) else {
        eprintln!("whoami: AUTH_CALLER_KEY must be printable ASCII");
        return ExitCode::from(64);
    };
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("whoami: cannot listen on {addr}: {err}");
            return ExitCode::from(69);
        }
    };
    let signals = match wxauth_runtime::signal::install() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("whoami: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("listening on {local}"),
        Err(_) => println!("listening on {addr}"),
    }
    let stop = async {
        signals.recv().await;
    };
    match whoami_example::serve(listener, authenticator, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("whoami: server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
