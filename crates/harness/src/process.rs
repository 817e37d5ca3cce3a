//! A binary of the workspace running as a child process.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long a binary may take to print its address (it may be migrating a database).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a binary may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the workspace binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WXAUTH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/e2e-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from the cargo target folder")
        .to_path_buf()
}

/// Runs `bin` with `envs` until it exits (for start-up failures); returns its exit code and
/// what it wrote to stderr.
pub fn run_to_exit(bin: &str, envs: &[(&str, String)]) -> (Option<i32>, String) {
    let output = Command::new(bin_dir().join(bin))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(key, value)| (*key, value.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {bin}: {err}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A server a test talks to, wherever it runs: where it listens and what it logged.
pub trait Listening {
    /// Where it serves.
    fn addr(&self) -> SocketAddr;
    /// Where its `/metrics` is, if anywhere.
    fn metrics_addr(&self) -> Option<SocketAddr>;
    /// What it logged so far.
    fn log(&self) -> String;
    /// `http://<addr>`.
    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
    /// `https://<addr>`, for a server serving TLS.
    fn https_url(&self) -> String {
        format!("https://{}", self.addr())
    }
}

impl Listening for Proc {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    fn log(&self) -> String {
        Proc::log(self)
    }
}

/// A running binary, stopped with SIGTERM when dropped.
pub struct Proc {
    name: String,
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// The metrics address it printed (`metrics on <addr>`), if any.
    pub metrics_addr: Option<SocketAddr>,
    log: PathBuf,
}

impl Proc {
    /// Starts `name` with `envs` (on top of this process's environment, less the contract's
    /// variables, so a developer's shell cannot leak into a test), stderr to `log_dir`, and
    /// waits for its `listening on <addr>` line.
    pub fn spawn(name: &str, envs: &[(&str, String)], log_dir: &Path) -> Self {
        Self::spawn_named(name, name, envs, log_dir)
    }

    /// Starts binary `bin` as `name` (its log file's name), for several of one binary.
    pub fn spawn_named(bin: &str, name: &str, envs: &[(&str, String)], log_dir: &Path) -> Self {
        Self::spawn_from(&bin_dir(), bin, name, envs, log_dir)
    }

    /// Starts binary `bin` of the build in `dir` as `name`: a benchmark runs two builds.
    pub fn spawn_from(
        dir: &Path,
        bin: &str,
        name: &str,
        envs: &[(&str, String)],
        log_dir: &Path,
    ) -> Self {
        let bin = dir.join(bin);
        assert!(
            bin.exists(),
            "{} is missing: build the binaries first (cargo build --workspace --all-targets), or run scripts/test",
            bin.display()
        );
        let log = log_dir.join(format!("{name}.log"));
        let stderr = File::create(&log).expect("the log file can be created");
        let mut command = Command::new(&bin);
        for var in [
            "DATABASE_URL",
            "WXAUTH_GRPC_ADDR",
            "WXAUTH_APPS",
            "WECHAT_API_BASE",
            "GATEWAY_HTTP_ADDR",
            "AUTH_GRPC_URL",
            "WECHAT_SIM_ADDR",
            "WECHAT_SIM_APPS",
            "WXAUTH_DEV",
            "WXAUTH_SESSION_KEY_KEYS",
        ] {
            command.env_remove(var);
        }
        command
            .env("RUST_LOG", "info")
            .envs(envs.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("listening on ") || line.starts_with("metrics on ") {
                    let _ = tx.send(line.trim().to_owned());
                }
            }
        });
        // `metrics on` comes before `listening on`, which says the process is ready.
        let mut metrics_addr = None;
        let listening = loop {
            match rx.recv_timeout(START_TIMEOUT) {
                Ok(line) => match line.strip_prefix("metrics on ") {
                    Some(addr) => metrics_addr = addr.parse().ok(),
                    None => break Ok(line.trim_start_matches("listening on ").to_owned()),
                },
                Err(err) => break Err(err),
            }
        };
        match listening {
            Ok(addr) => Self {
                name: name.to_owned(),
                child,
                addr: addr
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} printed a bad address {addr:?}")),
                metrics_addr,
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} exited or did not print `listening on <addr>`; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://<addr>`, for a process serving TLS.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit, killing the process if it does not stop in time.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        self.send_term();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting (std sends only SIGKILL; rustix sends any signal
    /// without unsafe code or an external `kill` binary).
    pub fn send_term(&self) {
        let sent = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        assert!(
            sent.is_ok(),
            "could not send SIGTERM to {}: {sent:?}",
            self.name
        );
    }

    /// Kills the process at once (SIGKILL), as a crash or an OOM kill would, and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, killing it if it takes longer than the stop timeout.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be polled") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not stop within {STOP_TIMEOUT:?} of SIGTERM",
                    self.name
                );
            }
            // std offers no way to block on a child's exit with a deadline; this bounded
            // poll is the wait itself, not a guess at readiness.
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
