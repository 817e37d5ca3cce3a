//! A TCP proxy a test controls, to stand between a service and its database: to silence one
//! connection without closing it (what a failover or a NAT timeout does to a `LISTEN`), or
//! to move the database's address to another server (a failover's new primary).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A running proxy to one upstream address.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// One pause switch per connection, by the local port of its upstream socket (what the
    /// server sees as the client's port: `pg_stat_activity.client_port`).
    switches: Arc<Mutex<HashMap<u16, watch::Sender<bool>>>>,
    /// Where new connections go.
    upstream: Arc<Mutex<SocketAddr>>,
}

impl Proxy {
    /// Forwards every connection made to it to `upstream`. It runs on a thread of its own,
    /// so a test that blocks (waiting for a process to start) does not stall it.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        listener
            .set_nonblocking(true)
            .expect("the proxy's socket can be non-blocking");
        let addr = listener.local_addr().expect("the proxy has an address");
        let switches: Arc<Mutex<HashMap<u16, watch::Sender<bool>>>> = Arc::default();
        let registry = switches.clone();
        let upstream = Arc::new(Mutex::new(upstream));
        let target = upstream.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((client, _)) = listener.accept().await {
                    let to = *target.lock().unwrap_or_else(|p| p.into_inner());
                    let Ok(server) = TcpStream::connect(to).await else {
                        continue;
                    };
                    let port = server.local_addr().map_or(0, |local| local.port());
                    let (pause, paused) = watch::channel(false);
                    registry
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(port, pause);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pipe(client_read, server_write, paused.clone()));
                    tokio::spawn(pipe(server_read, client_write, paused));
                }
            });
        });
        Self {
            addr,
            switches,
            upstream,
        }
    }

    /// Sends new connections to `upstream` from now on: what moving a service's address (a
    /// Kubernetes Service, a virtual IP) to a promoted standby does. Connections already
    /// made stay with the old server and end with it.
    pub fn retarget(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    /// Stops forwarding, both ways, on every connection made so far (later ones still flow):
    /// what a flushed NAT table or a failover does to a client's connections at once.
    pub fn silence_all(&self) {
        for pause in self
            .switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = pause.send(true);
        }
    }

    /// Stops forwarding, both ways, on the connection whose upstream socket has local port
    /// `port`; the sockets stay open. Returns whether there was such a connection.
    pub fn silence(&self, port: u16) -> bool {
        self.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
            .is_some_and(|pause| pause.send(true).is_ok())
    }
}

/// Copies `from` to `to` until either closes; while paused, what arrives is held back.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        // Held here for good once paused: the peer never learns anything went wrong.
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
