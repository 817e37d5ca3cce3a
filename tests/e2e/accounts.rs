//! One account across apps: users of different mini-programs sharing a unionid (one Open
//! Platform account) belong to one account, in either arrival order, when the unionid comes
//! late, and when two first logins race.

use serde_json::{Value, json};
use wxauth_e2e::stack::{APP, APP2, Stack, envelope};
use wxauth_proto::v1::{GetUserRequest, ListAccountUsersRequest, ValidateTokenRequest};

/// The silent login with (or without) a unionid; returns the envelope's data.
async fn login(stack: &Stack, appid: &str, openid: &str, unionid: Option<&str>) -> Value {
    stack.v1_login_with(appid, openid, unionid).await
}

fn account(login: &Value) -> String {
    login["user"]["account_id"].as_str().unwrap().to_owned()
}

async fn users_of(stack: &Stack, account_id: &str) -> Vec<(String, String)> {
    let mut users: Vec<(String, String)> = stack
        .grpc()
        .await
        .list_account_users(ListAccountUsersRequest {
            account_id: account_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|user| (user.appid, user.openid))
        .collect();
    users.sort();
    users
}

#[tokio::test]
async fn users_of_two_apps_with_one_unionid_share_an_account_and_tokens_say_so() {
    let stack = Stack::start().await;
    let first = login(&stack, APP, "o-a-1", Some("u-shared")).await;
    let second = login(&stack, APP2, "o-b-1", Some("u-shared")).await;
    assert_eq!(account(&first), account(&second));
    assert_ne!(first["user"]["user_id"], second["user"]["user_id"]);
    let mut expected = vec![
        (APP.to_owned(), "o-a-1".to_owned()),
        (APP2.to_owned(), "o-b-1".to_owned()),
    ];
    expected.sort();
    assert_eq!(users_of(&stack, &account(&first)).await, expected);

    // The token, ValidateToken and GetUser carry the account.
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    for (logged_in, appid) in [(&first, APP), (&second, APP2)] {
        let validated = service
            .validate_token(ValidateTokenRequest {
                token: logged_in["access_token"].as_str().unwrap().into(),
                appid: appid.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(validated.account_id, account(&first));
    }
    let user = stack
        .grpc()
        .await
        .get_user(GetUserRequest {
            user_id: second["user"]["user_id"].as_str().unwrap().into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(user.account_id, account(&first));

    // A user of another person is another account.
    let stranger = login(&stack, APP2, "o-b-2", Some("u-other")).await;
    assert_ne!(account(&stranger), account(&first));
    // An unknown account is not found; a malformed one refused.
    let mut ops = stack.grpc().await;
    let missing = ops
        .list_account_users(ListAccountUsersRequest {
            account_id: "987654".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let malformed = ops
        .list_account_users(ListAccountUsersRequest {
            account_id: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_unionid_that_arrives_late_joins_the_account_in_either_order() {
    let stack = Stack::start().await;

    // Order 1: a user first seen without a unionid keeps their account when it arrives,
    // and the other app's user joins it.
    let early = login(&stack, APP, "o-late-a", None).await;
    let again = login(&stack, APP, "o-late-a", Some("u-late-1")).await;
    assert_eq!(account(&again), account(&early), "the account id is kept");
    let other = login(&stack, APP2, "o-late-b", Some("u-late-1")).await;
    assert_eq!(account(&other), account(&early));

    // Order 2: the other app's user brought the unionid first; the user first seen without
    // one moves into that account when it arrives.
    let without = login(&stack, APP, "o-late-c", None).await;
    let with = login(&stack, APP2, "o-late-d", Some("u-late-2")).await;
    assert_ne!(account(&without), account(&with));
    let joined = login(&stack, APP, "o-late-c", Some("u-late-2")).await;
    assert_eq!(account(&joined), account(&with));
    assert_eq!(users_of(&stack, &account(&with)).await.len(), 2);

    // A token signed before the join keeps the account it was signed with until it expires;
    // the refresh of that login reads the user's current account.
    assert_eq!(
        validated_account(&stack, &without["access_token"]).await,
        account(&without)
    );
    let (status, refreshed) = stack.v1_refresh(&without["refresh_token"]).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        validated_account(&stack, &refreshed["data"]["access_token"]).await,
        account(&with)
    );
}

/// The account id ValidateToken answers for an access token of `APP`.
async fn validated_account(stack: &Stack, token: &Value) -> String {
    stack
        .grpc_as(Some(&stack.keys.service))
        .await
        .validate_token(ValidateTokenRequest {
            token: token.as_str().unwrap().into(),
            appid: APP.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account_id
}

#[tokio::test]
async fn two_first_logins_of_one_person_through_two_apps_at_once_make_one_account() {
    let stack = Stack::start().await;
    for round in 0..5 {
        let unionid = format!("u-race-{round}");
        let (openid_a, openid_b) = (format!("o-race-a-{round}"), format!("o-race-b-{round}"));
        let (a, b) = tokio::join!(
            login(&stack, APP, &openid_a, Some(&unionid)),
            login(&stack, APP2, &openid_b, Some(&unionid)),
        );
        assert_eq!(account(&a), account(&b), "round {round}");
    }
    let accounts: i64 =
        sqlx::query_scalar("select count(*) from accounts where unionid like 'u-race-%'")
            .fetch_one(&stack.db.pool().await)
            .await
            .unwrap();
    assert_eq!(accounts, 5);
}

#[tokio::test]
async fn one_person_through_two_apps_of_one_open_platform_is_one_account() {
    // WeChat gives the person a different openid in each app and one unionid across the
    // apps of the Open Platform account; wxauth is told nothing else.
    let stack = Stack::start().await;
    let mut accounts = Vec::new();
    for appid in [APP, APP2] {
        let minted = stack
            .sim_post("/sim/login", json!({"appid": appid, "person": "alice"}))
            .await;
        let response = stack
            .http
            .post(format!("{}/v1/login", stack.gateway.url()))
            .json(&json!({"appid": appid, "code": minted["code"]}))
            .send()
            .await
            .unwrap();
        let (status, body) = envelope(response).await;
        assert_eq!(status, 200, "{body}");
        accounts.push((minted["openid"].clone(), account(&body["data"])));
    }
    assert_ne!(accounts[0].0, accounts[1].0, "an openid per app");
    assert_eq!(accounts[0].1, accounts[1].1, "one account");
}

/// An app moved to another Open Platform account gives its users a new unionid: the user
/// leaves the old unionid's account for the new one's (made under a new id, since the old
/// id is the old unionid's), and nothing fails.
#[tokio::test]
async fn a_user_whose_unionid_changes_moves_to_the_new_unionids_account() {
    let stack = Stack::start().await;
    let before = login(&stack, APP, "o-moved", Some("u-old")).await;
    let after = login(&stack, APP, "o-moved", Some("u-new")).await;
    assert_eq!(before["user"]["user_id"], after["user"]["user_id"]);
    assert_ne!(account(&before), account(&after));
    // Another app's user with the new unionid joins the same account.
    let other = login(&stack, APP2, "o-moved-b", Some("u-new")).await;
    assert_eq!(account(&other), account(&after));
    assert_eq!(
        users_of(&stack, &account(&after)).await,
        [
            (APP2.to_owned(), "o-moved-b".to_owned()),
            (APP.to_owned(), "o-moved".to_owned())
        ]
    );
}
