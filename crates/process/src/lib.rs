//! The life of every wxauth process, in one place so they all behave alike:
//! - [`signal`]: SIGTERM/SIGINT handlers installed before the address is printed;
//! - [`logging`]: `tracing` to stderr, human-readable or JSON (`--log-format`);
//! - [`metrics`]: a Prometheus `/metrics` endpoint on an address of its own;
//! - [`config`]: settings from a TOML file, under flags and environment variables;
//! - [`stray`]: environment variables that look like settings but name none;
//! - [`exit`]: the exit codes of a failed start;
//! - [`http`]: serving HTTP with the socket options and limits every server needs.

pub mod config;
pub mod exit;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod signal;
pub mod stray;
