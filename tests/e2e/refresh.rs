//! Refresh tokens end to end: rotation with theft detection, the grace for a retried
//! refresh, and the absolute lifetime of a session family.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::stack::{APP, Options, Stack};

use crate::tokens::{refused, validate};

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    // No grace: the thief's token is presented right after the user's refresh.
    let stack = Stack::start_with(Options {
        auth_env: vec![("WXAUTH_REFRESH_GRACE_SECS", "0".into())],
        ..Options::default()
    })
    .await;
    let first = stack.v1_login(APP, "o-theft").await;
    let other_login = stack.v1_login(APP, "o-theft").await;
    let stolen = first["refresh_token"].clone();
    // The user refreshes: the stolen token is now used up...
    let (_, refreshed) = stack.v1_refresh(&stolen).await;
    let current = refreshed["data"].clone();
    // ...and the thief presents it: refused, and the whole family with it.
    let (status, body) = stack.v1_refresh(&stolen).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007)),
        "{body}"
    );
    let (status, _) = stack.v1_refresh(&current["refresh_token"]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the legitimate holder's newer refresh token is revoked too"
    );
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    assert_eq!(
        validate(&mut service, current["access_token"].as_str().unwrap(), "").await,
        refused("TOKEN_INVALID")
    );
    // Another login of the same user is another family, untouched.
    assert!(
        validate(
            &mut service,
            other_login["access_token"].as_str().unwrap(),
            ""
        )
        .await
        .is_ok()
    );
    let reason: String =
        sqlx::query_scalar("select revoke_reason from token_families where revoked_at is not null")
            .fetch_one(&stack.db.pool().await)
            .await
            .unwrap();
    assert_eq!(reason, "refresh token reused");
}

/// A refresh whose answer was lost, or two tabs refreshing at once, get the same new refresh
/// token within the grace period; once that one is used, the old one is reuse again.
#[tokio::test]
async fn a_retried_refresh_gets_the_same_successor_and_later_reuse_still_revokes() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-grace").await;
    let first = login["refresh_token"].clone();
    let refresh = |token: Value| {
        let stack = &stack;
        async move {
            stack
                .post_as("/v1/token/refresh", json!({"refresh_token": token}), None)
                .await
        }
    };
    let (status, answered) = refresh(first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    let (status, retried) = refresh(first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        retried["data"]["refresh_token"], answered["data"]["refresh_token"],
        "the same successor"
    );
    let second = answered["data"]["refresh_token"].clone();
    // Two tabs at once.
    let (a, b) = tokio::join!(refresh(second.clone()), refresh(second.clone()));
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        b.1
    );
    assert_eq!(a.1["data"]["refresh_token"], b.1["data"]["refresh_token"]);
    let third = a.1["data"]["refresh_token"].clone();
    let (status, _) = refresh(third).await;
    assert_eq!(status, StatusCode::OK);
    // The second token's successor is used now: presenting it again is theft.
    let (status, body) = refresh(second).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007))
    );
    let (status, _) = refresh(first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family is over");
}

/// However often it is refreshed, a session family ends at its absolute lifetime.
#[tokio::test]
async fn a_family_older_than_its_lifetime_cannot_be_refreshed() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-old").await;
    stack
        .execute("update token_families set created_at = now() - interval '91 days'")
        .await;
    let (status, body) = stack.v1_refresh(&login["refresh_token"]).await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10007)),
        "{body}"
    );
}
