//! Suspension as operators use it: it bites at once on every replica and on every way in,
//! ends by itself when timed, and lifting it brings back no token.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wxauth_e2e::{
    eventually, refusal, refused_within_a_second,
    stack::{APP, Client, Stack},
};
use wxauth_proto::{
    prost_types::Timestamp,
    v1::{
        GetUserRequest, ListAuditEventsRequest, SetUserStatusRequest, UserStatus,
        set_user_status_request,
    },
};

async fn get_user(
    ops: &mut Client,
    user_id: &str,
) -> Result<wxauth_proto::v1::User, tonic::Status> {
    ops.get_user(GetUserRequest {
        user_id: user_id.into(),
    })
    .await
    .map(|answer| answer.into_inner().user.unwrap())
}

fn set_status(
    user_id: &str,
    status: UserStatus,
    reason: &str,
    until: Option<i64>,
) -> SetUserStatusRequest {
    SetUserStatusRequest {
        target: Some(set_user_status_request::Target::UserId(user_id.into())),
        status: status.into(),
        reason: reason.into(),
        until: until.map(|seconds| Timestamp { seconds, nanos: 0 }),
    }
}

#[tokio::test]
async fn a_suspension_bites_at_once_everywhere_and_lifting_it_brings_back_no_token() {
    let stack = Stack::start().await;
    let replica = stack.spawn_replica("auth-suspending");
    let login = stack.v1_login(APP, "o-suspend").await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap();
    // A login session made before the suspension, completed after it.
    let code = stack.mint_code(APP, "o-suspend", Some("u-o-suspend")).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let online = wxauth_client::Authenticator::new(
        wxauth_e2e::stack::channel_to(&replica).await,
        &stack.keys.service,
        wxauth_client::Mode::Online,
        wxauth_client::Audience::App(APP.into()),
    )
    .unwrap();
    assert!(online.authenticate(access).await.is_ok());
    let mut on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;

    let mut ops = stack.grpc().await;
    let suspended = ops
        .set_user_status(set_status(
            &user_id,
            UserStatus::Suspended,
            "fraud report 42",
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    let since = Instant::now();
    assert_eq!(suspended[0].status(), UserStatus::Suspended);
    assert_eq!(suspended[0].status_reason, "fraud report 42");
    refused_within_a_second(&mut on_replica, access, since).await;
    assert!(matches!(
        online.authenticate(access).await,
        Err(wxauth_client::AuthFailure::Invalid)
    ));

    // Refresh, and every way of logging in, is refused with its own code, after the code
    // exchange, and makes no session and no token.
    let exchanges = stack.exchanges().await;
    let families = stack.count("token_families").await;
    let (status, body) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::FORBIDDEN, Some(10011)),
        "{body}"
    );
    let code = stack.mint_code(APP, "o-suspend", Some("u-o-suspend")).await;
    let (status, body) = stack
        .post_as("/v1/login", json!({"appid": APP, "code": code}), None)
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::FORBIDDEN, Some(10011)),
        "{body}"
    );
    let code = stack.mint_code(APP, "o-suspend", Some("u-o-suspend")).await;
    let (status, body) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::FORBIDDEN, Some(10011)),
        "{body}"
    );
    let data = stack
        .user_info(APP, "o-suspend", json!({"nickName": "Late"}))
        .await;
    let (status, body) = stack
        .save_user(&wxauth_e2e::stack::save_body(
            APP,
            session["data"].as_str().unwrap(),
            "userinfo",
            &data,
        ))
        .await;
    assert!(
        matches!(body["code"].as_i64(), Some(10011) | Some(10002)),
        "a session of before is gone or refused: {status} {body}"
    );
    assert_eq!(
        stack.exchanges().await,
        exchanges + 2,
        "the codes were exchanged"
    );
    assert_eq!(
        stack.count("token_families").await,
        families,
        "no token was made"
    );
    assert_eq!(stack.count("login_sessions").await, 0, "and no session");

    // Lifted: no old token comes back; a new login works.
    ops.set_user_status(set_status(
        &user_id,
        UserStatus::Active,
        "appeal granted",
        None,
    ))
    .await
    .unwrap();
    assert!(online.authenticate(access).await.is_err());
    let (status, _) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = stack.v1_login(APP, "o-suspend").await;
    assert_eq!(again["user"]["user_id"], user_id.as_str());

    // A suspension with an end ends by itself.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let timed = ops
        .set_user_status(set_status(
            &user_id,
            UserStatus::Suspended,
            "",
            Some(now + 2),
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(timed[0].suspended_until.as_ref().unwrap().seconds, now + 2);
    let code = stack.mint_code(APP, "o-suspend", Some("u-o-suspend")).await;
    let (status, _) = stack
        .post_as("/v1/login", json!({"appid": APP, "code": code}), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    eventually("the timed suspension ends", Duration::from_secs(5), || {
        let mut ops = ops.clone();
        let user_id = user_id.clone();
        async move { get_user(&mut ops, &user_id).await.unwrap().status() == UserStatus::Active }
    })
    .await;
    stack.v1_login(APP, "o-suspend").await;

    // Each change is audited.
    let kinds: Vec<(String, String)> = ops
        .list_audit_events(ListAuditEventsRequest {
            user_id: user_id.clone(),
            kinds: vec!["user_suspended".into(), "user_reinstated".into()],
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|event| (event.kind, event.outcome))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("user_suspended".into(), "ok".into()),
            ("user_reinstated".into(), "appeal granted".into()),
            ("user_suspended".into(), "fraud report 42".into()),
        ]
    );

    // Bad input.
    for (request, reason) in [
        (
            set_status(&user_id, UserStatus::Deleted, "", None),
            "INVALID_ARGUMENT",
        ),
        (
            set_status(&user_id, UserStatus::Unspecified, "", None),
            "INVALID_ARGUMENT",
        ),
        (
            set_status(&user_id, UserStatus::Suspended, "", Some(now - 10)),
            "INVALID_ARGUMENT",
        ),
        (
            set_status(&user_id, UserStatus::Active, "", Some(now + 60)),
            "INVALID_ARGUMENT",
        ),
        (
            set_status(&user_id, UserStatus::Suspended, &"x".repeat(300), None),
            "INVALID_ARGUMENT",
        ),
        (
            set_status("424242", UserStatus::Suspended, "", None),
            "USER_NOT_FOUND",
        ),
    ] {
        let refused = ops.set_user_status(request).await.unwrap_err();
        assert_eq!(refusal(&refused).1, reason);
    }
}
