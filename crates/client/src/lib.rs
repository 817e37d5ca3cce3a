//! For internal services that must know which mini-program user is calling them.
//!
//! An [`Authenticator`] checks a wxauth access token, either
//! - **offline** ([`Mode::Offline`]): against the auth-service's public keys (fetched with
//!   `GetJwks` on first use and refetched when a token names a key it does not know, at most
//!   once per [`JWKS_REFETCH_INTERVAL`]). No call per request; revocation is seen only through
//!   the token's short expiry.
//! - **online** ([`Mode::Online`]): with `ValidateToken`, one call per request; a revoked
//!   token is refused within a second of its revocation.
//!
//! [`AuthLayer`] wraps a tonic server (or any tower HTTP service): it reads
//! `authorization: Bearer <token>`, authenticates it, and puts the [`Principal`] into the
//! request's extensions; a request without a valid token is answered `UNAUTHENTICATED`
//! before it reaches the handler.
//!
//! ```no_run
//! # async fn run(channel: tonic::transport::Channel, key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use wxauth_client::{Authenticator, Mode};
//! let auth = Authenticator::new(channel, key, Mode::Offline)?;
//! // Server::builder().layer(auth.layer()).add_service(MyServer::new(my_service))
//! # Ok(()) }
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::{Mutex, RwLock};
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};
use wxauth_proto::v1::{
    GetJwksRequest, ValidateTokenRequest, auth_service_client::AuthServiceClient,
};
use wxauth_token::{Jwks, TokenError, Verifier};

/// The shortest time between two JWKS fetches triggered by unknown key ids, so tokens with
/// made-up kids cannot make a service hammer the auth-service.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Who is calling: the user a valid access token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The wxauth user id.
    pub user_id: String,
    /// The mini-program the user signed in to.
    pub appid: String,
    /// The user's openid in that app.
    pub openid: String,
    /// The user's unionid, when known.
    pub unionid: Option<String>,
    /// The session family (what a logout ends).
    pub session_id: String,
    /// When the token expires, Unix seconds.
    pub expires_at: i64,
}

/// How tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Against the public keys, in process.
    Offline,
    /// With the auth-service's ValidateToken.
    Online,
}

/// Why a token was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// No `authorization: Bearer` header.
    #[error("send the access token as `authorization: Bearer <token>`")]
    Missing,
    /// The token has expired: the client should refresh it.
    #[error("access token has expired: refresh it")]
    Expired,
    /// The token is not valid (forged, revoked, another app...).
    #[error("access token is invalid: log in again")]
    Invalid,
    /// The auth-service could not be asked (online mode, or fetching keys).
    #[error("the auth-service is unavailable")]
    Unavailable(#[source] Status),
}

impl AuthFailure {
    /// The status a gRPC caller gets.
    pub fn to_status(&self) -> Status {
        match self {
            Self::Missing | Self::Expired | Self::Invalid => {
                Status::unauthenticated(self.to_string())
            }
            Self::Unavailable(_) => Status::unavailable(self.to_string()),
        }
    }
}

pub use wxauth_proto::wire::BadCallerKey;
use wxauth_proto::wire::CallerKey;

struct Inner {
    client: AuthServiceClient<InterceptedService<Channel, CallerKey>>,
    mode: Mode,
    verifier: RwLock<Option<Verifier>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// Checks access tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
    audience: Option<Arc<str>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl Authenticator {
    /// An authenticator over a channel to the auth-service, presenting `caller_key` (one
    /// with the `validate` scope). Nothing is fetched until the first token arrives, so a
    /// service can start before the auth-service.
    pub fn new(channel: Channel, caller_key: &str, mode: Mode) -> Result<Self, BadCallerKey> {
        let key = CallerKey::new(caller_key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client: AuthServiceClient::with_interceptor(channel, key),
                mode,
                verifier: RwLock::new(None),
                last_fetch: Mutex::new(None),
            }),
            audience: None,
        })
    }

    /// Accept only tokens issued for this appid.
    pub fn with_audience(mut self, appid: &str) -> Self {
        self.audience = Some(Arc::from(appid));
        self
    }

    /// The layer that authenticates every request of a server.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer {
            authenticator: self.clone(),
        }
    }

    /// Checks one token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        match self.inner.mode {
            Mode::Online => self.online(token).await,
            Mode::Offline => self.offline(token).await,
        }
    }

    async fn online(&self, token: &str) -> Result<Principal, AuthFailure> {
        let request = ValidateTokenRequest {
            token: token.to_owned(),
            appid: self.audience.as_deref().unwrap_or_default().to_owned(),
        };
        match self.inner.client.clone().validate_token(request).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                Ok(Principal {
                    user_id: answer.user_id,
                    appid: answer.appid,
                    openid: answer.openid,
                    unionid: Some(answer.unionid).filter(|id| !id.is_empty()),
                    session_id: answer.session_id,
                    expires_at: answer.expires_at.map_or(0, |at| at.seconds),
                })
            }
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                if status.message().contains("expired") {
                    Err(AuthFailure::Expired)
                } else {
                    Err(AuthFailure::Invalid)
                }
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                Err(AuthFailure::Invalid)
            }
            Err(status) => Err(AuthFailure::Unavailable(status)),
        }
    }

    async fn offline(&self, token: &str) -> Result<Principal, AuthFailure> {
        let audience = self.audience.as_deref();
        let first = {
            let verifier = self.inner.verifier.read().await;
            verifier
                .as_ref()
                .map(|v| v.verify(token, unix_now(), audience))
        };
        let result = match first {
            Some(Err(TokenError::UnknownKey { .. })) | None => {
                // A key we have not seen (rotation) or no keys yet: refetch, rate-limited.
                self.refetch_jwks().await?;
                let verifier = self.inner.verifier.read().await;
                verifier.as_ref().map_or(Err(TokenError::Malformed), |v| {
                    v.verify(token, unix_now(), audience)
                })
            }
            Some(other) => other,
        };
        match result {
            Ok(claims) => Ok(Principal {
                user_id: claims.sub,
                appid: claims.aud,
                openid: claims.openid,
                unionid: claims.unionid,
                session_id: claims.sid,
                expires_at: claims.exp,
            }),
            Err(TokenError::Expired) => Err(AuthFailure::Expired),
            Err(_) => Err(AuthFailure::Invalid),
        }
    }

    async fn refetch_jwks(&self) -> Result<(), AuthFailure> {
        let mut last_fetch = self.inner.last_fetch.lock().await;
        let have_keys = self.inner.verifier.read().await.is_some();
        if have_keys && last_fetch.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return Ok(());
        }
        let answer = self
            .inner
            .client
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(AuthFailure::Unavailable)?
            .into_inner();
        let jwks: Jwks = serde_json::from_str(&answer.jwks_json).map_err(|_| {
            AuthFailure::Unavailable(Status::internal("the auth-service sent a malformed JWKS"))
        })?;
        *self.inner.verifier.write().await = Some(Verifier::from_jwks(&jwks));
        *last_fetch = Some(Instant::now());
        tracing::debug!(keys = jwks.keys.len(), "fetched the auth-service's jwks");
        Ok(())
    }
}

/// A tower layer that authenticates every request with an [`Authenticator`].
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Authenticator,
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Authenticator,
}

fn bearer<B>(request: &http::Request<B>) -> Option<String> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

impl<S, B> tower_service::Service<http::Request<B>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let outcome = match bearer(&request) {
                Some(token) => authenticator.authenticate(&token).await,
                None => Err(AuthFailure::Missing),
            };
            match outcome {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(failure) => Ok(failure.to_status().into_http()),
            }
        })
    }
}
