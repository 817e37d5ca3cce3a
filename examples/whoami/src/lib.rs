//! An internal service protected by wxauth: the whole integration is the `.layer(...)` line
//! in [`serve`] and the `extensions().get::<Principal>()` in the handler.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::Server};
use wxauth_client::{Authenticator, Principal};

/// The generated `whoami.v1` types.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("whoami.v1");
}

use pb::{
    WhoAmIRequest, WhoAmIResponse,
    who_am_i_server::{WhoAmI, WhoAmIServer},
};

/// The service: it trusts the principal the layer put in the request.
#[derive(Debug, Default)]
pub struct WhoAmIService;

#[tonic::async_trait]
impl WhoAmI for WhoAmIService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        // The layer refuses unauthenticated calls, so a missing principal is a wiring bug.
        let principal = request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::internal("no principal: is the wxauth layer installed?"))?;
        Ok(Response::new(WhoAmIResponse {
            user_id: principal.user_id.clone(),
            appid: principal.appid.clone(),
            openid: principal.openid.clone(),
        }))
    }
}

/// Serves the example on `listener`, every call authenticated by `authenticator`.
pub async fn serve(
    listener: TcpListener,
    authenticator: Authenticator,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(authenticator.layer())
        .add_service(WhoAmIServer::new(WhoAmIService))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
