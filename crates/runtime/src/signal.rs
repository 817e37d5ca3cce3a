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
    /// Completes on the first SIGTERM or SIGINT and says which one it was.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
