//! What grpcurl and operators rely on: reflection (v1 and v1alpha), health, and errors that
//! carry a machine-readable reason.

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;
use wxauth_e2e::stack::{APP, Stack};
use wxauth_proto::v1::CreateSessionRequest;

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_and_describe_the_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let stack = Stack::start().await;
    let channel = stack.channel().await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let requests = [
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "wxauth.v1.AuthService".into(),
                ),
            ),
        },
    ];
    let mut answers = client
        .server_reflection_info(tokio_stream_iter(requests.to_vec()))
        .await
        .unwrap()
        .into_inner();
    let listed = answers.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed.message_response
    else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in ["wxauth.v1.AuthService", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not in {names:?}"
        );
    }
    let described = answers.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        described.message_response
    else {
        panic!("not a descriptor: {described:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream_iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let listed = answers.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        listed.message_response
    else {
        panic!("not a service list: {listed:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|service| service.name == "wxauth.v1.AuthService")
    );
}

fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl tonic::IntoStreamingRequest<Message = T> {
    futures_iter(items)
}

/// A stream of the given items, for client-streaming calls.
fn futures_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter(items)
}

#[tokio::test]
async fn health_says_serving_for_the_server_and_the_auth_service() {
    let stack = Stack::start().await;
    let mut health = HealthClient::new(stack.channel().await);
    for service in ["", "wxauth.v1.AuthService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

#[tokio::test]
async fn grpc_errors_carry_a_reason_and_the_wechat_errcode() {
    let stack = Stack::start().await;
    let mut grpc = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let status = grpc
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code: "never-minted".into(),
        })
        .await
        .expect_err("an unknown code is refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("CODE_REJECTED", "wxauth")
    );
    assert_eq!(
        info.metadata.get("wechat_errcode").map(String::as_str),
        Some("40029")
    );
}

#[tokio::test]
async fn every_binary_stops_cleanly_on_sigterm() {
    let mut stack = Stack::start_processes().await;
    for server in [&mut stack.gateway, &mut stack.auth, &mut stack.sim] {
        let status = server.process().terminate();
        assert!(status.success(), "exit status {status:?}");
    }
}

#[tokio::test]
async fn reflection_can_be_turned_off() {
    use tonic_reflection::pb::v1;
    let stack = Stack::start().await;
    let hidden =
        stack.spawn_replica_with("no-reflection", &[("WXAUTH_REFLECTION", "false".into())]);
    let channel = wxauth_e2e::stack::channel_to(&hidden).await;
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let refused = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream_iter(vec![request]))
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    // The API itself is there.
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "wxauth.v1.AuthService".into(),
        })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
}
