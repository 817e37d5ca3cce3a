//! Deletion (注销) as a user, an operator and a second replica see it: nothing personal left
//! behind, tokens dead everywhere within a second, a cooling-off an operator may undo.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use wxauth_e2e::{
    refusal, refused_within_a_second,
    stack::{APP, APP2, Client, Options, Stack},
};
use wxauth_proto::{
    v1::{
        BindPhoneNumberRequest, DeleteUserRequest, GetUserRequest, ListAccountUsersRequest,
        LoginRequest, RestoreUserRequest, UpdateProfileRequest, UserStatus, ValidateTokenRequest,
        delete_user_request,
    },
    wire::CLIENT_ADDR_HEADER,
};

/// The mini-program's address, as the gateway passes it along.
const CLIENT_ADDR: &str = "203.0.113.77";

/// `message` as the gateway sends it for a client at [`CLIENT_ADDR`].
fn from_client<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(CLIENT_ADDR_HEADER, CLIENT_ADDR.parse().unwrap());
    request
}

/// Every row of every table of the service's schema, as text (bytea as hex).
async fn dump(stack: &Stack) -> String {
    let pool = stack.db.pool().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 9, "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("select t::text from {table} t"))
            .fetch_all(&pool)
            .await
            .unwrap();
        all.push_str(&format!("{table}: {}\n", rows.join("\n")));
    }
    pool.close().await;
    all
}

/// Whether `dump` holds `value`, as text or as the hex of its bytes.
fn holds(dump: &str, value: &str) -> bool {
    dump.contains(value) || dump.contains(&hex::encode(value))
}

/// A user logged in through the gateway's gRPC with everything filled in: profile, avatar,
/// phone number. Returns the login's user id, openid, unionid and access token.
pub(crate) async fn full_user(stack: &Stack, openid: &str) -> (String, String, String) {
    let mut gateway = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let code = stack
        .mint_code(APP, openid, Some(&format!("u-{openid}")))
        .await;
    let login = gateway
        .login(from_client(LoginRequest {
            scope: String::new(),
            appid: APP.into(),
            code,
        }))
        .await
        .unwrap()
        .into_inner();
    let user = login.user.unwrap();
    let access = login.tokens.unwrap().access_token;
    gateway
        .update_profile(from_client(UpdateProfileRequest {
            access_token: access.clone(),
            nickname: Some(format!("Nick-{openid}")),
            avatar_url: Some(format!("https://cdn.example.com/{openid}.png")),
        }))
        .await
        .unwrap();
    let phone = stack.mint_phone_code(APP, openid, "13912345678").await;
    gateway
        .bind_phone_number(from_client(BindPhoneNumberRequest {
            access_token: access.clone(),
            code: phone,
        }))
        .await
        .unwrap();
    (user.user_id, user.unionid, access)
}

