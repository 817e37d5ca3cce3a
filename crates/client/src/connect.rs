//! Reaching the auth-service: one way to build the channel, with the socket options and the
//! TLS every client of it should have, to one replica, a list of them, or every address a DNS
//! name resolves to (re-resolved, so replicas that come and go are followed). Calls are
//! balanced across replicas by tonic (power of two choices over ready connections).

use std::{net::SocketAddr, path::Path, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::replicas;

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
    /// No URL was given.
    #[error("no auth-service URL was given")]
    Empty,
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

/// A channel to the auth-service at `urls`: one URL, or several separated by commas (each a
/// replica; calls are balanced across those that answer, see [`crate::replicas`]).
/// `configure` sets what every endpoint shares (a timeout, say). Connects on first use; must
/// be called inside a tokio runtime when several URLs are given.
pub fn channel(
    urls: &str,
    tls: Option<&ClientTls>,
    configure: impl Fn(Endpoint) -> Endpoint,
) -> Result<Channel, ConnectError> {
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| endpoint(url, tls).map(&configure))
        .collect::<Result<Vec<_>, _>>()?;
    match endpoints.len() {
        0 => Err(ConnectError::Empty),
        1 => Ok(endpoints
            .into_iter()
            .next()
            .ok_or(ConnectError::Empty)?
            .connect_lazy()),
        _ => Ok(replicas::balanced(
            replicas::Source::Urls(endpoints),
            replicas::RECHECK_EVERY,
        )),
    }
}

/// A channel to every address the host of `url` resolves to, looked up again every `every`
/// (a Kubernetes headless Service names one address per ready pod), calls balanced across
/// those that answer. With TLS, each replica is verified for the host's name (or the
/// configured server name). Must be called inside a tokio runtime; the lookups run until the
/// channel is dropped.
pub fn resolving_channel(
    url: &str,
    tls: Option<&ClientTls>,
    every: Duration,
    configure: impl Fn(Endpoint) -> Endpoint + Send + Sync + 'static,
) -> Result<Channel, ConnectError> {
    let uri: http::Uri = url.parse().map_err(|_| ConnectError::Url)?;
    let scheme = uri.scheme_str().ok_or(ConnectError::Url)?.to_owned();
    let host = uri.host().ok_or(ConnectError::Url)?.to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    // Every replica is checked against the name, not the address it was reached at.
    let tls = tls.cloned().map(|mut tls| {
        tls.server_name.get_or_insert_with(|| host.clone());
        tls
    });
    // Checked once here, so the watcher only builds endpoints known to be valid.
    endpoint(url, tls.as_ref())?;
    let replica = move |address: SocketAddr| {
        let address = match address {
            SocketAddr::V4(v4) => v4.to_string(),
            SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
        };
        endpoint(&format!("{scheme}://{address}"), tls.as_ref())
            .ok()
            .map(&configure)
    };
    Ok(replicas::balanced(
        replicas::Source::Name {
            host,
            port,
            replica: Box::new(replica),
        },
        every,
    ))
}

/// Whether a failed call never got the service's answer: no wxauth `ErrorInfo` (every error
/// the auth-service sends has one), so the replica was not reached or its connection dropped
/// mid-call. Such a call may be made again if it changes nothing.
pub fn not_answered(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt as _;
    status.code() != tonic::Code::DeadlineExceeded
        && status
            .get_error_details()
            .error_info()
            .is_none_or(|info| info.domain != wxauth_proto::ERROR_DOMAIN)
}

/// Makes a call that changes nothing (a validation, a key fetch, a read) again, twice at
/// most, while the service never answered it ([`not_answered`]). Before each retry the
/// replicas are probed at once and the call waits a moment (20 ms, then 100 ms), so a
/// replica that just died is out of the balancer when the call is made again. An answer of
/// the service itself is never repeated.
pub async fn again_if_unanswered<T, F, Fut>(call: F) -> Result<T, tonic::Status>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut answer = call().await;
    for pause in [Duration::from_millis(20), Duration::from_millis(100)] {
        match &answer {
            Err(status) if not_answered(status) => {
                // Have the replicas looked at now, so a dead one is out before the retry.
                replicas::suspect();
                tokio::time::sleep(pause).await;
                answer = call().await;
            }
            _ => break,
        }
    }
    answer
}
