//! PgBouncer in transaction mode in front of a test's database, as a managed PostgreSQL or
//! CloudNativePG's Pooler fronts it: Debian's `pgbouncer` binary, run by the `postgres` user
//! when the tests run as root (it refuses to run as root).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::pg::{as_owner, root, run};

/// A running PgBouncer, stopped and removed when dropped.
pub struct Pooler {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Pooler {
    /// Starts PgBouncer in transaction mode in front of the server of `url`
    /// (`postgres://user@host:port/db`), every database of it, at most `server_connections`
    /// server connections per database; returns once it accepts connections.
    pub fn start(url: &str, server_connections: u32) -> Self {
        let binary = Path::new("/usr/sbin/pgbouncer");
        assert!(
            binary.exists(),
            "PgBouncer is missing: apt-get install pgbouncer (scripts/test and .ci/run install it)"
        );
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .expect("a postgres:// URL");
        let (user, rest) = rest.split_once('@').expect("a user in the URL");
        let host_port = rest.split(['/', '?']).next().unwrap_or_default();
        let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        let dir = std::env::temp_dir().join(format!("wxauth-pooler-{}", crate::random_hex(6)));
        std::fs::create_dir_all(&dir).expect("the pooler folder can be made");
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n\
                 * = host={host} port={port} user={user}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {listen}\n\
                 unix_socket_dir =\n\
                 auth_type = any\n\
                 pool_mode = transaction\n\
                 default_pool_size = {server_connections}\n\
                 max_client_conn = 1000\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 server_reset_query =\n\
                 pidfile = {dir}/pgbouncer.pid\n",
                dir = dir.display()
            ),
        )
        .expect("the pooler's settings can be written");
        if root() {
            run(
                {
                    let mut chown = Command::new("chown");
                    chown.args(["-R", "postgres:"]).arg(&dir);
                    chown
                },
                "chown",
            );
        }
        // In the foreground, logging to stderr: its `listening on` line says it is ready, and
        // every line after it goes to the log file.
        let mut child = as_owner(binary, &[config.to_str().expect("a utf-8 path")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgbouncer starts");
        let log_path = dir.join("pgbouncer.log");
        let mut log = std::fs::File::create(&log_path).expect("the pooler's log can be made");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let ready = format!("listening on 127.0.0.1:{listen}");
        let mut listening = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            if line.contains(&ready) {
                listening = true;
                break;
            }
        }
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
        });
        let pooler = Self {
            dir,
            port: listen,
            child,
        };
        assert!(listening, "PgBouncer did not start: {}", pooler.log());
        pooler
    }

    /// `url` (of the server behind) with the pooler's address in place of the server's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("a user in the URL");
        let path = rest.find(['/', '?']).map_or("", |at| &rest[at..]);
        format!("{scheme_user}@127.0.0.1:{}{path}", self.port)
    }

    /// What PgBouncer logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        // PgBouncer itself (runuser, its parent when the tests run as root, then exits).
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
