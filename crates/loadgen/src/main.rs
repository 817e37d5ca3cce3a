//! `loadgen`: the benchmark of `scripts/bench`. Prints markdown tables.
//!
//! ```text
//! loadgen --build main=target/bench/main --build change=target/release --pg-pid 1234
//! ```

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use clap::Parser;

mod validation;
use wxauth_harness::random_hex;
use wxauth_loadgen::{
    flows::Flow,
    load::{self, Run},
    memory,
    procfs::{Target, rss},
    stats::ms,
    system::{Build, BuildDir, FakeWeChat},
};

/// Closed-loop load on one or two builds of wxauth, side by side.
#[derive(Debug, Clone, Parser)]
pub(crate) struct Args {
    /// A build to measure, as NAME=DIR (DIR holds its release binaries); give two to compare
    /// them in one run. The last one is compared with the first.
    #[arg(long = "build", required = true)]
    builds: Vec<BuildDir>,
    /// Concurrent mini-programs in each login run.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Seconds of load before each run is measured.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Login runs cycle through this many users, each logging in again and again (as the
    /// users of a live mini-program do); 0: every flow is a user's first login.
    #[arg(long, default_value_t = 0)]
    returning_users: u64,
    /// The PostgreSQL postmaster's pid, to count the server's CPU per flow.
    #[arg(long)]
    pg_pid: Option<u32>,
    /// Concurrent ValidateToken callers.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Distinct access tokens the callers present.
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    /// Idle connections opened to each service for the memory figure.
    #[arg(long, default_value_t = 1000)]
    idle_connections: usize,
    /// The echo server binary (default: `grpc-echo` beside this one).
    #[arg(long)]
    echo: Option<PathBuf>,
    /// How many times each run is repeated (builds alternating); the median is shown.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Which parts to run: `memory`, `flows`, `validate`, and `growth` (what the database
    /// grows by per login flow, on the last build).
    #[arg(long, value_delimiter = ',', default_value = "memory,flows,validate")]
    phases: Vec<String>,
    /// Where the services' logs go.
    #[arg(long, default_value = "target/bench/logs")]
    log_dir: PathBuf,
    /// A connection pooler in transaction mode in front of the database's server (HOST:PORT),
    /// for the builds named by `--pooled`.
    #[arg(long)]
    pooler: Option<std::net::SocketAddr>,
    /// A build (by NAME) whose auth-service reaches the database through `--pooler`
    /// (`WXAUTH_DATABASE_DIRECT_URL` set to the server itself).
    #[arg(long = "pooled")]
    pooled: Vec<String>,
    /// Users to seed each build's database with before it is measured, in the order of
    /// `--build` (0: none); the login runs of a seeded build log its seeded users in again,
    /// picked at random, so two builds compare a small database with a large one.
    #[arg(long, value_delimiter = ',')]
    seed_users: Vec<u64>,
    /// Measure seeded databases as the seeding left them, without first reading what a
    /// login reads at random into the server's cache.
    #[arg(long)]
    cold: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.log_dir).expect("the log folder can be made");
    let wechat = FakeWeChat::start().await.expect("the fake wechat listens");
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("an http client");

    let mut builds = Vec::new();
    for build in &args.builds {
        let pooler = if args.pooled.contains(&build.name) {
            Some(args.pooler.expect("--pooled needs --pooler HOST:PORT"))
        } else {
            None
        };
        builds.push(Build::start(&build.name, &build.dir, &wechat, &args.log_dir, pooler).await);
    }
    if args.seed_users.iter().any(|&users| users > 0) {
        seed_table(&args, &builds).await;
    }
    let wanted = |phase: &str| args.phases.iter().any(|p| p == phase);
    if wanted("memory") {
        memory_table(&args, &builds).await;
    }
    if wanted("flows") {
        flow_table(&args, &builds, &wechat, &http).await;
    }
    if wanted("validate") {
        validation::validate_table(&args, &builds, &wechat, &http).await;
    }
    if wanted("growth")
        && let Some(build) = builds.last()
    {
        growth_table(&args, build, &wechat, &http).await;
    }
    println!("\nlogs: {}", args.log_dir.display());
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |bytes| {
        format!("{:.1}", bytes as f64 / 1024.0 / 1024.0)
    })
}

async fn memory_table(args: &Args, builds: &[Build]) {
    println!(
        "\n### Resident memory (MB), idle and with {} open connections\n",
        args.idle_connections
    );
    println!("| build | service | idle | with connections |");
    println!("| --- | --- | ---: | ---: |");
    for build in builds {
        let idle = rss(build.gateway.pid());
        let held = memory::http1(build.gateway.addr, args.idle_connections).await;
        let loaded = rss(build.gateway.pid());
        println!(
            "| {} | gateway | {} | {}{} |",
            build.name,
            mb(idle),
            mb(loaded),
            held.err()
                .map(|err| format!(" (failed: {err})"))
                .unwrap_or_default()
        );
        let idle = rss(build.auth.pid());
        let held = memory::grpc(&build.auth.url(), args.idle_connections).await;
        let loaded = rss(build.auth.pid());
        println!(
            "| {} | auth-service | {} | {}{} |",
            build.name,
            mb(idle),
            mb(loaded),
            held.err()
                .map(|err| format!(" (failed: {err})"))
                .unwrap_or_default()
        );
    }
}

