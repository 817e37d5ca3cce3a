//! Idle connections, to see what each one costs a server in resident memory.

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Opens `count` HTTP/1.1 keep-alive connections to `addr`, each having served one request.
pub async fn http1(addr: std::net::SocketAddr, count: usize) -> std::io::Result<Vec<TcpStream>> {
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: bench\r\n\r\n")
            .await?;
        let mut answer = [0u8; 1024];
        let _ = stream.read(&mut answer).await?;
        open.push(stream);
    }
    Ok(open)
}

/// Opens `count` HTTP/2 connections to `url`, each having answered a health check.
pub async fn grpc(url: &str, count: usize) -> Result<Vec<Channel>, Box<dyn std::error::Error>> {
    let mut open = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = Endpoint::from_shared(url.to_owned())?.connect().await?;
        HealthClient::new(channel.clone())
            .check(HealthCheckRequest::default())
            .await?;
        open.push(channel);
    }
    Ok(open)
}
