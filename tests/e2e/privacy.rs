//! Personal data kept as little visible as the product allows: phone numbers sealed at rest
//! and masked for callers without the `pii` scope, found by a keyed index; operators find
//! users a page at a time; rows of a release before sealing are sealed online; a user's copy
//! of their data holds every personal field and no secret.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use wxauth_e2e::{
    eventually, refusal,
    stack::{APP, APP2, Client, Options, Stack, envelope},
};
use wxauth_proto::v1::{
    ExportUserRequest, FindUsersRequest, FindUsersResponse, GetUserRequest,
    ListAccountUsersRequest, NicknameQuery, OpenidQuery, RefreshTokenRequest, ValidateTokenRequest,
    find_users_request::By,
};

const PII_KEY: &str = "pii-ops-key-0123456789abcdef";

fn with_pii_caller() -> Options {
    Options {
        extra_callers: vec![format!("pii-ops:admin+pii:{PII_KEY}")],
        ..Options::default()
    }
}

async fn find(
    client: &mut Client,
    by: By,
    limit: i32,
    page_token: &str,
) -> Result<FindUsersResponse, tonic::Status> {
    client
        .find_users(FindUsersRequest {
            by: Some(by),
            limit,
            page_token: page_token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn phone_of(client: &mut Client, user_id: &str) -> (String, String) {
    let user = client
        .get_user(GetUserRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    (user.phone_number, user.pure_phone_number)
}

/// Every text column of `users` of every row.
async fn users_dump(stack: &Stack) -> String {
    let pool = stack.db.pool().await;
    let rows: Vec<String> = sqlx::query_scalar("select u::text from users u")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.join("\n")
}

#[tokio::test]
async fn phone_numbers_are_sealed_masked_and_found_by_their_index() {
    let stack = Stack::start_with(with_pii_caller()).await;
    let login = stack.v1_login(APP, "o-pii").await;
    let token = login["access_token"].as_str().unwrap();
    let user_id = login["user"]["user_id"].as_str().unwrap();
    let code = stack.mint_phone_code(APP, "o-pii", "13800138000").await;
    let (status, body) = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["phone_number"], "13800138000",
        "the user's own, in full"
    );

    let dump = users_dump(&stack).await;
    assert!(
        !dump.contains("13800138000") && !dump.contains("38000"),
        "{dump}"
    );
    assert!(!dump.contains(&hex::encode("13800138000")));

    // The user sees it in full; operators masked, unless they have the pii scope.
    let (status, me) = envelope(stack.get_me(Some(token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["pure_phone_number"], "13800138000");
    let mut ops = stack.grpc().await;
    assert_eq!(
        phone_of(&mut ops, user_id).await,
        ("138****8000".into(), "138****8000".into())
    );
    let listed = ops
        .list_account_users(ListAccountUsersRequest {
            account_id: login["user"]["account_id"].as_str().unwrap().into(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(listed[0].phone_number, "138****8000");
    let mut pii = stack.grpc_as(Some(PII_KEY)).await;
    assert_eq!(phone_of(&mut pii, user_id).await.1, "13800138000");

    // Found by number with the pii scope only.
    let refused = find(&mut ops, By::PhoneNumber("13800138000".into()), 0, "")
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (Code::PermissionDenied, "CALLER_FORBIDDEN".into())
    );
    let found = find(&mut pii, By::PhoneNumber("13800138000".into()), 0, "")
        .await
        .unwrap();
    assert_eq!(found.users.len(), 1);
    assert_eq!(found.users[0].user_id, user_id);
    assert!(
        find(&mut pii, By::PhoneNumber("13800138001".into()), 0, "")
            .await
            .unwrap()
            .users
            .is_empty()
    );

    // Paid successes, and refusals, are counted per app.
    let reused = stack.bind_phone(Some(token), json!({ "code": code })).await;
    assert_eq!(reused.0, StatusCode::BAD_REQUEST);
    let metrics = stack.scrape(&stack.auth).await;
    for (outcome, count) in [("ok", 1), ("reused", 1)] {
        let line =
            format!("wxauth_phone_bindings_total{{appid=\"{APP}\",outcome=\"{outcome}\"}} {count}");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }

    // A key rotation re-seals the number under the new key, and it is still found.
    let old = stack.auth_setting("WXAUTH_SESSION_KEY_KEYS");
    let new_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let rotated = stack.spawn_replica_with(
        "auth-rotated",
        &[
            ("WXAUTH_SESSION_KEY_KEYS", format!("k2:{new_key},{old}")),
            ("WXAUTH_SESSION_KEY_KID", "k2".into()),
        ],
    );
    let pool = stack.db.pool().await;
    eventually(
        "the phone is re-sealed under k2",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let kids: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                    "select phone_kid, phone_index_kid from users where phone_sealed is not null",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                kids == vec![(Some("k2".into()), Some("k2".into()))]
            }
        },
    )
    .await;
    pool.close().await;
    let mut on_rotated = stack.grpc_to(&rotated, Some(PII_KEY)).await;
    assert_eq!(phone_of(&mut on_rotated, user_id).await.1, "13800138000");
    assert_eq!(
        find(
            &mut on_rotated,
            By::PhoneNumber("13800138000".into()),
            0,
            ""
        )
        .await
        .unwrap()
        .users
        .len(),
        1
    );
}

#[tokio::test]
async fn operators_find_users_a_page_at_a_time() {
    let stack = Stack::start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let login = stack.v1_login(APP, &format!("o-find-{n}")).await;
        let token = login["access_token"].as_str().unwrap();
        let (status, _) = stack
            .post_as(
                "/v1/me/profile",
                json!({"nickname": format!("Finder {n}")}),
                Some(token),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        ids.push(login["user"]["user_id"].as_str().unwrap().to_owned());
    }
    stack.v1_login(APP2, "o-find-0").await;
    let mut ops = stack.grpc().await;

    let by_openid = find(
        &mut ops,
        By::Openid(OpenidQuery {
            appid: APP.into(),
            openid: "o-find-3".into(),
        }),
        0,
        "",
    )
    .await
    .unwrap();
    assert_eq!(by_openid.users[0].user_id, ids[3]);
    assert_eq!(by_openid.next_page_token, "");
    let by_unionid = find(&mut ops, By::Unionid("u-o-find-0".into()), 0, "")
        .await
        .unwrap();
    assert_eq!(by_unionid.users.len(), 2, "one per app");

    // By the start of a nickname, two at a time, oldest first, until the end.
    let prefix = By::NicknamePrefix(NicknameQuery {
        appid: APP.into(),
        prefix: "Finder".into(),
    });
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = find(&mut ops, prefix.clone(), 2, &token).await.unwrap();
        seen.extend(page.users.iter().map(|user| user.user_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(seen.len() <= 6, "paging ends");
    }
    assert_eq!(seen, ids);
    // A prefix is matched as text: its wildcards mean nothing.
    for literal in ["Finder%", "Finder _", "finder"] {
        let none = By::NicknamePrefix(NicknameQuery {
            appid: APP.into(),
            prefix: literal.into(),
        });
        assert!(
            find(&mut ops, none, 0, "").await.unwrap().users.is_empty(),
            "{literal}"
        );
    }

    // Bad input: each answered INVALID_ARGUMENT.
    let bad = [
        FindUsersRequest::default(),
        FindUsersRequest {
            by: Some(By::Unionid("u".into())),
            limit: 101,
            page_token: String::new(),
        },
        FindUsersRequest {
            by: Some(By::Unionid("u".into())),
            limit: 0,
            page_token: "not-a-token".into(),
        },
        FindUsersRequest {
            by: Some(By::Openid(OpenidQuery {
                appid: "nope".into(),
                openid: "o".into(),
            })),
            limit: 0,
            page_token: String::new(),
        },
    ];
    for request in bad {
        let refused = ops.find_users(request).await.unwrap_err();
        assert_eq!(refusal(&refused).1, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn an_upgrade_seals_the_numbers_an_older_release_stored_in_the_clear() {
    let mut stack = Stack::start_with(with_pii_caller()).await;
    let login = stack.v1_login(APP, "o-legacy-phone").await;
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();

    // The schema and data as the release before sealing left them: the number in the clear.
    stack.auth.stop();
    stack.revert_lifecycle_migration().await;
    stack
        .execute(&format!(
            "update users set phone_number = '+86 13700001111', \
             pure_phone_number = '13700001111', phone_country_code = '86' \
             where user_id = {user_id}"
        ))
        .await;

    let upgraded = stack.spawn_replica_with(
        "auth-sealing",
        &[("WXAUTH_PURGE_INTERVAL_SECS", "1".into())],
    );
    let pool = stack.db.pool().await;
    eventually("the number is sealed", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            let plain: i64 =
                sqlx::query_scalar("select count(*) from users where phone_number is not null")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            plain == 0
        }
    })
    .await;
    pool.close().await;
    assert!(!users_dump(&stack).await.contains("13700001111"));
    let mut pii = stack.grpc_to(&upgraded, Some(PII_KEY)).await;
    assert_eq!(
        phone_of(&mut pii, &user_id).await,
        ("+86 13700001111".into(), "13700001111".into())
    );
    let found = find(&mut pii, By::PhoneNumber("13700001111".into()), 0, "")
        .await
        .unwrap();
    assert_eq!(found.users[0].user_id, user_id);
    // The user's session of before goes on.
    let mut service = stack.grpc_to(&upgraded, Some(&stack.keys.service)).await;
    service
        .validate_token(ValidateTokenRequest {
            token: login["access_token"].as_str().unwrap().into(),
            appid: APP.into(),
        })
        .await
        .unwrap();
    stack
        .grpc_to(&upgraded, Some(&stack.keys.gateway))
        .await
        .refresh_token(RefreshTokenRequest {
            scope: String::new(),
            refresh_token: login["refresh_token"].as_str().unwrap().into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_export_holds_every_personal_field_and_no_secret() {
    let stack = Stack::start_with(Options {
        extra_callers: vec![format!(
            "auditor:admin+pii:{}",
            "auditor-key-0123456789abcdef"
        )],
        ..Options::default()
    })
    .await;
    let openid = "o-export";
    let (user_id, unionid, access) = crate::deletion::full_user(&stack, openid).await;
    let answer = stack
        .http
        .get(format!("{}/v1/me/export", stack.gateway.url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let (status, body) = wxauth_e2e::stack::envelope(answer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let document = &body["data"];
    assert_eq!(document["format"], "wxauth.export.v1");
    let user = &document["user"];
    assert_eq!(user["user_id"], user_id.as_str());
    assert_eq!(user["openid"], openid);
    assert_eq!(user["unionid"], unionid.as_str());
    assert_eq!(user["nickname"], format!("Nick-{openid}"));
    assert_eq!(user["nickname_check"], "passed");
    assert_eq!(
        user["phone_number"], "13912345678",
        "the user's own, in full"
    );
    assert_eq!(document["sessions"].as_array().unwrap().len(), 1);
    let kinds: Vec<&str> = document["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    for kind in ["silent_login", "profile_updated", "phone_bound"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    assert!(document["audit_events"][0]["client_addr"].is_string());
    let text = document.to_string();
    let session_key = stack.session_key(APP, openid).await;
    for secret in [
        session_key.as_str(),
        access.as_str(),
        "wxrt_",
        "wxs_",
        "sealed",
        "hash",
    ] {
        assert!(!text.contains(secret), "the export holds {secret}");
    }

    // An operator's copy: the phone masked, unless the caller may see it.
    let masked = stack
        .grpc()
        .await
        .export_user(ExportUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .json;
    let masked: Value = serde_json::from_str(&masked).unwrap();
    assert_eq!(masked["user"]["phone_number"], "139****5678");
    let full = stack
        .grpc_as(Some("auditor-key-0123456789abcdef"))
        .await
        .export_user(ExportUserRequest {
            user_id: user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .json;
    assert!(full.contains("13912345678"));
    let unknown = stack
        .grpc()
        .await
        .export_user(ExportUserRequest {
            user_id: "99999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refusal(&unknown), (Code::NotFound, "USER_NOT_FOUND".into()));
    let (status, _) = {
        let answer = stack
            .http
            .get(format!("{}/v1/me/export", stack.gateway.url()))
            .send()
            .await
            .unwrap();
        wxauth_e2e::stack::envelope(answer).await
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
