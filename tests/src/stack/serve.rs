//! The services run inside the test process: the same `Application`s the binaries build,
//! from the same settings, each on a thread and runtime of its own (so a test that blocks
//! its own thread does not stall them), on ephemeral ports. What a test cannot do to them is
//! what only a process has: signals, an exit code, a log of its own format; the tests that
//! need those start processes (`Options::processes`).
//!
//! Their logs are kept per service: every event is written to the buffer of the thread
//! that emits it, and each service's threads carry its name.

use std::{
    collections::HashMap,
    future::Future,
    io::Write,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
};

use clap::{CommandFactory as _, Parser};
use tokio::sync::oneshot;

use crate::process::{Listening, Proc};

/// What the in-process services logged, by service (thread) name.
type Logs = Arc<Mutex<HashMap<String, Vec<u8>>>>;

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = ThreadLog(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,sqlx=warn,h2=warn,tower=warn,hyper=warn",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // A test process runs one test (nextest), so this is its only subscriber.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

/// Writes to the log of the thread it is made on.
#[derive(Clone)]
struct ThreadLog(Logs);

impl Write for ThreadLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let name = std::thread::current().name().unwrap_or("test").to_owned();
        let mut logs = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        logs.entry(name).or_default().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A service running in this process until stopped or dropped.
pub struct Served {
    name: String,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    /// Ends the service's runtime: every task and socket goes, as when a process is killed.
    kill: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What starting a service gives: where it listens, and the future that serves.
type Started = (
    SocketAddr,
    Option<SocketAddr>,
    Pin<Box<dyn Future<Output = ()>>>,
);

impl Served {
    /// Runs `start` on a thread named `name` with a runtime of its own, and waits until it
    /// listens.
    async fn spawn<F, Fut>(name: &str, start: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Started, String>> + 'static,
    {
        logs();
        let (ready, listening) = oneshot::channel();
        let (kill, killed) = oneshot::channel::<()>();
        // Unique in the process: under `cargo test` many stacks share one process, and a
        // service's log is found by its threads' name.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let thread_name = format!(
            "{name}#{}",
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let name_for_runtime = thread_name.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name(name_for_runtime)
                    .build()
                    .expect("a runtime for the service");
                runtime.block_on(async move {
                    match start().await {
                        Ok((addr, metrics_addr, serving)) => {
                            let _ = ready.send(Ok((addr, metrics_addr)));
                            tokio::select! {
                                () = serving => {}
                                _ = killed => {}
                            }
                        }
                        Err(err) => {
                            let _ = ready.send(Err(err));
                        }
                    }
                });
                // Whatever it still runs (connections, background work) ends here.
                runtime.shutdown_background();
            })
            .expect("a thread for the service");
        let (addr, metrics_addr) = listening
            .await
            .unwrap_or_else(|_| panic!("{name} stopped before it listened"))
            .unwrap_or_else(|err| panic!("{name} did not start: {err}"));
        Self {
            name: thread_name,
            addr,
            metrics_addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// The auth-service, with `env` as its environment would be.
    pub async fn auth_service(env: &[(&'static str, String)]) -> Self {
        let args = args_of(&auth_service::settings::Settings::command(), env);
        Self::spawn("auth-service", move || async move {
            let config = auth_service::settings::Settings::try_parse_from(&args)
                .map_err(|err| err.to_string())?
                .into_config()
                .map_err(|err| err.to_string())?;
            let app = auth_service::Application::build(config)
                .await
                .map_err(|err| wxauth_process::logging::error_chain(&err))?;
            let (addr, metrics_addr) = (app.grpc_addr(), app.metrics_addr());
            let serving = Box::pin(async move {
                if let Err(err) = app.run(std::future::pending()).await {
                    tracing::error!(error = %err, "the auth-service failed");
                }
            });
            Ok((
                addr,
                Some(metrics_addr),
                serving as Pin<Box<dyn Future<Output = ()>>>,
            ))
        })
        .await
    }

    /// The gateway, with `env` as its environment would be.
    pub async fn gateway(env: &[(&'static str, String)]) -> Self {
        let args = args_of(&gateway::settings::Settings::command(), env);
        Self::spawn("gateway", move || async move {
            let config = gateway::settings::Settings::try_parse_from(&args)
                .map_err(|err| err.to_string())?
                .into_config()
                .map_err(|err| err.to_string())?;
            let app = gateway::Application::build(config)
                .await
                .map_err(|err| wxauth_process::logging::error_chain(&err))?;
            let (addr, metrics_addr) = (app.http_addr(), app.metrics_addr());
            let serving = Box::pin(async move {
                if let Err(err) = app.run(std::future::pending()).await {
                    tracing::error!(error = %err, "the gateway failed");
                }
            });
            Ok((
                addr,
                Some(metrics_addr),
                serving as Pin<Box<dyn Future<Output = ()>>>,
            ))
        })
        .await
    }

    /// The WeChat simulator, with `env` as its environment would be.
    pub async fn wechat_sim(env: &[(&'static str, String)]) -> Self {
        let setting = |name: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        };
        let apps = wechat_sim::parse_apps(&setting("WECHAT_SIM_APPS").unwrap_or_default())
            .expect("the simulator's apps parse");
        let ttl = setting("WECHAT_SIM_TOKEN_TTL_SECS").map_or(7200, |secs| {
            secs.parse().expect("WECHAT_SIM_TOKEN_TTL_SECS is a number")
        });
        for (key, _) in env {
            assert!(
                matches!(
                    *key,
                    "WECHAT_SIM_ADDR" | "WECHAT_SIM_APPS" | "WECHAT_SIM_TOKEN_TTL_SECS"
                ),
                "the simulator has no setting {key}"
            );
        }
        Self::spawn("wechat-sim", move || async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|err| err.to_string())?;
            let addr = listener.local_addr().map_err(|err| err.to_string())?;
            let sim = wechat_sim::Sim::new(apps)
                .with_token_ttl(std::time::Duration::from_secs(ttl.max(1)));
            let serving = Box::pin(async move {
                let _ = wxauth_process::http::serve(
                    listener,
                    wechat_sim::router(sim),
                    std::future::pending(),
                )
                .await;
            });
            Ok((addr, None, serving as Pin<Box<dyn Future<Output = ()>>>))
        })
        .await
    }
}

impl Served {
    /// Ends it at once, as a killed process ends, and waits until it has.
    pub fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The command line that gives a binary's settings the values `env` gives their
/// environment variables: what the binary would read, without touching this process's
/// environment (which every test thread shares).
fn args_of(command: &clap::Command, env: &[(&'static str, String)]) -> Vec<String> {
    let mut args = vec![command.get_name().to_owned()];
    for (at, (key, value)) in env.iter().enumerate() {
        if matches!(*key, "RUST_LOG" | "WXAUTH_LOG_FORMAT") {
            // Logging is this process's: one subscriber for every service in it.
            continue;
        }
        if env[at + 1..].iter().any(|(later, _)| later == key) {
            // As in an environment, the value given last is the one.
            continue;
        }
        let long = command
            .get_arguments()
            .find(|arg| arg.get_env().and_then(|name| name.to_str()) == Some(*key))
            .and_then(clap::Arg::get_long)
            .unwrap_or_else(|| panic!("{} has no setting {key}", command.get_name()));
        args.push(format!("--{long}={value}"));
    }
    args
}

/// A service of a stack: a child process, or running in this process.
pub enum Server {
    /// A child process.
    Process(Proc),
    /// In this process.
    InProcess(Served),
}

impl Server {
    /// Where it serves.
    pub fn addr(&self) -> SocketAddr {
        Listening::addr(self)
    }

    /// Where its `/metrics` is, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        Listening::metrics_addr(self)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        Listening::log(self)
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        Listening::url(self)
    }

    /// `https://<addr>`, for a server serving TLS.
    pub fn https_url(&self) -> String {
        Listening::https_url(self)
    }

    /// Stops it (SIGTERM to a process, at once in this process) and waits until it has.
    pub fn stop(&mut self) {
        match self {
            Self::Process(proc) => {
                proc.terminate();
            }
            Self::InProcess(served) => served.stop(),
        }
    }

    /// The child process, for what only a process can be asked (signals, its exit): start
    /// the stack with `Options::processes` to have one.
    pub fn process(&mut self) -> &mut Proc {
        match self {
            Self::Process(proc) => proc,
            Self::InProcess(served) => panic!(
                "{} runs in the test process: start the stack with Options {{ processes: true, .. }}",
                served.name
            ),
        }
    }
}

impl Listening for Served {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    fn log(&self) -> String {
        let logs = logs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        logs.get(&self.name)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Listening for Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::Process(proc) => proc.addr(),
            Self::InProcess(served) => served.addr(),
        }
    }

    fn metrics_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Process(proc) => proc.metrics_addr(),
            Self::InProcess(served) => served.metrics_addr(),
        }
    }

    fn log(&self) -> String {
        match self {
            Self::Process(proc) => Listening::log(proc),
            Self::InProcess(served) => served.log(),
        }
    }
}
