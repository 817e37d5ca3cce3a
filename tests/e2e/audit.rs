//! The audit trail, as an operator reads it over gRPC.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;
use wxauth_e2e::{
    eventually,
    stack::{APP, Stack, envelope},
};
use wxauth_proto::v1::{ListAuditEventsRequest, RevokeUserSessionsRequest, ValidateTokenRequest};

#[tokio::test]
async fn logins_refreshes_logouts_and_revocations_are_audited_with_who_and_from_where() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-audit").await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();
    let refreshed = stack
        .http
        .post(format!("{}/v1/token/refresh", stack.gateway.url()))
        .header("x-request-id", "rid-audit-refresh")
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(refreshed).await.0, StatusCode::OK);
    let second = stack.v1_login(APP, "o-audit").await;
    let logout = stack
        .http
        .post(format!("{}/v1/logout", stack.gateway.url()))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(logout).await.0, StatusCode::OK);
    let mut ops = stack.grpc().await;
    ops.revoke_user_sessions(RevokeUserSessionsRequest {
        user_id: user_id.clone(),
    })
    .await
    .unwrap();

    let events = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            limit: 10,
            before_event_id: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "revoked",
            "logout",
            "silent_login",
            "refresh",
            "silent_login"
        ],
        "{events:?}"
    );
    let refresh = &events[3];
    assert_eq!(
        (
            refresh.actor.as_str(),
            refresh.client_addr.as_str(),
            refresh.request_id.as_str()
        ),
        ("gateway", "127.0.0.1", "rid-audit-refresh"),
        "the gateway passes the client's address and the request id"
    );
    assert_eq!(
        (events[0].actor.as_str(), events[0].outcome.as_str()),
        ("ops", "revoked by ops")
    );
    assert!(events.iter().all(|event| event.user_id == user_id));

    // Paging, and the refusals.
    let page = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            limit: 2,
            before_event_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 2);
    let rest = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            limit: 10,
            before_event_id: page.next_before_event_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.events.len(), 3);
    for (user_id, limit, code) in [
        ("0", 5, Code::InvalidArgument),
        ("999999", 5, Code::NotFound),
        (user_id.as_str(), 501, Code::InvalidArgument),
    ] {
        let refused = ops
            .list_audit_events(ListAuditEventsRequest {
                user_id: user_id.into(),
                limit,
                before_event_id: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{user_id} {limit}");
    }

    // A caller with a wrong key is refused, and that is recorded (no user to file it under).
    let mut stranger = stack.grpc_as(Some("not-a-key-of-this-deployment")).await;
    let refused = stranger
        .validate_token(ValidateTokenRequest {
            token: "x".into(),
            appid: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    eventually(
        "the refused caller is recorded",
        Duration::from_secs(5),
        || async {
            stack
                .count("audit_events where kind = 'caller_refused'")
                .await
                == 1
        },
    )
    .await;
    // A login refused by WeChat is recorded too.
    let (status, _) = stack
        .get_session_key(&[("appid", APP), ("code", "nonexistentcode")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    eventually(
        "the refused login is recorded",
        Duration::from_secs(5),
        || async {
            stack
                .count("audit_events where kind = 'login_refused' and outcome = 'CODE_REJECTED'")
                .await
                == 1
        },
    )
    .await;
}