/// `DELETE /v1/me` bearing `token`; status and envelope.
async fn delete_me(stack: &Stack, token: &str) -> (StatusCode, Value) {
    let answer = stack
        .http
        .delete(format!("{}/v1/me", stack.gateway.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    wxauth_e2e::stack::envelope(answer).await
}

fn delete_user(user_id: &str, immediately: bool) -> DeleteUserRequest {
    DeleteUserRequest {
        target: Some(delete_user_request::Target::UserId(user_id.into())),
        reason: "asked by support".into(),
        immediately,
    }
}

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

#[tokio::test]
async fn a_deleted_user_leaves_nothing_personal_and_their_tokens_die_everywhere() {
    let stack = Stack::start().await;
    let replica = stack.spawn_replica("auth-deleting");
    let openid = "o-delete-me";
    let (user_id, unionid, access) = full_user(&stack, openid).await;
    let mut on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    on_replica
        .validate_token(ValidateTokenRequest {
            token: access.clone(),
            appid: APP.into(),
        })
        .await
        .expect("the replica accepts the token before");
    let personal = [
        openid.to_owned(),
        unionid.clone(),
        format!("Nick-{openid}"),
        format!("https://cdn.example.com/{openid}.png"),
        "13912345678".to_owned(),
        CLIENT_ADDR.to_owned(),
    ];
    let before = dump(&stack).await;
    for value in &personal[..4] {
        assert!(
            holds(&before, value),
            "the dump finds {value} while it is stored"
        );
    }
    assert!(
        holds(&before, CLIENT_ADDR),
        "the audit trail has the client"
    );

    let (status, body) = delete_me(&stack, &access).await;
    let deleted_at = Instant::now();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"erased": true, "erase_at": null}));
    refused_within_a_second(&mut on_replica, &access, deleted_at).await;

    let after = dump(&stack).await;
    for value in &personal {
        assert!(
            !holds(&after, value),
            "{value} is left after the deletion:\n{after}"
        );
    }
    let pool = stack.db.pool().await;
    /// Who deleted, from where, under which client request id.
    type Deletion = Option<(String, Option<String>, Option<String>)>;
    let (events, deletion): (i64, Deletion) = (
        sqlx::query_scalar("select count(*) from audit_events where user_id = $1")
            .bind(user_id.parse::<i64>().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap(),
        sqlx::query_as(
            "select actor, client_addr, client_request_id from audit_events \
             where user_id = $1 and kind = 'user_deleted'",
        )
        .bind(user_id.parse::<i64>().unwrap())
        .fetch_optional(&pool)
        .await
        .unwrap(),
    );
    pool.close().await;
    assert!(
        events >= 4,
        "the trail keeps kind and time of what happened"
    );
    assert_eq!(
        deletion,
        Some(("gateway".into(), None, None)),
        "the deletion is audited, with nothing personal"
    );

    // Deleting twice, through the same (dead) token or by an operator: a clear answer.
    let (status, body) = delete_me(&stack, &access).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007)),
        "{body}"
    );
    let mut ops = stack.grpc().await;
    let again = ops
        .delete_user(delete_user(&user_id, true))
        .await
        .unwrap_err();
    assert_eq!(refusal(&again), (Code::NotFound, "USER_DELETED".into()));
    let read = get_user(&mut ops, &user_id).await.unwrap_err();
    assert_eq!(refusal(&read), (Code::NotFound, "USER_DELETED".into()));

    // The same person logging in again is a new user.
    let relogin = stack.v1_login(APP, openid).await;
    let new_id = relogin["user"]["user_id"].as_str().unwrap();
    assert_ne!(new_id, user_id);
    assert!(new_id.parse::<i64>().unwrap() > user_id.parse::<i64>().unwrap());
    assert!(
        relogin["user"]["nickname"].is_null(),
        "nothing of before comes back"
    );
}

