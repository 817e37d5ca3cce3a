//! The wxauth HTTP gateway: translates the mini-program's REST calls into gRPC calls to the
//! auth-service. It holds no database and no secret but its own caller key; every rule
//! lives in the auth-service, and the gateway's only table is the one from error reasons to
//! HTTP answers.
//!
//! From the edge in: [`app`] (build and run, the router and its layers), `routes` (one
//! module per group of routes), then what they share: `bearer` (the access token, checked
//! before a body is read), `body` (bodies within their limit and deadline), [`input`],
//! [`views`], [`envelope`], [`oauth`] (the OAuth surface's errors and shapes), `state` (the auth-service client), and the layers: `observe`
//! (request ids, logs, counts), [`limits`], [`quota`]. [`settings`] is parsed once by `main`.

pub mod app;
mod bearer;
mod body;
pub mod envelope;
pub mod input;
pub mod limits;
pub mod metrics;
pub mod oauth;
mod observe;
pub mod openapi;
pub mod quota;
mod request_id;
mod routes;
pub mod settings;
mod state;
pub mod views;

pub use app::{Application, StartError};
pub use request_id::{ClientAddress, RequestId};
pub use state::{AppState, SetupError};
