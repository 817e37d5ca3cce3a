//! The wxauth auth-service: a gRPC server that owns the WeChat code exchange, the
//! decryption of `encryptedData`, login sessions, users and tokens in Postgres.
//!
//! # Layout
//! - [`transport`]: tonic handlers; parse, call the flows, map errors to `Status` (once).
//! - [`login`]: the flows, over the ports; no tonic, no SQL.
//! - [`profile`], [`secrets`]: pure rules (what may overwrite a profile; ids, digests,
//!   sealing), tested without a network.
//! - [`store`]: Postgres, the only place SQL lives.
//! - [`tokens`], [`revocation`], [`callers`]: signing access tokens, the revocation cache
//!   every replica keeps in step through Postgres NOTIFY, and who may call which RPC.
//! - [`settings`]: flags and environment, parsed and validated once at start.

pub mod callers;
pub mod error;
pub mod login;
pub mod metrics;
pub mod profile;
pub mod revocation;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod tokens;
pub mod transport;
pub mod upkeep;
pub mod verified;

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};
use wxauth_proto::v1::auth_service_server::AuthServiceServer;

use crate::transport::AuthApi;

/// Why the server could not be built or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection descriptors did not load (a build problem).
    #[error("reflection descriptors are invalid")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while serving.
    #[error("grpc server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the auth API, gRPC health and server reflection (v1 and v1alpha, for grpcurl 1.8)
/// on an already-bound listener until `shutdown` completes, then finishes the calls in flight.
///
/// Health follows the database: NOT_SERVING while it does not answer, and once shutdown starts.
pub async fn serve(
    api: AuthApi,
    store: store::PgStore,
    metrics: std::sync::Arc<metrics::Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthServiceServer<AuthApi>>().await;
    let health_reporting = tokio::spawn(upkeep::report_health(store, health.clone(), metrics));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wxauth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc.ErrorInfo, so grpcurl can show the reason of an error.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wxauth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let stopping = async {
        shutdown.await;
        health_reporting.abort();
        tracing::info!("shutting down: refusing new calls, finishing those in flight");
        health.set_not_serving::<AuthServiceServer<AuthApi>>().await;
    };

    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AuthServiceServer::new(api))
        .serve_with_incoming_shutdown(
            // Replies are small writes: without TCP_NODELAY each can wait 40 ms for an ACK.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopping,
        )
        .await?;
    Ok(())
}
