//! Reaching the auth-service: one way to build the channel, with the socket options and the
//! TLS every client of it should have.

use std::{path::Path, time::Duration};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How to verify the auth-service (and, for mutual TLS, who this client is).
#[derive(Clone)]
pub struct ClientTls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("mutual", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why the channel could not be set up. Names the setting or file, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not one.
    #[error("the auth-service URL is not an http:// or https:// URL")]
    Url,
    /// A TLS file could not be read.
    #[error("cannot read {0}")]
    File(String, #[source] std::io::Error),
    /// TLS was refused.
    #[error("the TLS settings are refused")]
    Tls(#[source] tonic::transport::Error),
    /// An https:// URL without a CA to verify it against, or TLS settings for http://.
    #[error("an https:// auth-service URL needs a CA to verify it (and http:// takes none)")]
    Mismatch,
}

impl ClientTls {
    /// Verifies the server against the CA in `ca` (PEM); with `identity` (certificate and
    /// key PEM files), presents that client certificate (mutual TLS). The server is checked
    /// for the URL's host, or for `server_name` when given.
    pub fn from_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> Result<Self, ConnectError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|err| ConnectError::File(path.display().to_string(), err))
        };
        Ok(Self {
            ca_pem: read(ca)?,
            identity: match identity {
                Some((cert, key)) => Some((read(cert)?, read(key)?)),
                None => None,
            },
            server_name,
        })
    }
}

/// An endpoint for the auth-service at `url`: TCP_NODELAY, HTTP/2 keepalive (a dead peer is
/// noticed in seconds), a connect timeout, and TLS that verifies the server when `tls` is
/// given (an `https://` URL requires it).
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<Endpoint, ConnectError> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|_| ConnectError::Url)?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    match (url.starts_with("https://"), tls) {
        (true, Some(tls)) => {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &tls.server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(config).map_err(ConnectError::Tls)?;
        }
        (false, None) => {}
        _ => return Err(ConnectError::Mismatch),
    }
    Ok(endpoint)
}
