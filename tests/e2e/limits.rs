//! Bounded work: calls over the limit are refused at once while health stays SERVING and the
//! accepted calls finish; deadlines are honoured; a slow client cannot hold a connection.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt as _;
use wxauth_e2e::stack::{APP, Options, Stack, envelope};
use wxauth_proto::v1::{CreateSessionRequest, ValidateTokenRequest};

/// The outcome of one call, and when it ended.
type Ended = (Result<(), (Code, String, bool)>, Instant);

#[tokio::test]
async fn calls_over_the_limit_are_refused_at_once_and_the_accepted_ones_finish() {
    let stack = Stack::start_with(Options {
        auth_env: vec![("WXAUTH_MAX_CONCURRENT_CALLS", "2".into())],
        ..Options::default()
    })
    .await;
    // WeChat holds the two accepted calls for a while.
    stack.fault(None, 1500, 2).await;
    let mut calls = Vec::new();
    for n in 0..8 {
        let code = stack.mint_code(APP, &format!("o-load-{n}"), None).await;
        let mut client = stack.grpc_as(Some(&stack.keys.gateway)).await;
        calls.push(tokio::spawn(async move {
            let result = client
                .create_session(CreateSessionRequest {
                    appid: APP.into(),
                    code,
                })
                .await
                .map(drop)
                .map_err(|status| {
                    let details = status.get_error_details();
                    let reason = details
                        .error_info()
                        .map(|info| info.reason.clone())
                        .unwrap_or_default();
                    (status.code(), reason, details.retry_info().is_some())
                });
            (result, Instant::now()) as Ended
        }));
        if n == 1 {
            // The first two are in: let them reach WeChat before the rest arrive.
            wxauth_e2e::eventually("two calls at WeChat", Duration::from_secs(5), || async {
                stack.exchanges().await >= 2
            })
            .await;
        }
    }
    // Meanwhile the replica is busy, not dead.
    let health = HealthClient::new(stack.channel().await)
        .check(HealthCheckRequest {
            service: "wxauth.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for call in calls {
        let (result, ended) = call.await.unwrap();
        match result {
            Ok(()) => accepted.push(ended),
            Err(refusal) => {
                assert_eq!(
                    refusal,
                    (Code::ResourceExhausted, "OVERLOADED".into(), true),
                    "refused as overloaded, with a RetryInfo"
                );
                refused.push(ended);
            }
        }
    }
    assert_eq!((accepted.len(), refused.len()), (2, 6));
    let first_accepted = accepted.iter().min().copied().unwrap();
    assert!(
        refused.iter().all(|ended| *ended < first_accepted),
        "every refusal came while the accepted calls were still waiting on WeChat"
    );
    assert_eq!(
        stack.exchanges().await,
        2,
        "the refused codes never reached WeChat"
    );

    // Through the gateway: 503 with retry-after, in the envelope.
    stack.fault(None, 1500, 2).await;
    let mut held = Vec::new();
    for n in 0..2 {
        let code = stack.mint_code(APP, &format!("o-held-{n}"), None).await;
        let http = stack.http.clone();
        let url = format!("{}/wxauth/getsessionkey", stack.gateway.url());
        held.push(tokio::spawn(async move {
            http.get(url)
                .query(&[("appid", APP), ("code", code.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    wxauth_e2e::eventually(
        "two more calls at WeChat",
        Duration::from_secs(5),
        || async { stack.exchanges().await >= 4 },
    )
    .await;
    let code = stack.mint_code(APP, "o-refused", None).await;
    let response = stack
        .http
        .get(format!("{}/wxauth/getsessionkey", stack.gateway.url()))
        .query(&[("appid", APP), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = envelope(response).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10500))
    );
    for call in held {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test]
async fn the_gateway_sheds_what_it_cannot_hold_and_drops_slow_clients() {
    let stack = Stack::start_with(Options {
        gateway_env: vec![
            ("GATEWAY_MAX_CONCURRENT_REQUESTS", "1".into()),
            ("GATEWAY_HEADER_READ_TIMEOUT_MS", "300".into()),
        ],
        ..Options::default()
    })
    .await;
    stack.fault(None, 1000, 1).await;
    let code = stack.mint_code(APP, "o-one", None).await;
    let http = stack.http.clone();
    let url = format!("{}/wxauth/getsessionkey", stack.gateway.url());
    let held = tokio::spawn(async move {
        http.get(url)
            .query(&[("appid", APP), ("code", code.as_str())])
            .send()
            .await
            .unwrap()
            .status()
    });
    wxauth_e2e::eventually("one call at WeChat", Duration::from_secs(5), || async {
        stack.exchanges().await >= 1
    })
    .await;
    let response = stack
        .http
        .get(format!("{}/.well-known/jwks.json", stack.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = envelope(response).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(10500))
    );
    let health = stack
        .http
        .get(format!("{}/healthz", stack.gateway.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "liveness is never shed");
    assert_eq!(held.await.unwrap(), StatusCode::OK);

    // A client that sends its headers a byte at a time is disconnected.
    let mut slow = tokio::net::TcpStream::connect(stack.gateway.addr())
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buffer))
        .await
        .expect("the gateway does not wait for ever");
    assert!(
        matches!(closed, Ok(0) | Err(_)) || buffer.starts_with(b"HTTP/1.1 408"),
        "the slow connection is closed: {closed:?}"
    );
}

#[tokio::test]
async fn a_callers_deadline_is_honoured() {
    let stack = Stack::start().await;
    stack.fault(None, 5000, 1).await;
    let code = stack.mint_code(APP, "o-deadline", None).await;
    let mut client = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let mut request = tonic::Request::new(CreateSessionRequest {
        appid: APP.into(),
        code,
    });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let refused = client.create_session(request).await.unwrap_err();
    assert!(
        matches!(refused.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the caller's deadline, not when WeChat did"
    );
}

/// A message over 64 KiB is refused with RESOURCE_EXHAUSTED (gRPC's code for it, not tonic's
/// OUT_OF_RANGE) naming the limit, a header list over 16 KiB is refused (HTTP 431), and the
/// service answers the next call as before; a message just under the limit is read and judged.
#[tokio::test]
async fn oversized_messages_and_headers_are_refused_and_the_service_carries_on() {
    let stack = Stack::start().await;
    let mut client = stack.grpc_as(Some(&stack.keys.service)).await;
    let validate = |token: String| ValidateTokenRequest {
        token,
        appid: String::new(),
    };

    let refused = client
        .validate_token(validate("t".repeat(70_000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("65536 bytes"), "{refused:?}");

    let judged = client
        .validate_token(validate("t".repeat(60_000)))
        .await
        .unwrap_err();
    assert_eq!(judged.code(), Code::InvalidArgument, "{judged:?}");
    assert!(judged.message().contains("token is longer"), "{judged:?}");

    let mut request = tonic::Request::new(validate("x".into()));
    request
        .metadata_mut()
        .insert("x-padding", "p".repeat(20 * 1024).parse().unwrap());
    let refused = client.validate_token(request).await.unwrap_err();
    assert!(refused.message().contains("431"), "{refused:?}");

    let mut fresh = stack.grpc_as(Some(&stack.keys.service)).await;
    let after = fresh
        .validate_token(validate("x".into()))
        .await
        .unwrap_err();
    assert_eq!(
        after.get_error_details().error_info().unwrap().reason,
        "TOKEN_INVALID",
        "the service still answers: {after:?}"
    );
}
