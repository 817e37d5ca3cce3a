//! Stop signals.
//!
//! The handlers are installed by [`install`], eagerly, before a binary prints its address:
//! a SIGTERM that arrives the moment a test or an orchestrator sees the address must start a
//! graceful shutdown, not kill the process with the default action.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed handlers for SIGTERM and SIGINT.
#[derive(Debug)]
pub struct Shutdown {
    term: Signal,
    interrupt: Signal,
}

/// Installs the handlers now. Must be called inside a tokio runtime.
pub fn install() -> std::io::Result<Shutdown> {
    Ok(Shutdown {
        term: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
    })
}

impl Shutdown {
    /// Splits the handlers into the two futures a server needs: see [`with_grace`].
    pub fn with_grace(
        self,
        grace: std::time::Duration,
    ) -> (
        impl std::future::Future<Output = ()> + Send,
        impl std::future::Future<Output = ()> + Send,
    ) {
        with_grace(
            async move {
                let which = self.recv().await;
                tracing::info!(signal = which, "stop signal received");
            },
            grace,
        )
    }

    /// Completes on the first SIGTERM or SIGINT and says which one it was.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Splits a stop request into the two futures a server needs: `stop` completes when
/// `shutdown` does (hand it to the server's graceful shutdown), `deadline` completes `grace`
/// after that (race the server against it, so draining is bounded).
pub fn with_grace(
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: std::time::Duration,
) -> (
    impl std::future::Future<Output = ()> + Send,
    impl std::future::Future<Output = ()> + Send,
) {
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        shutdown.await;
        tracing::info!(grace = ?grace, "stopping: finishing what is in flight");
        let _ = stopping_tx.send(true);
    };
    let deadline = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
        tracing::warn!(grace = ?grace, "still busy after the grace period; stopping anyway");
    };
    (stop, deadline)
}
