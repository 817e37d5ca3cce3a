//! checkSession and reset: the session_key kept for a user, checked with WeChat and
//! replaced, with the signature WeChat documents; and an upgrade from the schema before
//! these tables keeps users, sessions and tokens.

use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use wxauth_e2e::stack::{APP, Stack, save_body};
use wxauth_proto::v1::{
    CheckSessionKeyRequest, GetUserRequest, ListAuditEventsRequest, RefreshTokenRequest,
    ResetSessionKeyRequest, SessionKeyState, ValidateTokenRequest,
};

/// Another server of the same app exchanges a fresh code of the user's straight with
/// WeChat: WeChat gives the user a new session_key that wxauth does not know of.
async fn rotate_behind_wxauths_back(stack: &Stack, openid: &str) {
    let secret = stack
        .auth_setting("WXAUTH_APPS")
        .split(',')
        .find_map(|pair| pair.strip_prefix(&format!("{APP}:")).map(str::to_owned))
        .unwrap();
    let code = stack.mint_code(APP, openid, None).await;
    let answer: Value = stack
        .http
        .get(format!("{}/sns/jscode2session", stack.sim.url()))
        .query(&[
            ("appid", APP),
            ("secret", &secret),
            ("js_code", &code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["session_key"].is_string(), "{answer}");
}

async fn state(stack: &Stack, user_id: &str) -> SessionKeyState {
    let answer = stack
        .grpc_as(Some(&stack.keys.service))
        .await
        .check_session_key(CheckSessionKeyRequest {
            user_id: user_id.into(),
        })
        .await
        .expect("an internal service may check a session_key")
        .into_inner();
    answer.state()
}

async fn reset(stack: &Stack, user_id: &str) -> Result<(), tonic::Status> {
    stack
        .grpc()
        .await
        .reset_session_key(ResetSessionKeyRequest {
            user_id: user_id.into(),
        })
        .await
        .map(drop)
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_kept_session_key_is_checked_and_reset_with_wechat() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-key").await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();
    assert_eq!(state(&stack, &user_id).await, SessionKeyState::Current);

    // Another exchange at WeChat rotated the key: what wxauth keeps is stale, and a reset
    // signed with it is refused with its own reason (not a 500).
    rotate_behind_wxauths_back(&stack, "o-key").await;
    assert_eq!(state(&stack, &user_id).await, SessionKeyState::Stale);
    let refused = reset(&stack, &user_id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(reason(&refused), "SESSION_KEY_INVALID");
    let info = refused.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        info.metadata.get("wechat_errcode").map(String::as_str),
        Some("87009")
    );

    // A new login brings the current key; a reset replaces it at WeChat and here, and the
    // user's open login session (its key is dead) ends.
    let login = stack.v1_login(APP, "o-key").await;
    assert_eq!(state(&stack, &user_id).await, SessionKeyState::Current);
    let before = stack.session_key(APP, "o-key").await;
    reset(&stack, &user_id)
        .await
        .expect("the reset is signed with the current key");
    let after = stack.session_key(APP, "o-key").await;
    assert_ne!(before, after, "WeChat gave a new key");
    // The reset is in the user's audit trail, with who asked.
    wxauth_e2e::eventually(
        "the reset is audited",
        std::time::Duration::from_secs(10),
        || async {
            stack
                .grpc()
                .await
                .list_audit_events(ListAuditEventsRequest {
                    user_id: user_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .events
                .iter()
                .any(|event| event.kind == "session_key_reset" && event.actor == "ops")
        },
    )
    .await;
    assert_eq!(state(&stack, &user_id).await, SessionKeyState::Current);
    let data = stack
        .user_info(APP, "o-key", json!({"nickName": "K"}))
        .await;
    let (status, body) = stack
        .save_user(&save_body(
            APP,
            login["session_id"].as_str().unwrap(),
            "userinfo",
            &data,
        ))
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_i64()),
        (401, Some(10002)),
        "{body}"
    );

    // WeChat busy: an outage, not a verdict on the key.
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "checksession", "errcode": -1}),
        )
        .await;
    let busy = stack
        .grpc()
        .await
        .check_session_key(CheckSessionKeyRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::Unavailable, "{busy:?}");
    assert_eq!(reason(&busy), "WECHAT_UNAVAILABLE");

    // No key kept (no login for 30 days): nothing to check, nothing to sign a reset with.
    stack
        .execute("delete from user_session_keys where openid = 'o-key'")
        .await;
    assert_eq!(state(&stack, &user_id).await, SessionKeyState::None);
    let refused = reset(&stack, &user_id).await.unwrap_err();
    assert_eq!(reason(&refused), "SESSION_NOT_FOUND", "{refused:?}");

    let unknown = reset(&stack, "999999").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = reset(&stack, "me").await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);

    // The kept keys are sealed: no session_key text in the table or any log.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select session_key_sealed from user_session_keys")
            .fetch_all(&stack.db.pool().await)
            .await
            .unwrap();
    for sealed in stored {
        assert!(!String::from_utf8_lossy(&sealed).contains(&after));
    }
    assert!(!stack.logs().contains(&after));
}

#[tokio::test]
async fn an_upgrade_from_the_previous_schema_keeps_users_sessions_and_tokens() {
    let mut stack = Stack::start().await;
    let login = stack
        .login(APP, "o-upgrade", json!({"nickName": "Old"}))
        .await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();

    // Back to the schema before migration 4, with its data, as an older release left it.
    stack.auth.stop();
    stack.revert_lifecycle_migration().await;
    stack
        .execute("alter table users drop column account_id")
        .await;
    stack
        .execute("drop table app_access_tokens, user_session_keys, accounts")
        .await;
    stack
        .execute(
            "alter table audit_events drop column count, drop column client_request_id, \
             drop column account_id",
        )
        .await;
    stack.execute("drop index audit_events_kind").await;
    stack
        .execute("delete from _sqlx_migrations where version >= 4")
        .await;

    let upgraded = stack.spawn_replica("auth-upgraded");
    let migrated: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables \
         where table_name in ('app_access_tokens', 'user_session_keys')",
    )
    .fetch_one(&stack.db.pool().await)
    .await
    .unwrap();
    assert_eq!(migrated, 2, "the upgrade applied the new migration");

    let mut ops = stack.grpc_to(&upgraded, Some(&stack.keys.ops)).await;
    let user = ops
        .get_user(GetUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.nickname, "Old");
    assert_eq!(
        user.account_id, user_id,
        "an existing user's account is their own"
    );
    ops.validate_token(ValidateTokenRequest {
        token: login["token"].as_str().unwrap().into(),
        appid: APP.into(),
    })
    .await
    .expect("an access token issued before the upgrade still validates");
    let refreshed = stack
        .grpc_to(&upgraded, Some(&stack.keys.gateway))
        .await
        .refresh_token(RefreshTokenRequest {
            scope: String::new(),
            refresh_token: login["refresh_token"].as_str().unwrap().into(),
        })
        .await
        .expect("a refresh token issued before the upgrade still works");
    assert!(refreshed.into_inner().tokens.is_some());
    // The user logged in before the upgrade: no key was kept for them yet.
    let state = ops
        .check_session_key(CheckSessionKeyRequest { user_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.state(), SessionKeyState::None);
}
