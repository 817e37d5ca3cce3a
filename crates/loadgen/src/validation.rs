//! The `validate` phase: ValidateToken under load beside a bare tonic echo server.

use std::{sync::Arc, time::Duration};

use wxauth_harness::{process::Proc, random_hex};
use wxauth_loadgen::{
    flows,
    load::{self, Run},
    procfs::Target,
    stats::ms,
    system::{Build, FakeWeChat},
    validate::{self, Echo, Validate},
};

use crate::{Args, median};

pub(crate) async fn validate_table(
    args: &Args,
    builds: &[Build],
    wechat: &FakeWeChat,
    http: &reqwest::Client,
) {
    println!(
        "\n### ValidateToken beside a bare tonic echo server: {} callers over {} HTTP/2 connections, {} tokens, median of {} runs of {} s\n",
        args.callers, args.connections, args.tokens, args.rounds, args.seconds
    );
    println!(
        "| target | calls/s | (range) | errors | p50 ms | p99 ms | p99.9 ms | CPU ms/call (server) | vs echo |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let echo_bin = args.echo.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("the driver knows its path")
            .with_file_name("grpc-echo")
    });
    let echo = Proc::spawn_from(
        echo_bin.parent().expect("a folder"),
        echo_bin
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a file name"),
        "grpc-echo",
        &[],
        &args.log_dir,
    );
    let mut targets: Vec<(String, u32, CallTarget)> = Vec::new();
    for build in builds {
        let tokens = flows::access_tokens(
            &wechat.sim,
            http,
            &build.gateway.url(),
            &format!("v-{}-{}", build.name, random_hex(4)),
            args.tokens,
        )
        .await;
        assert!(!tokens.is_empty(), "{}: no login succeeded", build.name);
        let tokens = Arc::new(tokens);
        if targets.is_empty() {
            // The echo server gets requests of the same size.
            let channels = validate::connections(&echo.url(), args.connections)
                .await
                .expect("the echo server accepts connections");
            targets.push((
                "echo".into(),
                echo.pid(),
                CallTarget::Echo(Echo {
                    channels: Arc::new(channels),
                    tokens: tokens.clone(),
                }),
            ));
        }
        let channels = validate::connections(&build.auth.url(), args.connections)
            .await
            .expect("the auth-service accepts connections");
        targets.push((
            build.name.clone(),
            build.auth.pid(),
            CallTarget::Validate(Validate {
                channels: Arc::new(channels),
                tokens,
                key: build.service_key.parse().expect("caller keys are ascii"),
            }),
        ));
    }
    let (warmup, window) = (
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
    );
    let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..args.rounds.max(1) {
        for ((_, pid, target), runs) in targets.iter().zip(&mut runs) {
            let target = target.clone();
            runs.push(
                load::closed_loop(
                    args.callers,
                    warmup,
                    window,
                    &[Target::Process(*pid)],
                    move |caller, iteration| target.clone().call(caller, iteration),
                )
                .await,
            );
        }
    }
    let mut echo_rate = 0.0;
    for ((name, _, _), runs) in targets.iter().zip(runs) {
        let (run, low, high) = median(runs);
        if echo_rate == 0.0 {
            echo_rate = run.rate();
        }
        print_validate_row(name, &run, (low, high), echo_rate);
    }
}

/// Where the gRPC load goes.
#[derive(Clone)]
enum CallTarget {
    Echo(Echo),
    Validate(Validate),
}

impl CallTarget {
    async fn call(self, caller: usize, iteration: u64) -> bool {
        match self {
            Self::Echo(echo) => echo.call(caller, iteration).await,
            Self::Validate(validate) => validate.call(caller, iteration).await,
        }
    }
}

fn print_validate_row(target: &str, run: &Run, range: (f64, f64), echo_rate: f64) {
    println!(
        "| {target} | {:.0} | {:.0}-{:.0} | {} | {} | {} | {} | {:.4} | {} |",
        run.rate(),
        range.0,
        range.1,
        run.errors,
        ms(run.latencies.quantile(0.5)),
        ms(run.latencies.quantile(0.99)),
        ms(run.latencies.quantile(0.999)),
        run.cpu_ms_per_call(0),
        if echo_rate > 0.0 {
            format!("{:.0}%", run.rate() / echo_rate * 100.0)
        } else {
            "n/a".into()
        }
    );
}
