//! Serving HTTP the same way in every binary: one place that decides how accepted sockets
//! are set up and what a client may hold.
//!
//! - Every accepted socket gets `TCP_NODELAY`. A reply is written in several small segments
//!   (headers, then body); with Nagle's algorithm on, the second waits for the peer's delayed
//!   ACK, which costs up to 40 ms per request on Linux.
//! - A connection is bounded from its first byte. Its first request head must be complete
//!   within [`Limits::header_read_timeout`], whatever the protocol: a socket that sends
//!   nothing, or only the HTTP/2 preface, is closed then. hyper's own timer covers the heads
//!   of later HTTP/1 requests, but not the first read, where the server has not yet learnt
//!   whether it speaks HTTP/1 or HTTP/2. A connection with no request in flight for
//!   [`Limits::idle_timeout`] is closed (for HTTP/2 with a GOAWAY), and HTTP/2 peers are
//!   pinged, so a dead one is noticed.
//! - hyper's HTTP/1 head timer is set to the idle timeout, not to the header read timeout:
//!   hyper starts it as soon as an answer is written, so it counts the idle time before the
//!   next request too. At 5 s it closed every keep-alive connection after 5 s of quiet, and
//!   a client pool that keeps connections longer (reqwest 90 s, ingress-nginx and load
//!   balancers 60 s) then sent its next request onto a socket being closed: a POST lost
//!   with a reset, not an answer. A later head is bounded by the idle timeout as a whole,
//!   which holds no more than an idle HTTP/2 connection already may.
//! - One client may hold at most [`Limits::max_connections_per_client`] connections (an IPv6
//!   client: its whole /64); one more is closed as soon as it is accepted, so a single host
//!   cannot use up the file descriptors every client needs.
//! - Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
//! - On shutdown, no new connection is accepted and those open finish what they are doing.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroUsize,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{net::TcpListener, sync::watch, time::Instant};
use tower_service::Service as _;

/// What a client may hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long the head of a request may take to arrive, counted for the first request
    /// from the moment the connection is accepted.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight. Longer than the
    /// 60 s a proxy or load balancer commonly keeps an idle upstream connection: the side
    /// that closes first must be the client, or its next request meets a closing socket.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) read, in bytes. Above it the
    /// connection is answered 431 by the HTTP layer itself; keep it above what the
    /// application refuses with its own answer.
    pub max_head_bytes: usize,
    /// The most connections one client address (an IPv6 /64) may hold open; `None`: no cap
    /// (behind a proxy, every connection comes from the proxy).
    pub max_connections_per_client: Option<NonZeroUsize>,
    /// What is counted of the connections.
    pub counters: ConnectionCounters,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(75),
            max_head_bytes: 64 * 1024,
            max_connections_per_client: None,
            counters: ConnectionCounters::default(),
        }
    }
}

/// The connection metrics a server exports, registered by the binary that serves.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounters {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed at once because their client held its maximum already.
    pub refused: Counter,
    /// Connections closed for sending no complete request head in time, or for idling.
    pub timed_out: Counter,
}

/// The bucket a client address counts in. An IPv6 client is given a whole /64 by its network
/// and can take any address in it, so one bucket holds the /64 (as one holds an IPv4
/// address); an IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
pub fn client_bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Connections open per client bucket.
#[derive(Debug, Default)]
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its client's count; given back when dropped.
struct Slot {
    table: Arc<PerClient>,
    bucket: IpAddr,
}

impl PerClient {
    fn enter(self: &Arc<Self>, bucket: IpAddr, max: usize) -> Option<Slot> {
        let mut open = self.lock();
        let count = open.entry(bucket).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            table: self.clone(),
            bucket,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts only: a panic elsewhere cannot leave them unusable.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(count) = open.get_mut(&self.bucket) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.bucket);
            }
        }
    }
}

/// What a connection has done, as its watchdog sees it.
#[derive(Debug)]
struct Activity {
    /// When the connection was accepted.
    opened: Instant,
    /// Whether a request head was ever complete.
    served: AtomicBool,
    /// Requests in flight.
    in_flight: AtomicUsize,
    /// When the last request finished, in milliseconds after `opened`.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            served: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        }
    }

    /// When the connection is to be closed if nothing changes, or `None` while a request is
    /// in flight (the application bounds a request's time).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if !self.served.load(Ordering::Acquire) {
            return Some(self.opened + limits.header_read_timeout);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some(self.opened + last + limits.idle_timeout)
    }
}

