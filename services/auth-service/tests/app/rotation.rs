//! The last step of a session-key rotation: stored sessions move to the active key.

use std::time::Duration;

use wxauth_proto::v1::{CompleteLoginRequest, CreateSessionRequest, DataKind};

use crate::support::{APP, TestApp, key};

#[tokio::test]
async fn sessions_sealed_under_the_old_key_are_resealed_and_still_complete() {
    let keys = format!("--session-key-keys=old:{},new:{}", key(), key());
    let app = TestApp::spawn(&[&keys, "--session-key-kid=old"]).await;
    let session_id = app
        .client(0)
        .await
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code: app.code("o-rotate"),
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    assert_eq!(sealed_under(&app.db.url).await, "old");

    // The rotated replica seals under the new key, and its upkeep moves the stored session.
    let rotated = app
        .replica_with(&["--session-key-kid=new", "--purge-interval-secs=1"])
        .await;
    wxauth_e2e::eventually(
        "the session is re-sealed",
        Duration::from_secs(10),
        || async { sealed_under(&app.db.url).await == "new" },
    )
    .await;

    // Either replica opens it: both hold both keys.
    let info = app.user_info("o-rotate", "Rotated");
    let login = app
        .client(0)
        .await
        .complete_login(CompleteLoginRequest {
            appid: APP.into(),
            session_id,
            kind: DataKind::UserInfo.into(),
            encrypted_data: info.encrypted_data,
            iv: info.iv,
            raw_data: Some(info.raw_data),
            signature: Some(info.signature),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(login.user.unwrap().nickname, "Rotated");
    drop(rotated);
}

/// The kid the (only) stored session is sealed under.
async fn sealed_under(url: &str) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let kid: String = sqlx::query_scalar("select session_key_kid from login_sessions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    kid
}
