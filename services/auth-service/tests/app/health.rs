//! gRPC health as an orchestrator watches it.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::support::TestApp;

/// The status line of `GET /readyz` on the metrics listener (HTTP/1.1 by hand: one request).
async fn readyz(app: &TestApp) -> String {
    let mut stream = TcpStream::connect(app.metrics_addr).await.unwrap();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: wxauth\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_health_name_and_readyz_turn_not_ready_when_shutdown_starts() {
    let mut app = TestApp::spawn(&[]).await;
    assert_eq!(readyz(&app).await, "HTTP/1.1 200 OK");
    let mut watches = Vec::new();
    for service in ["", "wxauth.v1.AuthService"] {
        let mut stream = HealthClient::new(app.channel().await)
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap().status;
        assert_eq!(
            first,
            ServingStatus::Serving as i32,
            "{service:?} serves first"
        );
        watches.push((service, stream));
    }
    app.begin_stop();
    for (service, mut stream) in watches {
        let next = stream.message().await.unwrap().unwrap().status;
        assert_eq!(
            next,
            ServingStatus::NotServing as i32,
            "{service:?} on shutdown"
        );
    }
    // Readiness turns with gRPC health (before it, in fact), for an HTTP probe.
    assert_eq!(readyz(&app).await, "HTTP/1.1 503 Service Unavailable");
    app.stop().await;
}
