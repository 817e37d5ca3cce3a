//! A PostgreSQL server of a test's own, for the drills that restart or break it (the shared
//! server of `DATABASE_URL` must not be touched). Needs PostgreSQL's server binaries
//! (`initdb`, `pg_ctl`); as root, the cluster is made and run by the `postgres` user.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A running throwaway cluster, stopped and removed when dropped.
pub struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    /// More server settings (`-c name=value ...`).
    settings: String,
    /// The server processes left behind by [`Cluster::kill_primary`], killed on drop.
    orphans: Vec<i32>,
}

fn bindir() -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|path| PathBuf::from(path.trim()));
    let initdb = on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin/initdb")))
            .filter(|path| path.exists())
            .collect();
        found.sort();
        found.pop()
    });
    let initdb = initdb.expect(
        "PostgreSQL's server binaries (initdb, pg_ctl) are needed for this drill: apt-get install postgresql",
    );
    std::fs::canonicalize(&initdb)
        .unwrap_or(initdb)
        .parent()
        .expect("initdb is in a folder")
        .to_path_buf()
}

pub(crate) fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"))
}

/// Runs a server binary as the cluster's owner.
pub(crate) fn as_owner(program: &Path, args: &[&str]) -> Command {
    if root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

pub(crate) fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Cluster {
    /// Makes and starts a cluster on a free port, with fsync on (as production runs).
    pub fn start() -> Self {
        Self::start_with(None, "")
    }

    /// A cluster that also serves TLS with `server`'s certificate (`ssl=on`), so clients
    /// can use `sslmode=verify-full`.
    pub fn start_tls(server: &crate::certs::Issued) -> Self {
        Self::start_with(Some(server), "")
    }

    /// A cluster started with more server settings (`-c name=value ...`): to load
    /// `auto_explain`, say.
    pub fn start_with_settings(settings: &str) -> Self {
        Self::start_with(None, settings)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn start_with(tls: Option<&crate::certs::Issued>, more: &str) -> Self {
        let bindir = bindir();
        let dir = owned_dir();
        let data = dir.join("data");
        run(
            as_owner(
                &bindir.join("initdb"),
                &[
                    "-D",
                    data.to_str().expect("a utf-8 path"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let port = free_port();
        let settings = match tls {
            Some(server) => {
                // The server reads its key only if the key is its own and private.
                let (cert, key) = server.write(&dir, "server");
                for path in [&cert, &key] {
                    std::fs::set_permissions(
                        path,
                        std::os::unix::fs::PermissionsExt::from_mode(0o600),
                    )
                    .expect("the file mode can be set");
                    if root() {
                        run(
                            {
                                let mut chown = Command::new("chown");
                                chown.arg("postgres:").arg(path);
                                chown
                            },
                            "chown",
                        );
                    }
                }
                format!(
                    " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                    cert.display(),
                    key.display()
                )
            }
            None => String::new(),
        };
        let cluster = Self {
            dir,
            bindir,
            port,
            settings: format!("{settings} {more}"),
            orphans: Vec::new(),
        };
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn pg_ctl(&self, action: &[&str]) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100{}",
            self.port,
            self.dir.display(),
            self.settings
        );
        let log = self.dir.join("postgres.log");
        let mut args = vec![
            "-D",
            data.to_str().expect("a utf-8 path"),
            "-l",
            log.to_str().expect("a utf-8 path"),
            "-w",
            "-t",
            "60",
            "-o",
            &options,
        ];
        args.extend_from_slice(action);
        run(as_owner(&self.bindir.join("pg_ctl"), &args), "pg_ctl");
    }

    /// A standby of `primary`, made with `pg_basebackup` and streaming from it under the
    /// name `name` (what `synchronous_standby_names` on the primary names), started.
    pub fn standby_of(primary: &Self, name: &str) -> Self {
        let dir = owned_dir();
        let data = dir.join("data");
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={name}",
            primary.port
        );
        run(
            as_owner(
                &primary.bindir.join("pg_basebackup"),
                &[
                    "-d",
                    &conninfo,
                    "-D",
                    data.to_str().expect("a utf-8 path"),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ],
            ),
            "pg_basebackup",
        );
        // -R wrote standby.signal and a primary_conninfo; this one names the standby, which
        // is what makes it the synchronous one.
        let auto_conf = data.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto_conf).unwrap_or_default();
        conf.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
        std::fs::write(&auto_conf, conf).expect("the standby's settings can be written");
        let port = free_port();
        let standby = Self {
            dir,
            bindir: primary.bindir.clone(),
            port,
            settings: String::new(),
            orphans: Vec::new(),
        };
        standby.pg_ctl(&["start"]);
        standby
    }

    /// Whether a standby streams from this server synchronously (`pg_stat_replication`).
    pub async fn has_synchronous_standby(&self) -> bool {
        use sqlx::Connection as _;
        let Ok(mut conn) = sqlx::PgConnection::connect(&self.url()).await else {
            return false;
        };
        let state: Option<String> = sqlx::query_scalar(
            "select sync_state from pg_stat_replication where sync_state = 'sync' limit 1",
        )
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten();
        let _ = conn.close().await;
        state.is_some()
    }

    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the postmaster with SIGKILL, as a machine lost or an OOM kill does: no
    /// shutdown, no checkpoint, and its backends learn of it only when they next look.
    pub fn kill_primary(&mut self) {
        let pid: i32 = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|file| file.lines().next()?.trim().parse().ok())
            .expect("the server is running");
        self.orphans = children_of(pid);
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).expect("a pid is positive"),
            rustix::process::Signal::KILL,
        )
        .expect("the postmaster can be killed");
    }

    /// Promotes a standby to primary; returns once it takes writes.
    pub fn promote(&self) {
        self.pg_ctl(&["promote"]);
    }

    /// The admin URL of the cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server as a crash would (`-m immediate`: no checkpoint, connections cut) and
    /// starts it again; returns once it accepts connections.
    pub fn crash_and_restart(&self) {
        self.pg_ctl(&["restart", "-m", "immediate"]);
    }
}

/// A new folder for a cluster, owned by the user that runs it.
fn owned_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wxauth-drill-pg-{}", crate::random_hex(6)));
    std::fs::create_dir_all(&dir).expect("the cluster folder can be made");
    if root() {
        let mut chown = Command::new("chown");
        chown.arg("postgres:").arg(&dir);
        run(chown, "chown");
    }
    dir
}

/// A loopback port free now, for a server to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The processes whose parent is `parent`, from `/proc` (no procps on a bare machine).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for &pid in &self.orphans {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let data = self.dir.join("data");
        let _ = as_owner(
            &self.bindir.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
