//! Apps kept apart: a caller whose entry names the apps it serves reaches only their users,
//! through every RPC; an entry without apps keeps reaching every app.

use std::{future::Future, pin::Pin};

use serde_json::Value;
use tonic::Code;
use wxauth_e2e::{
    refusal,
    stack::{APP, APP2, Client, Options, Stack},
};
use wxauth_proto::{
    prost::Message as _,
    prost_types::FileDescriptorSet,
    v1::{
        BindPhoneNumberRequest, CheckSessionKeyRequest, CompleteLoginRequest, CreateSessionRequest,
        DataKind, DeleteMeRequest, DeleteUserRequest, ExportMeRequest, ExportUserRequest,
        FindUsersRequest, GetJwksRequest, GetMeRequest, GetUserRequest, IntrospectTokenRequest,
        ListAccountUsersRequest, ListAppAccessTokensRequest, ListAuditEventsRequest, LoginRequest,
        LogoutRequest, NicknameQuery, OpenidQuery, RefreshTokenRequest, ReplayEventsRequest,
        ResetSessionKeyRequest, RestoreUserRequest, RevokeUserSessionsRequest,
        SetUserStatusRequest, UpdateProfileRequest, UserStatus, ValidateTokenRequest,
        delete_user_request, find_users_request::By, set_user_status_request,
    },
};

/// An operator of the second app only (admin, validate and pii).
const SHOP_OPS: &str = "shop-ops-key-0123456789abcdef";
/// A gateway of the second app only.
const SHOP_GATEWAY: &str = "shop-gateway-key-0123456789abcdef";

type Call = Pin<Box<dyn Future<Output = Result<(), tonic::Status>>>>;

