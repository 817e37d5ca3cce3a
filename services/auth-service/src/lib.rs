//! The wxauth auth-service: a gRPC server that owns the WeChat code exchange, the
//! decryption of `encryptedData`, login sessions, users and tokens in Postgres.
//!
//! # Layout, from the edge in
//! - [`app`]: the service built from its [`settings`] and run; `main` only adds signals.
//! - [`transport`]: the gRPC edge; parses requests, calls one flow, maps errors (once).
//! - [`login`], [`session`], [`tokens`], [`users`], [`platform`]: the flows, one capability
//!   each; no tonic, no SQL.
//! - [`access_tokens`]: each app's WeChat access_token, refreshed by one replica at a time,
//!   for the calls that need one.
//! - [`revocation`], [`callers`], [`apps`]: what every replica keeps in memory: revoked
//!   session families, who may call what, the apps served.
//! - [`domain`], [`secrets`], [`clock`]: plain types and pure rules, tested without a network.
//! - [`store`]: Postgres, the only place SQL and sqlx live.
//! - [`tls`]: TLS on the gRPC port, certificates reloaded, optionally mutual.
//! - [`audit`], [`upkeep`], [`metrics`], [`quotas`]: the audit trail, health and purging,
//!   what is counted, and each app's quota of calls to WeChat.

pub mod access_tokens;
pub mod app;
pub mod apps;
pub mod audit;
pub mod callers;
pub mod clock;
pub mod domain;
pub mod error;
pub mod login;
pub mod metrics;
pub mod platform;
pub mod quotas;
pub mod revocation;
pub mod secrets;
pub mod session;
pub mod settings;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod transport;
pub mod upkeep;
pub mod users;

pub use app::{Application, ServeError, StartError};