/// A request in flight on a connection; counts it done when dropped (answered or cancelled).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.served.store(true, Ordering::Release);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let done = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_done_ms.store(done, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a connection told to close may take to finish what it is doing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often HTTP/2 peers are pinged, and how long a ping may go unanswered.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` with default [`Limits`] until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, Limits::default()).await
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets requests
/// in flight finish.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout.max(limits.header_read_timeout))
        .max_buf_size(limits.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    let limits = Arc::new(limits);
    let per_client = Arc::new(PerClient::default());
    // Every connection holds a clone of `open`; once the last is dropped, `all_closed` ends.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match limits.max_connections_per_client {
            Some(max) => match per_client.enter(client_bucket(peer.ip()), max.get()) {
                Some(slot) => Some(slot),
                None => {
                    limits.counters.refused.inc();
                    tracing::debug!(peer = %peer.ip(), "a client over its connection limit is refused");
                    continue;
                }
            },
            None => None,
        };
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted socket");
        }
        let activity = Arc::new(Activity::new());
        let app = app.clone();
        let counted = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(&counted);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let answer = app.clone().call(request.map(axum::body::Body::new));
            async move {
                let answered = answer.await;
                drop(in_flight);
                answered
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let (limits, open, mut stop) = (limits.clone(), open.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            limits.counters.open.inc();
            let mut connection = pin!(connection);
            let closing = loop {
                let deadline = activity.deadline(&limits);
                let wake = deadline.unwrap_or_else(|| Instant::now() + limits.idle_timeout);
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(err) = ended {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break None;
                    }
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break Some(false);
                        }
                    }
                    () = tokio::time::sleep_until(wake) => {
                        // Past its deadline with nothing changed since it was read: close it.
                        if activity.deadline(&limits).is_some_and(|due| due <= Instant::now()) {
                            break Some(true);
                        }
                    }
                }
            };
            if let Some(timed_out) = closing {
                if timed_out {
                    limits.counters.timed_out.inc();
                    // Idle: a moment to send a GOAWAY, then the socket goes.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await;
                } else {
                    // Shutdown: what is in flight finishes (the binary bounds the whole stop).
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            limits.counters.open.dec();
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_of(address: &str) -> IpAddr {
        client_bucket(address.parse().unwrap())
    }

    #[test]
    fn an_ipv6_client_has_one_bucket_for_its_whole_slash_64() {
        assert_eq!(
            bucket_of("2001:db8:1:2::1"),
            bucket_of("2001:db8:1:2:ffff::9")
        );
        assert_ne!(bucket_of("2001:db8:1:2::1"), bucket_of("2001:db8:1:3::1"));
        assert_eq!(bucket_of("::ffff:203.0.113.7"), bucket_of("203.0.113.7"));
        assert_ne!(bucket_of("203.0.113.7"), bucket_of("203.0.113.8"));
    }

    /// Sends one HTTP/1.1 request on `socket` and reads its whole answer.
    async fn ask(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        socket
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        while !answer.ends_with(b"ok") {
            let read = socket.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn a_keep_alive_connection_outlives_the_head_timeout_and_closes_when_idle() {
        use tokio::io::AsyncReadExt as _;
        let limits = Limits {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1_500),
            ..Limits::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve_with(listener, app, std::future::pending(), limits));

        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut socket).await.starts_with("HTTP/1.1 200"));
        // Quiet for three head timeouts, as a pooled connection between two requests is.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            ask(&mut socket).await.starts_with("HTTP/1.1 200"),
            "the same connection answers again"
        );

        let quiet = Instant::now();
        let mut buffer = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .expect("an idle connection is closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        assert!(
            quiet.elapsed() >= Duration::from_millis(1_400),
            "closed after the idle timeout, not before: {:?}",
            quiet.elapsed()
        );
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let table = Arc::new(PerClient::default());
        let client = bucket_of("192.0.2.1");
        let held: Vec<Slot> = (0..3).filter_map(|_| table.enter(client, 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(table.enter(client, 3).is_none(), "over the cap");
        assert!(
            table.enter(bucket_of("192.0.2.2"), 3).is_some(),
            "another client"
        );
        drop(held);
        assert!(
            table.lock().get(&client).is_none(),
            "forgotten once none is open"
        );
        assert!(table.enter(client, 3).is_some());
    }
}
