//! The auth-service's public keys, as an offline verifier keeps them.
//!
//! They are fetched on first use, refetched when a token names a key that is not there (a
//! rotation) at most once per [`JWKS_REFETCH_INTERVAL`], and refreshed when older than
//! [`JWKS_MAX_AGE`]. A fetch gives up after [`JWKS_FETCH_TIMEOUT`]; after a failed one the
//! next try waits, doubling from one second up to a minute, so a service whose auth-service
//! is down does not hammer it. Keys already fetched keep working meanwhile.

use std::time::{Duration, Instant};

use tokio::sync::{Mutex, RwLock};
use tonic::Status;
use wxauth_proto::v1::GetJwksRequest;
use wxauth_token::{Jwks, Verifier};

use crate::{AuthClient, AuthFailure};

/// The shortest time between two fetches triggered by unknown key ids, so tokens with
/// made-up kids cannot make a service hammer the auth-service.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How old the keys may get before they are fetched again (a rotation publishes new keys
/// before anything is signed with them; docs/key-rotation.md waits this long).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// How long one fetch may take, unless the authenticator is given another bound
/// ([`Authenticator::with_call_timeout`](crate::Authenticator::with_call_timeout)).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest wait after a failed fetch.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Fetching {
    /// When the keys were last fetched.
    fetched: Option<Instant>,
    /// No fetch before this (after a failure).
    not_before: Option<Instant>,
    /// Failures in a row.
    failures: u32,
}

/// The keys, and when to fetch them again.
pub(crate) struct Keys {
    verifier: RwLock<Option<Verifier>>,
    fetching: Mutex<Fetching>,
}

/// Why the keys are wanted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A token to check (fetch only if there are no keys, or they are old).
    Check,
    /// A token names a key that is not there.
    UnknownKey,
}

impl Keys {
    pub(crate) fn new() -> Self {
        Self {
            verifier: RwLock::new(None),
            fetching: Mutex::new(Fetching::default()),
        }
    }

    /// Runs `check` with the current keys, if any.
    pub(crate) async fn with<T>(&self, check: impl FnOnce(&Verifier) -> T) -> Option<T> {
        self.verifier.read().await.as_ref().map(check)
    }

    /// Fetches the keys when `why` calls for it and the backoff allows. With keys already
    /// there, a failed fetch is logged and the old keys stay; without any, it is an error.
    pub(crate) async fn refresh(
        &self,
        client: &AuthClient,
        why: Why,
        timeout: Duration,
    ) -> Result<(), AuthFailure> {
        let mut fetching = self.fetching.lock().await;
        let have_keys = self.verifier.read().await.is_some();
        let now = Instant::now();
        let due = match (why, fetching.fetched) {
            (_, None) => true,
            (Why::Check, Some(at)) => now.duration_since(at) >= JWKS_MAX_AGE,
            (Why::UnknownKey, Some(at)) => now.duration_since(at) >= JWKS_REFETCH_INTERVAL,
        };
        let backing_off = fetching.not_before.is_some_and(|at| now < at);
        if !due || backing_off {
            return if have_keys {
                Ok(())
            } else {
                Err(AuthFailure::Unavailable(Status::unavailable(
                    "the auth-service's keys could not be fetched; retrying shortly",
                )))
            };
        }
        match fetch(client, timeout).await {
            Ok((jwks, issuer)) => {
                *self.verifier.write().await =
                    Some(Verifier::from_jwks(&jwks).with_issuer(issuer.as_deref()));
                *fetching = Fetching {
                    fetched: Some(now),
                    not_before: None,
                    failures: 0,
                };
                tracing::debug!(keys = jwks.keys.len(), "fetched the auth-service's jwks");
                Ok(())
            }
            Err(status) => {
                fetching.failures = fetching.failures.saturating_add(1);
                let wait = BACKOFF_FIRST
                    .saturating_mul(2u32.saturating_pow(fetching.failures - 1))
                    .min(BACKOFF_MAX);
                fetching.not_before = Some(now + wait);
                tracing::warn!(error = %status.message(), retry_in = ?wait, "cannot fetch the auth-service's jwks");
                if have_keys {
                    Ok(())
                } else {
                    Err(AuthFailure::Unavailable(status))
                }
            }
        }
    }
}

/// The keys, and the issuer their tokens name (none from an auth-service that names none).
async fn fetch(client: &AuthClient, timeout: Duration) -> Result<(Jwks, Option<String>), Status> {
    let call = || {
        let mut request = tonic::Request::new(GetJwksRequest {});
        request.set_timeout(timeout);
        let mut client = client.clone();
        async move {
            tokio::time::timeout(timeout, client.get_jwks(request))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("fetching the jwks timed out")))
        }
    };
    // Safe to repeat: with several replicas, the balancer picks another.
    let answer = crate::connect::again_if_unanswered(call)
        .await?
        .into_inner();
    let jwks = serde_json::from_str(&answer.jwks_json)
        .map_err(|_| Status::internal("the auth-service sent a malformed JWKS"))?;
    Ok((
        jwks,
        Some(answer.issuer).filter(|issuer| !issuer.is_empty()),
    ))
}
