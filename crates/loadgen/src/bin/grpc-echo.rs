//! `grpc-echo`: a bare tonic server, built like the auth-service (multi-threaded runtime,
//! TCP_NODELAY), whose one RPC answers at once. Prints `listening on <addr>`.

use std::process::ExitCode;

use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::Server};
use wxauth_loadgen::echo::{
    ValidateRequest, ValidateResponse,
    echo_server::{Echo, EchoServer},
};

struct Answer;

#[tonic::async_trait]
impl Echo for Answer {
    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(ValidateResponse {
            user_id: "1000".into(),
            appid: request.appid,
            openid: "o-bench-0000000000000000".into(),
            unionid: "u-bench-0000000000000000".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            session_id: "1000".into(),
            token_id: "00000000000000000000000000000000".into(),
        }))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = std::env::var("ECHO_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("grpc-echo: cannot listen on {addr}: {err}");
            return ExitCode::from(69);
        }
    };
    let Ok(signals) = wxauth_process::signal::install() else {
        return ExitCode::FAILURE;
    };
    match listener.local_addr() {
        Ok(local) => println!("listening on {local}"),
        Err(_) => return ExitCode::FAILURE,
    }
    let served = Server::builder()
        .add_service(EchoServer::new(Answer))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                signals.recv().await;
            },
        )
        .await;
    if served.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
