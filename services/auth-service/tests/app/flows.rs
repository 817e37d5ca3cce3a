//! The login flows through the gRPC API, with time moved by the test instead of waited for.

use tonic::Code;
use tonic_types::StatusExt;
use wxauth_proto::v1::{
    CompleteLoginRequest, CreateSessionRequest, DataKind, RefreshTokenRequest, ValidateTokenRequest,
};

use auth_service::clock::Clock as _;

use crate::support::{ACCESS_TTL, APP, Client, TestApp};

/// The code and reason of a refusal.
fn refusal(status: &tonic::Status) -> (Code, String) {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

async fn session(gateway: &mut Client, app: &TestApp, openid: &str) -> String {
    gateway
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code: app.code(openid),
        })
        .await
        .unwrap()
        .into_inner()
        .session_id
}

fn complete(session_id: &str, info: &wechat_sim::SignedUserInfo) -> CompleteLoginRequest {
    CompleteLoginRequest {
        appid: APP.into(),
        session_id: session_id.into(),
        kind: DataKind::UserInfo.into(),
        encrypted_data: info.encrypted_data.clone(),
        iv: info.iv.clone(),
        raw_data: Some(info.raw_data.clone()),
        signature: Some(info.signature.clone()),
    }
}

async fn validate(service: &mut Client, token: &str) -> Result<String, (Code, String)> {
    service
        .validate_token(ValidateTokenRequest {
            token: token.into(),
            appid: APP.into(),
        })
        .await
        .map(|answer| answer.into_inner().user_id)
        .map_err(|status| refusal(&status))
}

#[tokio::test]
async fn tokens_expire_on_the_services_clock_and_a_refresh_gives_new_ones() {
    let app = TestApp::spawn(&[]).await;
    let (mut gateway, mut service) = (app.client(0).await, app.client(1).await);
    let session_id = session(&mut gateway, &app, "o-clock").await;
    let info = app.user_info("o-clock", "Clock");
    let login = gateway
        .complete_login(complete(&session_id, &info))
        .await
        .unwrap()
        .into_inner();
    let user = login.user.unwrap();
    assert_eq!(user.nickname, "Clock");
    let tokens = login.tokens.unwrap();
    assert_eq!(
        validate(&mut service, &tokens.access_token).await,
        Ok(user.user_id.clone())
    );

    app.clock.advance(ACCESS_TTL - 1);
    assert_eq!(
        validate(&mut service, &tokens.access_token).await,
        Ok(user.user_id.clone()),
        "valid until the last second"
    );
    app.clock.advance(1);
    assert_eq!(
        validate(&mut service, &tokens.access_token).await,
        Err((Code::Unauthenticated, "TOKEN_EXPIRED".into())),
        "the remembered token is refused at its expiry"
    );

    let refreshed = gateway
        .refresh_token(RefreshTokenRequest {
            scope: String::new(),
            refresh_token: tokens.refresh_token,
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(
        validate(&mut service, &refreshed.access_token).await,
        Ok(user.user_id)
    );
}

/// The stored key of every refresh token, oldest first by creation.
async fn refresh_keys(app: &TestApp) -> Vec<Vec<u8>> {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query_scalar("select token_hash from refresh_tokens order by created_at, token_hash")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// Refresh tokens are keyed by when they were issued, so issuing one writes at the end of
/// the table's key and not on a random page of a large index; tokens handed out before
/// that, stored under their plain SHA-256 digest, keep working through an upgrade.
#[tokio::test]
async fn refresh_tokens_are_keyed_in_issue_order_and_older_tokens_still_refresh() {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest as _, Sha256};
    use sqlx::Connection as _;

    let app = TestApp::spawn(&[]).await;
    let mut gateway = app.client(0).await;
    let session_id = session(&mut gateway, &app, "o-ordered").await;
    let issued_at = app.clock.timestamp().micros();
    let login = gateway
        .complete_login(complete(
            &session_id,
            &app.user_info("o-ordered", "Ordered"),
        ))
        .await
        .unwrap()
        .into_inner();
    let first = login.tokens.unwrap().refresh_token;
    let keys = refresh_keys(&app).await;
    assert_eq!(keys.len(), 1);
    let order = i64::from_be_bytes(keys[0][..8].try_into().unwrap());
    assert_eq!(order, issued_at, "the key begins with the issue time");
    assert_eq!(&keys[0][8..], &Sha256::digest(first.as_bytes())[..]);

    // A later token sorts after: its rotation inserts at the end of the key.
    app.clock.advance(5);
    let refresh = |token: String| RefreshTokenRequest {
        scope: String::new(),
        refresh_token: token,
    };
    let second = gateway
        .refresh_token(refresh(first))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
        .refresh_token;
    let keys = refresh_keys(&app).await;
    assert_eq!(keys.len(), 2);
    assert!(keys[0] < keys[1], "keys sort in issue order");

    // A token of before, stored under its plain digest in the same family, still trades.
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).unwrap();
    let older = format!("wxrt_{}", URL_SAFE_NO_PAD.encode(random));
    let mut db = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query(
        "insert into refresh_tokens (token_hash, family_id, created_at, expires_at) \
         select $1, family_id, created_at, expires_at from refresh_tokens where token_hash = $2",
    )
    .bind(Sha256::digest(older.as_bytes()).to_vec())
    .bind(&keys[1])
    .execute(&mut db)
    .await
    .unwrap();
    let traded = gateway
        .refresh_token(refresh(older.clone()))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(
        validate(&mut app.client(1).await, &traded.access_token)
            .await
            .map(|user| !user.is_empty()),
        Ok(true)
    );
    assert!(
        traded.refresh_token.len() > older.len(),
        "its successor is ordered"
    );

    // An ordered token's claimed order is only where to look: the same order with other
    // random bits is not the token.
    let mut bent = URL_SAFE_NO_PAD
        .decode(second.trim_start_matches("wxrt_"))
        .unwrap();
    bent[20] ^= 1;
    let forged = format!("wxrt_{}", URL_SAFE_NO_PAD.encode(bent));
    let refused = gateway.refresh_token(refresh(forged)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    gateway.refresh_token(refresh(second)).await.unwrap();
}

#[tokio::test]
async fn data_older_than_the_watermark_limit_is_refused_and_fresh_data_passes() {
    let app = TestApp::spawn(&["--watermark-max-age-secs=60"]).await;
    let mut gateway = app.client(0).await;
    let session_id = session(&mut gateway, &app, "o-stale").await;
    let stale = app.user_info("o-stale", "Stale");
    app.clock.advance(61);
    let refused = gateway
        .complete_login(complete(&session_id, &stale))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&refused),
        (Code::InvalidArgument, "DECRYPTION_FAILED".into())
    );
    // The session is still there: data made now passes.
    let fresh = app.user_info("o-stale", "Fresh");
    let login = gateway
        .complete_login(complete(&session_id, &fresh))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.user.unwrap().nickname, "Fresh");
}

