//! ValidateToken over real gRPC on loopback, against a real auth-service: the hottest path of
//! the system. Prints calls per second and latency percentiles; asserts nothing.
//!
//! Run with `scripts/bench` (it provides the database and builds the binaries).

use std::time::{Duration, Instant};

use wxauth_e2e::stack::{APP, Stack};
use wxauth_proto::v1::ValidateTokenRequest;

const CONCURRENCY: usize = 16;
const CALLS_PER_TASK: usize = 2_000;

#[tokio::main]
async fn main() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-bench").await;
    let token = login["access_token"].as_str().expect("a token").to_owned();
    let client = stack.grpc_as(Some(&stack.keys.service)).await;

    // Warm up the connection and the service.
    for _ in 0..200 {
        let request = ValidateTokenRequest {
            token: token.clone(),
            appid: APP.into(),
        };
        client
            .clone()
            .validate_token(request)
            .await
            .expect("a valid token");
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut client = client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(CALLS_PER_TASK);
                for _ in 0..CALLS_PER_TASK {
                    let request = ValidateTokenRequest {
                        token: token.clone(),
                        appid: APP.into(),
                    };
                    let call = Instant::now();
                    client.validate_token(request).await.expect("a valid token");
                    latencies.push(call.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("the task ran"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "ValidateToken: {} calls from {CONCURRENCY} concurrent clients in {elapsed:.2?}: {:.0} calls/s, p50 {:?}, p99 {:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99)
    );
}
