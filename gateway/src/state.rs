//! What every handler shares: the auth-service client, balanced over its replicas, with
//! the gateway's caller key, how a call to it is made, and the public keys bearer tokens are
//! checked against before a body is read.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use wxauth_client::{Audience, Authenticator, Mode, connect::ClientTls};
use wxauth_proto::{
    REQUEST_ID_HEADER,
    v1::auth_service_client::AuthServiceClient,
    wire::{CLIENT_ADDR_HEADER, CallerKey},
};

use crate::request_id::RequestId;

/// What every handler shares: the auth-service client (a cheap clone over one connection)
/// and the gateway's caller key, the one secret it holds (it grants only the `login` scope).
#[derive(Clone)]
pub struct AppState {
    pub(crate) auth: AuthServiceClient<InterceptedService<Channel, CallerKey>>,
    /// The same channel without the gateway's key: for the calls a client makes with its
    /// own (introspection, where the client authenticates as a caller).
    pub(crate) auth_as_client: AuthServiceClient<Channel>,
    /// Each call's deadline, sent as `grpc-timeout` so the auth-service stops working on a
    /// call nobody waits for any more.
    upstream_timeout: Duration,
    /// Checks bearer tokens against the public keys (fetched with `GetJwks`, kept).
    verifier: Authenticator,
    /// How long a request body may take to arrive.
    body_timeout: Duration,
}

/// How to reach the auth-service.
pub struct Upstream {
    /// Its URL(s).
    pub url: String,
    /// TLS toward it, when `https://`.
    pub tls: Option<ClientTls>,
    /// How often to look its host up again, when it names several replicas.
    pub resolve_every: Option<Duration>,
    /// Each call's deadline.
    pub timeout: Duration,
    /// The gateway's caller key.
    pub caller_key: SecretString,
}

/// Why the gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// AUTH_GRPC_URL, or its TLS settings, cannot be used.
    #[error("AUTH_GRPC_URL or AUTH_TLS_* cannot be used")]
    AuthUrl(#[source] wxauth_client::connect::ConnectError),
    /// AUTH_CALLER_KEY cannot travel as metadata.
    #[error("AUTH_CALLER_KEY must be printable ASCII")]
    CallerKey,
}

impl AppState {
    /// A client for the auth-service `upstream`. The connection is made on first use, so the
    /// gateway starts (and answers 503) while the auth-service is still coming up.
    ///
    /// The URL may list several replicas, separated by commas; with `resolve_every`, the one
    /// URL's host is looked up again at that interval and every address it names is a
    /// replica (a Kubernetes headless Service). Calls are balanced across replicas.
    pub fn connect_lazy(upstream: &Upstream, body_timeout: Duration) -> Result<Self, SetupError> {
        let timeout = upstream.timeout;
        let configure = move |endpoint: tonic::transport::Endpoint| endpoint.timeout(timeout);
        let tls = upstream.tls.as_ref();
        let channel = match upstream.resolve_every {
            Some(every) => {
                wxauth_client::connect::resolving_channel(&upstream.url, tls, every, configure)
            }
            None => wxauth_client::connect::channel(&upstream.url, tls, configure),
        }
        .map_err(SetupError::AuthUrl)?;
        let key = upstream.caller_key.expose_secret();
        let caller_key = CallerKey::new(key).map_err(|_| SetupError::CallerKey)?;
        let verifier = Authenticator::new(channel.clone(), key, Mode::Offline, Audience::AnyApp)
            .map_err(|_| SetupError::CallerKey)?;
        Ok(Self {
            auth_as_client: AuthServiceClient::new(channel.clone()),
            auth: AuthServiceClient::with_interceptor(channel, caller_key),
            upstream_timeout: timeout,
            verifier,
            body_timeout,
        })
    }

    /// What checks bearer tokens before a body is read.
    pub(crate) fn verifier(&self) -> &Authenticator {
        &self.verifier
    }

    /// How long a request body may take to arrive.
    pub(crate) fn body_timeout(&self) -> Duration {
        self.body_timeout
    }

    /// Makes a call that changes nothing (the keys, a user) again while the service never
    /// answered it: see [`wxauth_client::connect::again_if_unanswered`]. Never a login.
    pub(crate) async fn read_only<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        wxauth_client::connect::again_if_unanswered(call).await
    }

    /// A gRPC request to the auth-service made with a client's own caller key (for
    /// `auth_as_client`); `None` when the key cannot travel as metadata.
    pub(crate) fn upstream_as<T>(
        &self,
        message: T,
        request_id: &RequestId,
        key: &str,
    ) -> Option<tonic::Request<T>> {
        let mut request = self.upstream(message, request_id);
        let key = key.parse().ok()?;
        request
            .metadata_mut()
            .insert(wxauth_proto::wire::CALLER_KEY_HEADER, key);
        Some(request)
    }

    /// A gRPC request to the auth-service, carrying the request id (the interceptor adds
    /// the caller key).
    pub(crate) fn upstream<T>(&self, message: T, request_id: &RequestId) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.upstream_timeout);
        if let Ok(value) = request_id.id.parse() {
            request.metadata_mut().insert(REQUEST_ID_HEADER, value);
        }
        if let Some(Ok(value)) = request_id.client.map(|ip| ip.to_string().parse()) {
            request.metadata_mut().insert(CLIENT_ADDR_HEADER, value);
        }
        request
    }
}
