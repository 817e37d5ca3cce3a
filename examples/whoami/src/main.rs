//! `whoami`: the example internal service.
//!
//! Settings (environment): `WHOAMI_ADDR` (default `127.0.0.1:50061`), `AUTH_GRPC_URL`
//! (default `http://127.0.0.1:50051`), `AUTH_CALLER_KEY` (a key with the `validate` scope),
//! `WHOAMI_APPID` (the mini-program whose tokens it takes; `*` for any app the deployment
//! serves), `WHOAMI_VERIFY` (`offline`, the default, or `online`), `WHOAMI_AUTH_TIMEOUT_MS`
//! (the longest one call to the auth-service may take; default 5000).

use std::process::ExitCode;

use tokio::net::TcpListener;
use wxauth_client::{Audience, Authenticator, Mode, connect::ClientTls};

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
    // With AUTH_TLS_CA, the auth-service is verified against it (AUTH_GRPC_URL https://),
    // and with AUTH_TLS_CERT and AUTH_TLS_KEY this service presents its own certificate.
    let tls = match std::env::var_os("AUTH_TLS_CA") {
        Some(ca) => {
            let cert = std::env::var_os("AUTH_TLS_CERT");
            let key = std::env::var_os("AUTH_TLS_KEY");
            let identity = cert
                .as_deref()
                .zip(key.as_deref())
                .map(|(cert, key)| (std::path::Path::new(cert), std::path::Path::new(key)));
            match ClientTls::from_files(std::path::Path::new(&ca), identity, None) {
                Ok(tls) => Some(tls),
                Err(err) => {
                    eprintln!("whoami: {err}");
                    return ExitCode::from(64);
                }
            }
        }
        None => None,
    };
    // One URL, or several replicas separated by commas: calls are balanced across them.
    let channel = match wxauth_client::connect::channel(&auth_url, tls.as_ref(), |e| e) {
        Ok(channel) => channel,
        Err(err) => {
            eprintln!("whoami: AUTH_GRPC_URL: {err}");
            return ExitCode::from(64);
        }
    };
    let Ok(authenticator) = Authenticator::new(channel, &caller_key, mode, audience) else {
        eprintln!("whoami: AUTH_CALLER_KEY must be printable ASCII");
        return ExitCode::from(64);
    };
    let authenticator = match std::env::var("WHOAMI_AUTH_TIMEOUT_MS")
        .ok()
        .map(|ms| ms.parse::<u64>())
    {
        None => authenticator,
        Some(Ok(ms)) if ms > 0 => {
            authenticator.with_call_timeout(std::time::Duration::from_millis(ms))
        }
        Some(_) => {
            eprintln!(
                "whoami: WHOAMI_AUTH_TIMEOUT_MS must be a whole number of milliseconds, at least 1"
            );
            return ExitCode::from(64);
        }
    };
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("whoami: cannot listen on {addr}: {err}");
            return ExitCode::from(69);
        }
    };
    let signals = match wxauth_process::signal::install() {
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
