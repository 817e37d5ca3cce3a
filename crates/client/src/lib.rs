//! For internal services that must know which mini-program user is calling them.
//!
//! An [`Authenticator`] checks a wxauth access token, either
//! - **offline** ([`Mode::Offline`]): against the auth-service's public keys (fetched with
//!   `GetJwks` on first use, refreshed every [`JWKS_MAX_AGE`], refetched when a token names a
//!   key it does not know at most once per [`JWKS_REFETCH_INTERVAL`]; each fetch bounded by
//!   [`JWKS_FETCH_TIMEOUT`], failures backed off). No call per request; revocation is seen
//!   only through the token's short expiry.
//! - **online** ([`Mode::Online`]): with `ValidateToken`, one call per request; a revoked
//!   token is refused within a second of its revocation.
//!
//! [`AuthLayer`] wraps a tonic server (or any tower HTTP service): it reads
//! `authorization: Bearer <token>`, authenticates it, and puts the [`Principal`] into the
//! request's extensions; a request without a valid token is answered `UNAUTHENTICATED`
//! before it reaches the handler.
//!
//! Every authenticator is told which mini-program's tokens it takes ([`Audience`]): a token
//! issued for another app is refused, unless the service says [`Audience::AnyApp`].
//!
//! ```no_run
//! # async fn run(channel: tonic::transport::Channel, key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use wxauth_client::{Audience, Authenticator, Mode};
//! let auth = Authenticator::new(channel, key, Mode::Offline, Audience::App("wx4f4bc4dec97d474b".into()))?;
//! // Server::builder().layer(auth.layer()).add_service(MyServer::new(my_service))
//! # Ok(()) }
//! ```

pub mod connect;
mod jwks;
mod layer;
mod replicas;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};
use tonic_types::StatusExt as _;
use wxauth_proto::v1::{ValidateTokenRequest, auth_service_client::AuthServiceClient};
use wxauth_token::TokenError;

pub use jwks::{JWKS_FETCH_TIMEOUT, JWKS_MAX_AGE, JWKS_REFETCH_INTERVAL};
use jwks::{Keys, Why};
pub use layer::{AuthLayer, Authenticated};

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
    /// The account (one person across the apps of an Open Platform account), when the
    /// token names one.
    pub account_id: Option<String>,
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
    /// No `authorization: Bearer` header, or more than one.
    #[error("send the access token as one `authorization: Bearer <token>` header")]
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

/// The auth-service client every call here goes through, the caller key on each call.
pub(crate) type AuthClient = AuthServiceClient<InterceptedService<Channel, CallerKey>>;

/// Which tokens are accepted: a service says it, so that a token of another mini-program
/// is never taken by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Only tokens issued for this appid.
    App(String),
    /// Tokens of every mini-program this wxauth deployment serves (a service shared by
    /// several apps).
    AnyApp,
}

/// How long one ValidateToken call may take.
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

struct Inner {
    client: AuthClient,
    mode: Mode,
    keys: Keys,
    audience: Audience,
    /// The longest one call to the auth-service (ValidateToken, a key fetch) may take.
    call_timeout: Duration,
}

/// Checks access tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl Authenticator {
    /// An authenticator over a channel to the auth-service, presenting `caller_key` (one
    /// with the `validate` scope), accepting tokens of `audience`. Nothing is fetched until
    /// the first token arrives, so a service can start before the auth-service.
    pub fn new(
        channel: Channel,
        caller_key: &str,
        mode: Mode,
        audience: Audience,
    ) -> Result<Self, BadCallerKey> {
        let key = CallerKey::new(caller_key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client: AuthServiceClient::with_interceptor(channel, key),
                mode,
                keys: Keys::new(),
                audience,
                call_timeout: VALIDATE_TIMEOUT,
            }),
        })
    }

    /// The same authenticator, each call to the auth-service (ValidateToken, a key fetch)
    /// bounded by `timeout` instead of [`VALIDATE_TIMEOUT`] and [`JWKS_FETCH_TIMEOUT`]: a
    /// call never answered is made at most three times, so a request waits at most three
    /// times this for an auth-service that does not answer.
    pub fn with_call_timeout(self, timeout: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            client: shared.client.clone(),
            mode: shared.mode,
            keys: Keys::new(),
            audience: shared.audience.clone(),
            call_timeout: shared.call_timeout,
        });
        Self {
            inner: Arc::new(Inner {
                call_timeout: timeout,
                ..inner
            }),
        }
    }

    fn audience(&self) -> Option<&str> {
        match &self.inner.audience {
            Audience::App(appid) => Some(appid),
            Audience::AnyApp => None,
        }
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
        let call = || {
            let mut request = tonic::Request::new(ValidateTokenRequest {
                token: token.to_owned(),
                appid: self.audience().unwrap_or_default().to_owned(),
            });
            let timeout = self.inner.call_timeout;
            request.set_timeout(timeout);
            let mut client = self.inner.client.clone();
            async move {
                tokio::time::timeout(timeout, client.validate_token(request))
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("ValidateToken timed out")))
            }
        };
        // ValidateToken changes nothing: a call the service never answered is made again
        // (with several replicas, the balancer picks another).
        let answer = connect::again_if_unanswered(call).await;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                Ok(Principal {
                    user_id: answer.user_id,
                    appid: answer.appid,
                    openid: answer.openid,
                    unionid: Some(answer.unionid).filter(|id| !id.is_empty()),
                    account_id: Some(answer.account_id).filter(|id| !id.is_empty()),
                    session_id: answer.session_id,
                    expires_at: answer.expires_at.map_or(0, |at| at.seconds),
                })
            }
            Err(status) => {
                let reason = status
                    .get_error_details()
                    .error_info()
                    .map(|info| info.reason.clone())
                    .unwrap_or_default();
                match (status.code(), reason.as_str()) {
                    (_, "TOKEN_EXPIRED") => Err(AuthFailure::Expired),
                    (tonic::Code::Unauthenticated, "TOKEN_INVALID")
                    | (tonic::Code::InvalidArgument, _) => Err(AuthFailure::Invalid),
                    _ => Err(AuthFailure::Unavailable(status)),
                }
            }
        }
    }

    async fn offline(&self, token: &str) -> Result<Principal, AuthFailure> {
        let audience = self.audience();
        let client = &self.inner.client;
        let timeout = self.inner.call_timeout;
        self.inner.keys.refresh(client, Why::Check, timeout).await?;
        let mut result = self
            .inner
            .keys
            .with(|keys| keys.verify(token, unix_now(), audience))
            .await
            .unwrap_or(Err(TokenError::Malformed));
        if matches!(result, Err(TokenError::UnknownKey { .. })) {
            // A key not seen yet (a rotation): refetch, rate-limited, and try again.
            self.inner
                .keys
                .refresh(client, Why::UnknownKey, timeout)
                .await?;
            result = self
                .inner
                .keys
                .with(|keys| keys.verify(token, unix_now(), audience))
                .await
                .unwrap_or(Err(TokenError::Malformed));
        }
        match result {
            Ok(claims) => Ok(Principal {
                user_id: claims.sub,
                appid: claims.aud,
                openid: claims.openid,
                unionid: claims.unionid,
                account_id: claims.acc,
                session_id: claims.sid,
                expires_at: claims.exp,
            }),
            Err(TokenError::Expired) => Err(AuthFailure::Expired),
            Err(_) => Err(AuthFailure::Invalid),
        }
    }
}