/// The run with the median rate, and the lowest and highest rates, of `runs`.
pub(crate) fn median(mut runs: Vec<Run>) -> (Run, f64, f64) {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let (low, high) = (runs[0].rate(), runs[runs.len() - 1].rate());
    let middle = runs.swap_remove(runs.len() / 2);
    (middle, low, high)
}

/// Seeds each build's database as `--seed-users` asks and says what it made.
async fn seed_table(args: &Args, builds: &[Build]) {
    println!("\n### Seeded databases (see `wxauth_harness::seed`)\n");
    println!("| build | users | refresh tokens | audit events | size GB | seeding s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (build, &users) in builds.iter().zip(&args.seed_users) {
        if users == 0 {
            continue;
        }
        let started = std::time::Instant::now();
        let seeded = build
            .seed(users, |done| {
                eprintln!("{}: {done} of {users} users seeded", build.name)
            })
            .await
            .unwrap_or_else(|err| panic!("{}: the seeding failed: {err}", build.name));
        let bytes: i64 = build.table_bytes().await.iter().map(|(_, b)| b).sum();
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} |",
            build.name,
            seeded.users,
            seeded.refresh_tokens,
            seeded.audit_events,
            bytes as f64 / 1e9,
            started.elapsed().as_secs_f64()
        );
    }
    for (build, &users) in builds.iter().zip(&args.seed_users) {
        if users == 0 {
            continue;
        }
        let largest = build
            .relation_bytes(12)
            .await
            .iter()
            .map(|(name, bytes)| format!("{name} {:.2}", *bytes as f64 / 1e9))
            .collect::<Vec<_>>();
        println!(
            "\n{}: largest tables and indexes, GB: {}",
            build.name,
            largest.join(", ")
        );
        if args.cold {
            continue;
        }
        // A primary that has served for a while holds what logins read at random; a
        // database just bulk-loaded holds what was written last. Without this the first
        // runs on a large database measure its disk, not its steady state.
        match build.prewarm().await {
            Ok((bytes, buffered)) => println!(
                "{}: read {:.1} GB of what a login touches at random into the cache first, \
                 {:.1} GB of it into PostgreSQL's buffers",
                build.name,
                bytes as f64 / 1e9,
                buffered as f64 / 1e9
            ),
            Err(err) => println!("{}: measured cold, no prewarm ({err})", build.name),
        }
    }
}

/// The seeded users of the `index`th build (0: not seeded).
fn seeded(args: &Args, index: usize) -> u64 {
    args.seed_users.get(index).copied().unwrap_or(0)
}

