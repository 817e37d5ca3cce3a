//! TLS on the gRPC port: rustls, the certificate read from PEM files and read again when
//! they change (a renewed certificate is served without a restart), and optionally mutual
//! TLS: every client must present a certificate signed by the configured CA, and a caller
//! may be known by its certificate instead of a key (see [`crate::callers`]).

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore, ServerConfig,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings, as given.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files are checked for a change.
    pub reload_every: Duration,
}

/// Why TLS could not be set up. Names files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("cannot use {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("the TLS configuration is refused: {0}")]
    Config(String),
}

fn file_error(path: &Path, why: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|err| file_error(cert, err))?
        .collect::<Result<_, _>>()
        .map_err(|err| file_error(cert, err))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| file_error(key, err))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| file_error(key, "not a private key rustls can sign with"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| file_error(key, "it is not the key of the certificate"))?;
    Ok(certified)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The server certificate, swapped when its files change.
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

/// TLS, ready to accept connections.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    cert: Arc<ReloadingCert>,
    reload_every: Duration,
}

impl Tls {
    /// Reads the files and builds the configuration.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let cert = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(certified_key(&files.cert, &files.key)?)),
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Config(err.to_string()))?;
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).map_err(|err| file_error(ca, err))? {
                    roots
                        .add(cert.map_err(|err| file_error(ca, err))?)
                        .map_err(|err| file_error(ca, err))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|err| TlsError::Config(err.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        // gRPC is HTTP/2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert,
            reload_every: files.reload_every,
        })
    }

    /// Checks the certificate files every `reload_every` and serves the new certificate
    /// from the next handshake on when they change (and load); a broken pair is logged and
    /// the current certificate kept. Runs for the life of the server.
    pub async fn reload(self) {
        let mut seen = (modified(&self.cert.cert), modified(&self.cert.key));
        loop {
            tokio::time::sleep(self.reload_every).await;
            let now = (modified(&self.cert.cert), modified(&self.cert.key));
            if now == seen {
                continue;
            }
            match certified_key(&self.cert.cert, &self.cert.key) {
                Ok(certified) => {
                    *self
                        .cert
                        .current
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
                    seen = now;
                    tracing::info!("tls certificate reloaded");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the changed tls certificate cannot be used; keeping the current one");
                }
            }
        }
    }

    /// Accepts connections on `listener` and hands over those whose handshake succeeded.
    /// Each handshake runs on its own, bounded by a timeout, so a slow client holds up no
    /// other. The task accepting stops when the stream is dropped.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> ReceiverStream<Result<TlsStream<tokio::net::TcpStream>, io::Error>> {
        let (handshaken, stream) = mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = handshaken.closed() => return,
                };
                let Ok((socket, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let (acceptor, handshaken) = (acceptor.clone(), handshaken.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(tls)) => {
                            let _ = handshaken.send(Ok(tls)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(error = %err, "tls handshake failed"),
                        Err(_) => tracing::debug!("tls handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(stream)
    }
}
