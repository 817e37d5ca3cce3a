//! The wxauth auth-service: a gRPC server that owns the WeChat code exchange, the
//! decryption of `encryptedData`, login sessions, users and tokens in Postgres.
//!
//! # Layout, from the edge in
//! - [`app`]: the service built from its [`settings`] and run; `main` only adds signals;
//!   [`schema`]: the migrations at start, or waited for, or applied by a job;
//!   [`start_error`]: why a start failed, and whose fault it is.
//! - [`transport`]: the gRPC edge; parses requests, calls one flow, maps errors (once).
//! - [`login`], [`login_sessions`], [`tokens`], [`users`], [`profiles`], [`lifecycle`],
//!   [`wechat_calls`]: the flows, one capability each; no tonic, no SQL.
//! - [`app_tokens`]: each app's WeChat access_token (the app token), refreshed by one
//!   replica at a time, for the calls that need one.
//! - [`revocation`], [`callers`], [`apps`]: what every replica keeps in memory: revoked
//!   token families, who may call what, the apps served.
//! - [`domain`], [`secrets`], [`clock`]: plain types and pure rules, tested without a network.
//! - [`store`]: Postgres, the only place SQL and sqlx live.
//! - [`tls`]: TLS on the gRPC port, certificates reloaded, optionally mutual.
//! - [`audit`], [`upkeep`], [`metrics`], [`quotas`]: the audit trail, health and purging,
//!   what is counted, and each app's quota of calls to WeChat.
//! - [`webhooks`]: the events of the outbox delivered, signed, to each subscription.
//!
//! `docs/architecture.md` has the words these modules use ("login session", "token
//! family", "app token"...) in one sense each.

pub mod app;
pub mod app_tokens;
pub mod apps;
pub mod audit;
pub mod callers;
pub mod clock;
pub mod domain;
pub mod error;
pub mod lifecycle;
pub mod login;
pub mod login_sessions;
pub mod metrics;
pub mod profiles;
pub mod quotas;
pub mod revocation;
pub mod schema;
pub mod secrets;
pub mod settings;
pub mod start_error;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod transport;
pub mod upkeep;
pub mod users;
pub mod webhooks;
pub mod wechat_calls;

pub use app::{Application, ServeError};
pub use start_error::StartError;
