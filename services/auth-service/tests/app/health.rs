//! gRPC health as an orchestrator watches it.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::support::TestApp;

#[tokio::test]
async fn every_health_name_turns_not_serving_when_shutdown_starts() {
    let mut app = TestApp::spawn(&[]).await;
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
    let stopping = tokio::spawn(async move { app.stop().await });
    for (service, mut stream) in watches {
        let next = stream.message().await.unwrap().unwrap().status;
        assert_eq!(
            next,
            ServingStatus::NotServing as i32,
            "{service:?} on shutdown"
        );
    }
    stopping.await.unwrap();
}
