//! The same unary gRPC load against ValidateToken and against the bare echo server: many
//! callers sharing a few HTTP/2 connections, as internal services do.

use std::sync::Arc;

use tonic::{
    metadata::AsciiMetadataValue,
    transport::{Channel, Endpoint},
};
use wxauth_proto::{
    v1::{ValidateTokenRequest, auth_service_client::AuthServiceClient},
    wire::CALLER_KEY_HEADER,
};

use crate::{
    echo::{ValidateRequest, echo_client::EchoClient},
    system::APP,
};

/// `connections` HTTP/2 connections to `url`.
pub async fn connections(
    url: &str,
    connections: usize,
) -> Result<Vec<Channel>, tonic::transport::Error> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            Endpoint::from_shared(url.to_owned())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// Calls of ValidateToken, spread over `channels` and `tokens`.
#[derive(Clone)]
pub struct Validate {
    /// The connections.
    pub channels: Arc<Vec<Channel>>,
    /// Valid access tokens.
    pub tokens: Arc<Vec<String>>,
    /// A caller key with the `validate` scope.
    pub key: AsciiMetadataValue,
}

impl Validate {
    /// One call by `caller`; true when the token was accepted.
    pub async fn call(self, caller: usize, iteration: u64) -> bool {
        let channel = self.channels[caller % self.channels.len()].clone();
        let token = &self.tokens[(caller + iteration as usize) % self.tokens.len()];
        let mut request = tonic::Request::new(ValidateTokenRequest {
            token: token.clone(),
            appid: APP.into(),
        });
        request
            .metadata_mut()
            .insert(CALLER_KEY_HEADER, self.key.clone());
        AuthServiceClient::new(channel)
            .validate_token(request)
            .await
            .is_ok()
    }
}

/// Calls of the echo server with the same requests.
#[derive(Clone)]
pub struct Echo {
    /// The connections.
    pub channels: Arc<Vec<Channel>>,
    /// The same tokens, so requests are the same size.
    pub tokens: Arc<Vec<String>>,
}

impl Echo {
    /// One call by `caller`.
    pub async fn call(self, caller: usize, iteration: u64) -> bool {
        let channel = self.channels[caller % self.channels.len()].clone();
        let token = &self.tokens[(caller + iteration as usize) % self.tokens.len()];
        EchoClient::new(channel)
            .validate(ValidateRequest {
                token: token.clone(),
                appid: APP.into(),
            })
            .await
            .is_ok()
    }
}
