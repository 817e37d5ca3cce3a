//! Why the service could not start, and whose fault it is (exit 64 or 69).

use std::net::SocketAddr;

use crate::store::StoreError;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// DATABASE_URL does not parse.
    #[error("DATABASE_URL (or WXAUTH_DATABASE_DIRECT_URL) is not a postgres:// URL")]
    DatabaseUrl,
    /// The database does not answer.
    #[error("cannot connect to the database")]
    Database(#[source] StoreError),
    /// The migrations failed.
    #[error("cannot apply database migrations")]
    Migrate(#[source] StoreError),
    /// The WeChat client could not be built.
    #[error("cannot build the wechat client")]
    WeChat(#[source] wxauth_wechat::BuildError),
    /// The webhook client could not be built.
    #[error("cannot build the webhook client")]
    Webhooks(#[source] crate::webhooks::BuildError),
    /// The gRPC address cannot be bound.
    #[error("cannot listen on {addr} (WXAUTH_GRPC_ADDR)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("cannot set up tls")]
    Tls(#[source] crate::tls::TlsError),
    /// The metrics address cannot be bound.
    #[error("cannot listen for metrics on {addr} (WXAUTH_METRICS_ADDR)")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the settings are at fault (exit 64), rather than something they point at (69).
    pub fn is_settings(&self) -> bool {
        matches!(self, Self::DatabaseUrl | Self::Tls(_))
    }
}
