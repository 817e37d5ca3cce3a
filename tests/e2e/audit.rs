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
            ..ListAuditEventsRequest::default()
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
            refresh.client_request_id.as_str(),
            refresh.count,
        ),
        ("gateway", "127.0.0.1", "rid-audit-refresh", 1),
        "the gateway passes the client's address and its request id"
    );
    assert!(
        !refresh.request_id.is_empty() && refresh.request_id != "rid-audit-refresh",
        "the service's own request id is recorded: {refresh:?}"
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
            ..ListAuditEventsRequest::default()
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
            ..ListAuditEventsRequest::default()
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
                ..ListAuditEventsRequest::default()
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

/// The events of `kinds` (every user's), as an operator lists them.
async fn listed(stack: &Stack, kinds: &[&str]) -> Vec<wxauth_proto::v1::AuditEvent> {
    stack
        .grpc()
        .await
        .list_audit_events(ListAuditEventsRequest {
            kinds: kinds.iter().map(|kind| (*kind).to_owned()).collect(),
            limit: 500,
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

/// Every change to a user's data has its event, written with the change; refusals and
/// operators' reads are counted; the trail is listed by kind and time.
#[tokio::test]
async fn changes_refusals_and_reads_are_all_audited_and_listed_by_kind_and_time() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-trail").await;
    let token = login["access_token"].as_str().unwrap();
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();

    // Changes: in the trail as soon as the answer is in.
    let (status, _) = stack
        .post_as("/v1/me/profile", json!({"nickname": "Trail"}), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let code = stack.mint_phone_code(APP, "o-trail", "13800138000").await;
    let (status, _) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["profile_updated", "phone_bound"] {
        let events = listed(&stack, &[kind]).await;
        assert_eq!(events.len(), 1, "{kind}: {events:?}");
        assert_eq!(
            (
                events[0].user_id.as_str(),
                events[0].actor.as_str(),
                events[0].count
            ),
            (user_id.as_str(), "gateway", 1),
            "{kind}"
        );
    }

    // Refusals: a refused phone bind and refresh, and a flood of refused logins from one
    // client, counted per minute rather than a row each.
    let (status, _) = stack
        .bind_phone(Some(token), json!({ "code": "not-a-phone-code" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = stack
        .post_as(
            "/v1/token/refresh",
            json!({"refresh_token": "wxrt_not-a-token-of-this-deployment"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    const FLOOD: i64 = 40;
    for n in 0..FLOOD {
        let (status, _) = stack
            .get_session_key(&[("appid", APP), ("code", &format!("unknowncode{n}"))])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Operators' reads.
    stack
        .grpc()
        .await
        .get_user(wxauth_proto::v1::GetUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap();
    eventually(
        "the tallies are written",
        Duration::from_secs(5),
        || async {
            let logins = listed(&stack, &["login_refused"]).await;
            logins.iter().map(|event| event.count).sum::<i64>() == FLOOD
                && listed(&stack, &["phone_bind_refused"]).await.len() == 1
                && listed(&stack, &["refresh_refused"]).await.len() == 1
                && listed(&stack, &["admin_read"])
                    .await
                    .iter()
                    .any(|event| event.outcome == "GetUser" && event.user_id == user_id)
        },
    )
    .await;
    let logins = listed(&stack, &["login_refused"]).await;
    assert!(
        logins.len() <= 2,
        "one row a minute for one client, however many refusals: {logins:?}"
    );
    assert_eq!(
        listed(&stack, &["refresh_refused"]).await[0].outcome,
        "unknown"
    );

    // Filters: by kind, by time, and what is refused.
    let both = listed(&stack, &["profile_updated", "phone_bound"]).await;
    assert_eq!(
        both.iter()
            .map(|event| event.kind.as_str())
            .collect::<Vec<_>>(),
        ["phone_bound", "profile_updated"]
    );
    let mut ops = stack.grpc().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |seconds| Some(wxauth_proto::prost_types::Timestamp { seconds, nanos: 0 });
    let future = ops
        .list_audit_events(ListAuditEventsRequest {
            since: at(now + 3600),
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(future.events.is_empty(), "{future:?}");
    let past = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            since: at(now - 3600),
            until: at(now + 3600),
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(past.events.len() >= 3, "{past:?}");
    for (request, what) in [
        (
            ListAuditEventsRequest {
                kinds: vec!["logged_in".into()],
                ..ListAuditEventsRequest::default()
            },
            "an unknown kind",
        ),
        (
            ListAuditEventsRequest {
                since: at(now),
                until: at(now - 1),
                ..ListAuditEventsRequest::default()
            },
            "since after until",
        ),
    ] {
        let refused = ops.list_audit_events(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}");
        assert!(!refused.message().is_empty());
    }
}
