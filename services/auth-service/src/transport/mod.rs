//! The gRPC edge: it only translates.
//!
//! - [`service`]: the `AuthService` RPCs: parse the request, call the flow, build the answer;
//! - [`lifecycle`]: the same for the account-lifecycle RPCs; [`oauth`]: for introspection;
//! - [`convert`]: requests into checked domain input, domain results into messages;
//! - [`status`]: the one mapping from [`AuthError`] to a gRPC code and reason;
//! - [`limits`]: how much may be in flight, and how big a message may be.
//!
//! Every call goes through [`AuthApi::call`]: the caller's key is checked for the RPC's
//! scope, the call runs in a span carrying its request id and caller, and it is counted.

pub mod convert;
pub mod events;
pub mod lifecycle;
pub mod limits;
pub mod oauth;
pub mod service;
pub mod status;

use std::{future::Future, net::IpAddr, sync::Arc, time::Instant};

use tonic::{Request, Response, Status};
use tracing::{Instrument, info_span};
use wxauth_proto::wire::{
    CLIENT_ADDR_HEADER, REQUEST_ID_HEADER, acceptable_request_id, caller_key, new_request_id,
};

use crate::{
    audit::AuditLog,
    callers::{Callers, Scope},
    domain::{AuditKind, CallContext, NewAuditEvent},
    error::AuthError,
    lifecycle::Lifecycle,
    login::Logins,
    metrics::Metrics,
    profiles::Profiles,
    tokens::Tokens,
    users::Users,
    webhooks::Webhooks,
    wechat_calls::WeChatCalls,
};

/// The `AuthService` implementation: the flows, and who may call them.
#[derive(Clone)]
pub struct AuthApi {
    logins: Arc<Logins>,
    tokens: Arc<Tokens>,
    users: Arc<Users>,
    profiles: Arc<Profiles>,
    lifecycle: Arc<Lifecycle>,
    wechat_calls: Arc<WeChatCalls>,
    webhooks: Webhooks,
    callers: Arc<Callers>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

/// The flows an [`AuthApi`] serves.
pub struct Flows {
    /// Logins.
    pub logins: Arc<Logins>,
    /// Tokens.
    pub tokens: Arc<Tokens>,
    /// Users.
    pub users: Arc<Users>,
    /// What users fill in of their profile.
    pub profiles: Arc<Profiles>,
    /// Suspension, deletion, export.
    pub lifecycle: Arc<Lifecycle>,
    /// Calls to WeChat with an app token.
    pub wechat_calls: Arc<WeChatCalls>,
    /// Webhook events (their replay).
    pub webhooks: Webhooks,
}

/// How an RPC is called: its name, the scope it needs, and whether a refusal of it by the
/// client's fault is audited (as `refused`), with where its appid is.
struct Rpc<T> {
    method: &'static str,
    scope: Option<Scope>,
    refused: Option<AuditKind>,
    appid: Option<fn(&T) -> &str>,
}

impl<T> Rpc<T> {
    const fn new(method: &'static str, scope: Option<Scope>) -> Self {
        Self {
            method,
            scope,
            refused: None,
            appid: None,
        }
    }

    /// A login RPC: a refused login is audited with its appid.
    const fn login(method: &'static str, appid: fn(&T) -> &str) -> Self {
        Self {
            method,
            scope: Some(Scope::Login),
            refused: Some(AuditKind::LoginRefused),
            appid: Some(appid),
        }
    }

    /// An RPC whose refusals are audited as `kind`.
    const fn audited(method: &'static str, scope: Scope, kind: AuditKind) -> Self {
        Self {
            method,
            scope: Some(scope),
            refused: Some(kind),
            appid: None,
        }
    }
}

/// The longest client address taken from the gateway.
const MAX_CLIENT_ADDR_LEN: usize = 64;

impl AuthApi {
    /// Serves the flows to the given callers.
    pub fn new(flows: Flows, callers: Callers, audit: AuditLog, metrics: Arc<Metrics>) -> Self {
        let Flows {
            logins,
            tokens,
            users,
            profiles,
            lifecycle,
            wechat_calls,
            webhooks,
        } = flows;
        Self {
            logins,
            tokens,
            users,
            profiles,
            lifecycle,
            wechat_calls,
            webhooks,
            callers: Arc::new(callers),
            audit,
            metrics,
        }
    }

