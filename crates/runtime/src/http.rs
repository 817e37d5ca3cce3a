//! Serving HTTP the same way in every binary: one place that decides how accepted sockets
//! are set up.
//!
//! Every accepted socket gets `TCP_NODELAY`. A reply is written in several small segments
//! (headers, then body); with Nagle's algorithm on, the second waits for the peer's delayed
//! ACK, which costs up to 40 ms per request on Linux.

use std::future::Future;

use axum::{Router, serve::ListenerExt as _};
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|socket| {
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted socket");
        }
    });
    // Handlers may ask for the peer's address (`ConnectInfo<SocketAddr>`).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