#[tokio::test]
async fn a_session_replaced_on_another_replica_is_refused_as_unknown() {
    let app = TestApp::spawn(&[]).await;
    let replica = app.replica().await;
    let mut here = app.client(0).await;
    let mut there = replica.client(0).await;
    let old_session = session(&mut here, &app, "o-two").await;
    let under_old_key = app.user_info("o-two", "Old");
    // A newer login of the same user on the other replica: WeChat rotates the session_key,
    // and the older session is dropped.
    let _newer = session(&mut there, &app, "o-two").await;
    let under_new_key = app.user_info("o-two", "New");
    for (case, info) in [("old key", &under_old_key), ("new key", &under_new_key)] {
        let refused = here
            .complete_login(complete(&old_session, info))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&refused),
            (Code::Unauthenticated, "SESSION_NOT_FOUND".into()),
            "{case}"
        );
    }
}

#[tokio::test]
async fn concurrent_exchanges_of_one_code_make_one_session_and_never_reach_wechat_twice() {
    let app = TestApp::spawn(&[]).await;
    let code = app.code("o-race");
    let mut calls = Vec::new();
    for _ in 0..16 {
        let mut gateway = app.client(0).await;
        let code = code.clone();
        calls.push(tokio::spawn(async move {
            gateway
                .create_session(CreateSessionRequest {
                    appid: APP.into(),
                    code,
                })
                .await
        }));
    }
    let (mut made, mut refused) = (0, Vec::new());
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => made += 1,
            Err(status) => refused.push(refusal(&status)),
        }
    }
    assert_eq!(made, 1, "one session from one code");
    // Refused by the claim, not by WeChat (which would be CODE_REJECTED, 40163).
    assert_eq!(
        refused,
        vec![(Code::Unauthenticated, "CODE_ALREADY_USED".to_owned()); 15]
    );
    // Another user's code is still claimed on its own.
    let mut gateway = app.client(0).await;
    assert!(
        session(&mut gateway, &app, "o-race-2")
            .await
            .starts_with("wxs_")
    );
}