async fn flow_table(args: &Args, builds: &[Build], wechat: &FakeWeChat, http: &reqwest::Client) {
    println!(
        "\n### Login flows (GET getsessionkey + POST wxsmallusersave), {}, median of {} runs of {} s after {} s warm-up, builds alternating\n",
        match (args.returning_users, args.seed_users.iter().any(|&n| n > 0)) {
            (_, true) => format!(
                "seeded users picked at random logging in again ({})",
                builds
                    .iter()
                    .enumerate()
                    .map(|(at, build)| format!("{}: {}", build.name, seeded(args, at)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (0, false) => "each a new user".to_owned(),
            (users, false) => format!("{users} users logging in again and again"),
        },
        args.rounds,
        args.seconds,
        args.warmup_seconds
    );
    println!(
        "| clients | build | flows/s | (range) | errors | p50 ms | p99 ms | p99.9 ms | CPU ms/flow: gateway | auth-service | postgres | load generator |"
    );
    println!(
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut ratios = Vec::new();
    // Per build: WAL bytes, full-page images and flows, over every run.
    let mut wal = vec![(0.0, 0.0, 0.0); builds.len()];
    for &clients in &args.clients {
        let mut runs: Vec<Vec<Run>> = builds.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.rounds.max(1) {
            for (at, (build, runs)) in builds.iter().zip(&mut runs).enumerate() {
                if let Err(err) = build.checkpoint().await {
                    eprintln!("no checkpoint before the run ({err}): measured as it is");
                }
                let before = build.wal().await;
                let run = flow_run(args, build, seeded(args, at), wechat, http, clients).await;
                if let (Some(before), Some(after)) = (before, build.wal().await) {
                    wal[at].0 += after.0 - before.0;
                    wal[at].1 += after.1 - before.1;
                    wal[at].2 += run.ok as f64;
                }
                runs.push(run);
            }
        }
        let mut medians = Vec::new();
        for (build, runs) in builds.iter().zip(runs) {
            let (run, low, high) = median(runs);
            print_flow_row(
                clients,
                &build.name,
                &run,
                (low, high),
                args.pg_pid.is_some(),
            );
            medians.push(run.rate());
        }
        ratios.push((
            clients,
            medians[medians.len() - 1] / medians[0].max(f64::MIN_POSITIVE),
        ));
    }
    println!(
        "\n| build | WAL KB/flow | full-page images/flow | users: HOT updates | user_session_keys: HOT updates |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (build, (bytes, fpi, flows)) in builds.iter().zip(&wal) {
        let hot = build.hot_updates().await;
        let share = |table: &str| {
            hot.iter().find(|(name, _, _)| name == table).map_or(
                "n/a".to_owned(),
                |(_, updates, hot)| {
                    format!("{:.0}%", *hot as f64 * 100.0 / (*updates).max(1) as f64)
                },
            )
        };
        println!(
            "| {} | {:.1} | {:.2} | {} | {} |",
            build.name,
            bytes / 1024.0 / flows.max(1.0),
            fpi / flows.max(1.0),
            share("users"),
            share("user_session_keys")
        );
    }
    if builds.len() > 1 {
        println!();
        for (clients, ratio) in ratios {
            println!(
                "- {clients} clients: median flows/s of {} / {} = **{ratio:.2}x**",
                builds[builds.len() - 1].name,
                builds[0].name,
            );
        }
    }
}

/// What the database of `build` grows by per login flow of a new user: each table's size
/// before and after a run of 16 clients for `--seconds`, without warm-up, divided by the
/// flows that completed (the few in flight at the end make it a little high).
async fn growth_table(args: &Args, build: &Build, wechat: &FakeWeChat, http: &reqwest::Client) {
    let before = build.table_bytes().await;
    let mut run_args = args.clone();
    run_args.warmup_seconds = 0;
    run_args.returning_users = 0;
    let run = flow_run(&run_args, build, 0, wechat, http, 16).await;
    let after = build.table_bytes().await;
    let flows = run.ok.max(1) as f64;
    println!(
        "\n### Database growth per login flow of a new user ({}, {} flows of 16 clients, sizes with indexes)\n",
        build.name, run.ok
    );
    println!("| table | bytes per flow | per million flows |");
    println!("| --- | ---: | ---: |");
    let mut total = 0.0;
    for (table, bytes) in &after {
        let was = before
            .iter()
            .find(|(name, _)| name == table)
            .map_or(0, |(_, bytes)| *bytes);
        let per_flow = (bytes - was) as f64 / flows;
        if per_flow <= 0.0 {
            continue;
        }
        total += per_flow;
        println!("| {table} | {per_flow:.0} | {per_flow:.0} MB |");
    }
    println!("| all | {total:.0} | {:.2} GB |", total * 1e6 / 1e9);
}

async fn flow_run(
    args: &Args,
    build: &Build,
    seeded: u64,
    wechat: &FakeWeChat,
    http: &reqwest::Client,
    clients: usize,
) -> Run {
    let targets = [
        Target::Process(build.gateway.pid()),
        Target::Process(build.auth.pid()),
        args.pg_pid.map_or(Target::Nothing, Target::Postgres),
        Target::Process(std::process::id()),
    ];
    let flow = Flow {
        sim: wechat.sim.clone(),
        http: http.clone(),
        gateway: build.gateway.url(),
        tag: format!("{}-{clients}-{}", build.name, random_hex(4)),
        // Each run starts somewhere else in the seeded users' random order: a later round
        // must not find the pages an earlier one warmed.
        counter: Arc::new(AtomicU64::new(if seeded > 0 { random_u64() } else { 0 })),
        users: args.returning_users,
        seeded,
    };
    load::closed_loop(
        clients,
        Duration::from_secs(args.warmup_seconds),
        Duration::from_secs(args.seconds),
        &targets,
        move |_, _| flow.clone().run(),
    )
    .await
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the os random source works");
    u64::from_le_bytes(bytes) >> 1
}

fn print_flow_row(clients: usize, build: &str, run: &Run, range: (f64, f64), with_pg: bool) {
    println!(
        "| {clients} | {build} | {:.0} | {:.0}-{:.0} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {:.3} |",
        run.rate(),
        range.0,
        range.1,
        run.errors,
        ms(run.latencies.quantile(0.5)),
        ms(run.latencies.quantile(0.99)),
        ms(run.latencies.quantile(0.999)),
        run.cpu_ms_per_call(0),
        run.cpu_ms_per_call(1),
        if with_pg {
            format!("{:.3}", run.cpu_ms_per_call(2))
        } else {
            "n/a".into()
        },
        run.cpu_ms_per_call(3)
    );
}
