//! Logs: `tracing` events to stderr (stdout carries only the `... on <addr>` lines).
//!
//! Lines are written by a thread of their own through a buffer, so a request never waits on
//! a `write(2)` to stderr, and under load many lines leave in one write. The channel to that
//! thread blocks when full instead of dropping lines: a log that silently loses lines cannot
//! be trusted in an incident.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines waiting for the writer thread before a request logging one more waits for it.
const BUFFERED_LINES: usize = 4096;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; colours when stderr is a terminal.
    Text,
    /// One JSON object per event, span fields (the request id) included: for log shippers.
    Json,
}

/// Flushes what is still buffered when dropped: keep it alive until `main` returns.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct Flush(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) -> Flush {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = NonBlockingBuilder::default()
        // Room for bursts; the default (128,000 lines) preallocates megabytes.
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Flush(guard)
}

/// An error and its causes, for a log line: each said once, separated by colons. Many
/// errors repeat their cause in their own text (sqlx's do); a cause already said is left
/// out, so a line reads "cannot connect to the database: connection refused", not the
/// same words three times.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Start(#[source] Connect);

    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Connect(#[source] Refused);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[test]
    fn each_cause_is_said_once() {
        assert_eq!(
            error_chain(&Start(Connect(Refused))),
            "cannot start: database error: connection refused"
        );
    }
}