/// Every RPC of AuthService, as the descriptor names them.
fn every_rpc() -> Vec<String> {
    let set = FileDescriptorSet::decode(wxauth_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .flat_map(|file| &file.service)
        .filter(|service| service.name() == "AuthService")
        .flat_map(|service| &service.method)
        .map(|method| method.name().to_owned())
        .collect()
}

/// The user, account and tokens of a `/v1/login` answer.
struct Login {
    user_id: String,
    account_id: String,
    access: String,
    refresh: String,
}

impl Login {
    fn of(login: &Value) -> Self {
        let text = |value: &Value| value.as_str().unwrap().to_owned();
        Self {
            user_id: text(&login["user"]["user_id"]),
            account_id: text(&login["user"]["account_id"]),
            access: text(&login["access_token"]),
            refresh: text(&login["refresh_token"]),
        }
    }
}

/// One call of each RPC, naming the user `of` (of `appid`), made by `ops` (admin) or
/// `gateway` (login). Each is boxed so the table can hold them all.
async fn calls(
    stack: &Stack,
    ops: &Client,
    gateway: &Client,
    appid: &str,
    of: &Login,
) -> Vec<(&'static str, Call)> {
    let code = stack.mint_code(appid, "o-reach-new", None).await;
    let code2 = stack.mint_code(appid, "o-reach-new", None).await;
    macro_rules! call {
        ($client:expr, $method:ident, $request:expr) => {{
            let mut client = $client.clone();
            let request = $request;
            Box::pin(async move { client.$method(request).await.map(drop) }) as Call
        }};
    }
    let user = || of.user_id.clone();
    vec![
        (
            "CreateSession",
            call!(
                gateway,
                create_session,
                CreateSessionRequest {
                    appid: appid.into(),
                    code
                }
            ),
        ),
        (
            "Login",
            call!(
                gateway,
                login,
                LoginRequest {
                    scope: String::new(),
                    appid: appid.into(),
                    code: code2
                }
            ),
        ),
        (
            "CompleteLogin",
            call!(
                gateway,
                complete_login,
                CompleteLoginRequest {
                    appid: appid.into(),
                    session_id: "wxs_unknown".into(),
                    kind: DataKind::UserInfo.into(),
                    encrypted_data: "e".into(),
                    iv: "i".into(),
                    raw_data: None,
                    signature: None,
                }
            ),
        ),
        (
            "RefreshToken",
            call!(
                gateway,
                refresh_token,
                RefreshTokenRequest {
                    scope: String::new(),
                    refresh_token: of.refresh.clone()
                }
            ),
        ),
        (
            "Logout",
            call!(
                gateway,
                logout,
                LogoutRequest {
                    access_token: of.access.clone(),
                    refresh_token: String::new()
                }
            ),
        ),
        (
            "GetMe",
            call!(
                gateway,
                get_me,
                GetMeRequest {
                    access_token: of.access.clone()
                }
            ),
        ),
        (
            "UpdateProfile",
            call!(
                gateway,
                update_profile,
                UpdateProfileRequest {
                    access_token: of.access.clone(),
                    nickname: Some("Reach".into()),
                    avatar_url: None,
                }
            ),
        ),
        (
            "BindPhoneNumber",
            call!(
                gateway,
                bind_phone_number,
                BindPhoneNumberRequest {
                    access_token: of.access.clone(),
                    code: "phone-code-0123".into(),
                }
            ),
        ),
        (
            "DeleteMe",
            call!(
                gateway,
                delete_me,
                DeleteMeRequest {
                    access_token: of.access.clone()
                }
            ),
        ),
        (
            "ExportMe",
            call!(
                gateway,
                export_me,
                ExportMeRequest {
                    access_token: of.access.clone()
                }
            ),
        ),
        (
            "ValidateToken",
            call!(
                ops,
                validate_token,
                ValidateTokenRequest {
                    token: of.access.clone(),
                    appid: String::new()
                }
            ),
        ),
        (
            "GetUser",
            call!(ops, get_user, GetUserRequest { user_id: user() }),
        ),
        (
            "RevokeUserSessions",
            call!(
                ops,
                revoke_user_sessions,
                RevokeUserSessionsRequest { user_id: user() }
            ),
        ),
        (
            "ListAuditEvents",
            call!(
                ops,
                list_audit_events,
                ListAuditEventsRequest {
                    user_id: user(),
                    ..ListAuditEventsRequest::default()
                }
            ),
        ),
        (
            "ListAccountUsers",
            call!(
                ops,
                list_account_users,
                ListAccountUsersRequest {
                    account_id: of.account_id.clone()
                }
            ),
        ),
        (
            "CheckSessionKey",
            call!(
                ops,
                check_session_key,
                CheckSessionKeyRequest { user_id: user() }
            ),
        ),
        (
            "ResetSessionKey",
            call!(
                ops,
                reset_session_key,
                ResetSessionKeyRequest { user_id: user() }
            ),
        ),
        (
            "DeleteUser",
            call!(
                ops,
                delete_user,
                DeleteUserRequest {
                    target: Some(delete_user_request::Target::UserId(user())),
                    reason: String::new(),
                    immediately: true,
                }
            ),
        ),
        (
            "RestoreUser",
            call!(ops, restore_user, RestoreUserRequest { user_id: user() }),
        ),
        (
            "ExportUser",
            call!(ops, export_user, ExportUserRequest { user_id: user() }),
        ),
        (
            "SetUserStatus",
            call!(
                ops,
                set_user_status,
                SetUserStatusRequest {
                    target: Some(set_user_status_request::Target::AccountId(
                        of.account_id.clone()
                    )),
                    status: UserStatus::Suspended.into(),
                    reason: String::new(),
                    until: None,
                }
            ),
        ),
        (
            "ReplayEvents",
            call!(
                ops,
                replay_events,
                ReplayEventsRequest {
                    subscription: format!("crm-{appid}"),
                    event_ids: Vec::new(),
                }
            ),
        ),
        (
            "FindUsers",
            call!(
                ops,
                find_users,
                FindUsersRequest {
                    by: Some(By::Openid(OpenidQuery {
                        appid: appid.into(),
                        openid: "o-reach".into()
                    })),
                    ..FindUsersRequest::default()
                }
            ),
        ),
    ]
}

/// A `user.deleted` subscription of each app, named `crm-<appid>`, posting to a port where
/// nothing listens.
fn subscriptions_of_both_apps() -> String {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    serde_json::json!([APP, APP2].map(|appid| serde_json::json!({
        "name": format!("crm-{appid}"),
        "appid": appid,
        "url": "http://127.0.0.1:9/events",
        "secret": secret,
        "events": ["user.deleted"],
    })))
    .to_string()
}

#[tokio::test]
async fn a_caller_of_some_apps_reaches_their_users_only_through_every_rpc() {
    let stack = Stack::start_with(Options {
        extra_callers: vec![
            format!("shop-ops:admin+validate+pii@{APP2}:{SHOP_OPS}"),
            format!("shop-gateway:login@{APP2}:{SHOP_GATEWAY}"),
        ],
        // A subscription of each app, so ReplayEvents has one out of reach to be refused.
        auth_env: vec![("WXAUTH_WEBHOOKS", subscriptions_of_both_apps())],
        ..Options::default()
    })
    .await;
    let other = Login::of(&stack.v1_login(APP, "o-reach").await);
    let own = Login::of(
        &stack
            .v1_login_with(APP2, "o-reach", Some("u-o-reach"))
            .await,
    );
    let ops = stack.grpc_as(Some(SHOP_OPS)).await;
    let gateway = stack.grpc_as(Some(SHOP_GATEWAY)).await;
    let exchanges = stack.exchanges().await;

    // Every RPC that names a user or app of the other app: PERMISSION_DENIED, nothing done.
    let table = calls(&stack, &ops, &gateway, APP, &other).await;
    let mut covered: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    for (name, call) in table {
        let refused = call.await.expect_err(name);
        assert_eq!(
            (refused.code(), refusal(&refused).1.as_str()),
            (Code::PermissionDenied, "APP_FORBIDDEN"),
            "{name}: {refused:?}"
        );
    }
    assert_eq!(
        stack.exchanges().await,
        exchanges,
        "no code of the other app was exchanged"
    );
    let mut everyone = stack.grpc().await;
    let untouched = everyone
        .get_user(GetUserRequest {
            user_id: other.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(untouched.status(), UserStatus::Active);
    assert_eq!(untouched.nickname, "");
    everyone
        .validate_token(ValidateTokenRequest {
            token: other.access.clone(),
            appid: APP.into(),
        })
        .await
        .expect("the other app's user keeps their session");

    // The RPCs that name no user answer for the caller's apps only.
    let mut ops = ops.clone();
    let tokens = ops
        .list_app_access_tokens(ListAppAccessTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert!(tokens.iter().all(|token| token.appid == APP2), "{tokens:?}");
    let events = ops
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        !events.is_empty() && events.iter().all(|event| event.appid == APP2),
        "{events:?}"
    );
    let found = ops
        .find_users(FindUsersRequest {
            by: Some(By::Unionid("u-o-reach".into())),
            ..FindUsersRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        found
            .iter()
            .map(|user| user.appid.as_str())
            .collect::<Vec<_>>(),
        vec![APP2]
    );
    let nickname = ops
        .find_users(FindUsersRequest {
            by: Some(By::NicknamePrefix(NicknameQuery {
                appid: APP.into(),
                prefix: "x".into(),
            })),
            ..FindUsersRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refusal(&nickname).1, "APP_FORBIDDEN");
    ops.get_jwks(GetJwksRequest {})
        .await
        .expect("the public keys are no app's");
    // Introspection answers for any token, and a token of another app is not active for it
    // (RFC 7662: the caller learns nothing of it).
    let introspected = ops
        .introspect_token(IntrospectTokenRequest {
            token: other.access.clone(),
            ..IntrospectTokenRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!introspected.active);
    let own_token = ops
        .introspect_token(IntrospectTokenRequest {
            token: own.access.clone(),
            ..IntrospectTokenRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(own_token.active);
    // Replaying its own app's subscription, or every one it reaches, is allowed.
    for subscription in [format!("crm-{APP2}"), String::new()] {
        ops.replay_events(ReplayEventsRequest {
            subscription,
            event_ids: Vec::new(),
        })
        .await
        .unwrap();
    }
    covered.extend(["ListAppAccessTokens", "GetJwks", "IntrospectToken"]);

    // Its own app's users, it reaches as any operator would.
    let user = ops
        .get_user(GetUserRequest {
            user_id: own.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.appid, APP2);
    ops.validate_token(ValidateTokenRequest {
        token: own.access.clone(),
        appid: String::new(),
    })
    .await
    .unwrap();
    let mut gateway = gateway.clone();
    gateway
        .get_me(GetMeRequest {
            access_token: own.access.clone(),
        })
        .await
        .unwrap();
    let code = stack.mint_code(APP2, "o-reach-2", None).await;
    gateway
        .login(LoginRequest {
            scope: String::new(),
            appid: APP2.into(),
            code,
        })
        .await
        .unwrap();

    covered.sort_unstable();
    let mut rpcs = every_rpc();
    rpcs.sort_unstable();
    assert_eq!(covered, rpcs, "the table covers every RPC");
}
