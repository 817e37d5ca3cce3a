//! Serving HTTP the same way in every binary: one place that decides how accepted sockets
//! are set up and what a client may hold.
//!
//! - Every accepted socket gets `TCP_NODELAY`. A reply is written in several small segments
//!   (headers, then body); with Nagle's algorithm on, the second waits for the peer's delayed
//!   ACK, which costs up to 40 ms per request on Linux.
//! - The headers of a request must arrive within [`Limits::header_read_timeout`]: a client
//!   that sends them a byte at a time (slowloris) is dropped instead of holding a connection.
//! - Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
//! - On shutdown, no new connection is accepted and those open finish what they are doing.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tower_service::Service as _;

/// What a client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long the headers of a request may take to arrive.
    pub header_read_timeout: Duration,
    /// The largest request head (request line and headers) read, in bytes. Above it the
    /// connection is answered 431 by the HTTP layer itself; keep it above what the
    /// application refuses with its own answer.
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_head_bytes: 64 * 1024,
        }
    }
}

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
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
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
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted socket");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().call(request.map(axum::body::Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