#[tokio::test]
async fn a_persons_other_apps_stay_and_an_account_goes_with_its_last_user() {
    let stack = Stack::start().await;
    let first = stack.v1_login(APP, "o-two-apps").await;
    let second = stack
        .v1_login_with(APP2, "o-two-apps-2", Some("u-o-two-apps"))
        .await;
    let account_id = first["user"]["account_id"].as_str().unwrap().to_owned();
    assert_eq!(second["user"]["account_id"], account_id.as_str());
    let mut ops = stack.grpc().await;

    ops.delete_user(delete_user(
        first["user"]["user_id"].as_str().unwrap(),
        false,
    ))
    .await
    .unwrap();
    let left = ops
        .list_account_users(ListAccountUsersRequest {
            account_id: account_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(left.len(), 1, "the other app's user stays");
    assert_eq!(left[0].appid, APP2);
    assert_eq!(
        left[0].unionid, "u-o-two-apps",
        "and their unionid with them"
    );
    assert_eq!(stack.count("accounts").await, 1);

    let deleted = ops
        .delete_user(DeleteUserRequest {
            target: Some(delete_user_request::Target::AccountId(account_id.clone())),
            reason: String::new(),
            immediately: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        deleted.user_ids,
        vec![second["user"]["user_id"].as_str().unwrap().to_owned()]
    );
    assert!(deleted.erased);
    assert_eq!(
        stack.count("accounts").await,
        0,
        "the account (and its unionid) is gone"
    );
    let gone = ops
        .list_account_users(ListAccountUsersRequest { account_id })
        .await
        .unwrap_err();
    assert_eq!(refusal(&gone), (Code::NotFound, "USER_NOT_FOUND".into()));

    // Bad input: no target, a malformed id, an unknown user, the wrong caller.
    for (request, expected) in [
        (
            DeleteUserRequest {
                target: None,
                reason: String::new(),
                immediately: false,
            },
            (Code::InvalidArgument, "INVALID_ARGUMENT"),
        ),
        (
            delete_user("x1", false),
            (Code::InvalidArgument, "INVALID_ARGUMENT"),
        ),
        (
            delete_user("987654321", false),
            (Code::NotFound, "USER_NOT_FOUND"),
        ),
    ] {
        let refused = ops.delete_user(request).await.unwrap_err();
        assert_eq!(refusal(&refused), (expected.0, expected.1.into()));
    }
    let refused = stack
        .grpc_as(Some(&stack.keys.gateway))
        .await
        .delete_user(delete_user("1", false))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (Code::PermissionDenied, "CALLER_FORBIDDEN".into())
    );
}

#[tokio::test]
async fn a_cooling_off_suspends_and_an_operator_may_undo_the_deletion_meanwhile() {
    let stack = Stack::start_with(Options {
        auth_env: vec![("WXAUTH_DELETION_COOLING_OFF_SECS", "86400".into())],
        ..Options::default()
    })
    .await;
    let login = stack.v1_login(APP, "o-cooling").await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap();
    let (status, body) = delete_me(&stack, access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["erased"], false);
    let erase_at = body["data"]["erase_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (erase_at - now - 86_400).abs() <= 5,
        "erased in a day: {erase_at}"
    );

    // Meanwhile: the user is held, their tokens and logins refused.
    let mut ops = stack.grpc().await;
    let held = get_user(&mut ops, &user_id).await.unwrap();
    assert_eq!(held.status(), UserStatus::Deleting);
    assert_eq!(held.delete_after.unwrap().seconds, erase_at);
    assert_eq!(
        stack.get_me(Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let code = stack.mint_code(APP, "o-cooling", Some("u-o-cooling")).await;
    let (status, body) = stack
        .post_as("/v1/login", json!({"appid": APP, "code": code}), None)
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::FORBIDDEN, Some(10011)),
        "{body}"
    );
    assert!(
        body["msg"].as_str().unwrap().contains("suspended"),
        "{body}"
    );

    // Asked again without `immediately`: the same date stands.
    let again = ops
        .delete_user(delete_user(&user_id, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.erase_at.unwrap().seconds, erase_at);

    // Restored: active, the same user; no token of before comes back.
    let restored = ops
        .restore_user(RestoreUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(restored.status(), UserStatus::Active);
    assert_eq!(restored.delete_after, None);
    assert_eq!(
        stack.get_me(Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let back = stack.v1_login(APP, "o-cooling").await;
    assert_eq!(back["user"]["user_id"], user_id.as_str());
    let not_deleting = ops
        .restore_user(RestoreUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&not_deleting),
        (Code::FailedPrecondition, "NOT_DELETING".into())
    );

    // An operator may erase at once, whatever the cooling-off; then nothing is restored.
    ops.delete_user(delete_user(&user_id, false)).await.unwrap();
    let erased = ops
        .delete_user(delete_user(&user_id, true))
        .await
        .unwrap()
        .into_inner();
    assert!(erased.erased);
    let too_late = ops
        .restore_user(RestoreUserRequest { user_id })
        .await
        .unwrap_err();
    assert_eq!(refusal(&too_late), (Code::NotFound, "USER_DELETED".into()));
}
