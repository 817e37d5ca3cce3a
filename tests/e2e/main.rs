//! End-to-end tests: real processes, real Postgres, real HTTP and gRPC on loopback, and the
//! WeChat simulator as the only stand-in. One test binary; one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access_tokens;
mod accounts;
mod attacks;
mod audit;
mod bad_input;
mod balancing;
mod callers;
mod client;
mod deletion;
mod drills;
mod envelope;
mod failover;
mod grpc;
mod grpc_input;
mod limits;
mod login;
mod migrations;
mod miniprogram;
mod observability;
mod oidc;
mod oidc_libraries;
mod operations;
mod phone;
mod plans;
mod pooler;
mod privacy;
mod profile;
mod python_client;
mod quotas;
mod reach;
mod readme;
mod refresh;
mod restore;
mod revocation;
mod rotation;
mod session_keys;
mod shutdown;
mod suspension;
mod tls;
mod tokens;
mod upkeep;
mod webhooks;
mod wechat_failures;