    /// Runs one call: checks the caller's key for the RPC's scope, then runs `body` with
    /// the call's context inside a span that carries the request id and the caller's name,
    /// audits a refused caller or login, and turns the error into a `Status`.
    async fn call<T, R, F, Fut>(
        &self,
        request: Request<T>,
        rpc: Rpc<T>,
        body: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(T, CallContext) -> Fut,
        Fut: Future<Output = Result<R, AuthError>>,
    {
        let metadata = request.metadata();
        let text = |name: &str| metadata.get(name).and_then(|value| value.to_str().ok());
        // The service's own id for the call, which its logs and the audit trail carry; the
        // caller's id beside it, as the caller wrote it.
        let request_id = new_request_id();
        let client_request_id = text(REQUEST_ID_HEADER)
            .filter(|id| acceptable_request_id(id))
            .map(str::to_owned);
        // Several keys on one call are refused, not picked from (with a certificate too).
        let caller_key = caller_key(metadata)
            .map(|key| key.map(str::to_owned))
            .map_err(|_| AuthError::CallerUnauthenticated);
        let forwarded_client = text(CLIENT_ADDR_HEADER)
            .filter(|addr| addr.len() <= MAX_CLIENT_ADDR_LEN && addr.parse::<IpAddr>().is_ok())
            .map(str::to_owned);
        let peer = request.remote_addr().map(|addr| addr.ip().to_string());
        let certificate = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|cert| cert.to_vec()));
        let span = info_span!(
            "rpc",
            method = rpc.method,
            request_id = %request_id,
            client_request_id = client_request_id.as_deref(),
            caller = tracing::field::Empty
        );
        let started = Instant::now();
        let mut context = CallContext {
            caller: None,
            client_addr: peer,
            request_id: request_id.clone(),
            client_request_id,
            reach: crate::domain::Reach::default(),
        };
        let result = async {
            let authorized = match caller_key.and_then(|key| {
                self.callers.authorize(
                    key.as_deref(),
                    certificate.as_deref(),
                    rpc.method,
                    rpc.scope,
                )
            }) {
                Ok(authorized) => authorized,
                Err(err) => {
                    self.audit
                        .tally(refusal(AuditKind::CallerRefused, &err, None, &context));
                    return Err(err);
                }
            };
            tracing::Span::current().record("caller", authorized.name);
            context.caller = Some(authorized.name.to_owned());
            context.reach = authorized.reach;
            if authorized.speaks_for_clients {
                context.client_addr = forwarded_client.or(context.client_addr);
            }
            let message = request.into_inner();
            let appid = rpc.appid.map(|appid| appid(&message).to_owned());
            let result = match &appid {
                Some(appid) if context.reach.app(appid).is_err() => Err(AuthError::AppForbidden),
                _ => body(message, context.clone()).await,
            };
            if let (Err(err), Some(kind)) = (&result, rpc.refused)
                && refused_by_the_client(err)
            {
                self.audit.tally(refusal(kind, err, appid, &context));
            }
            result
        }
        .instrument(span.clone())
        .await;
        let outcome = match &result {
            Ok(_) => "OK",
            Err(err) => status::classify(err).1.as_str_name(),
        };
        self.metrics.rpc(rpc.method, outcome, started.elapsed());
        span.in_scope(|| {
            result
                .map(Response::new)
                .map_err(|err| status::to_status(err, &request_id))
        })
    }
}

/// Whether an error says something about the login attempt (worth auditing), rather than
/// about this service being unwell (which the logs and metrics carry).
fn refused_by_the_client(err: &AuthError) -> bool {
    !matches!(err, AuthError::Unavailable(_) | AuthError::Internal(_))
}

fn refusal(
    kind: AuditKind,
    err: &AuthError,
    appid: Option<String>,
    context: &CallContext,
) -> NewAuditEvent {
    NewAuditEvent {
        kind,
        outcome: status::classify(err).1.as_str_name().to_owned(),
        appid,
        user_id: None,
        openid_digest: None,
        family_id: None,
        account_id: None,
        context: context.clone(),
    }
}
