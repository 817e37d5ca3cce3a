//! The auth-service in process: built by `Application` from a real configuration, on a
//! clock the test moves, against a real PostgreSQL and the WeChat simulator served from the
//! test itself. The end-to-end tests (`tests/e2e` of the workspace) run the same service as
//! a process; these reach what a process cannot show: time, and the store itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod audit;
mod events;
mod flows;
mod health;
mod lifecycle;
mod quotas;
mod revocation;
mod rotation;
mod store;
mod support;
