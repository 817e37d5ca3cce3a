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
    wxauth_harness::eventually(
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

/// After a leak a sealing key is removed at once, leaving rows no replica can open. The
/// re-seal reads only rows under keys it holds: before, the first batch of 500 was such rows
/// at every pass, and the rows that could move never did.
#[tokio::test]
async fn rows_under_a_removed_key_do_not_stall_a_rotation() {
    use sqlx::Connection as _;

    let keys = format!("--session-key-keys=old:{},new:{}", key(), key());
    let app = TestApp::spawn(&[&keys, "--session-key-kid=old"]).await;
    let mut db = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    // More rows under the removed key "gone" than one re-seal batch, written first.
    for statement in [
        "insert into login_sessions (id_hash, appid, openid, session_key_kid, session_key_nonce, \
           session_key_sealed, expires_at) \
         select sha256(n::text::bytea), $1, 'o-gone-' || n, 'gone', '\\x00', '\\x00', \
           now() + interval '1 hour' from generate_series(1, 600) as n",
        "insert into user_session_keys (appid, openid, session_key_kid, session_key_nonce, \
           session_key_sealed) \
         select $1, 'o-gone-' || n, 'gone', '\\x00', '\\x00' from generate_series(1, 600) as n",
    ] {
        sqlx::query(statement)
            .bind(APP)
            .execute(&mut db)
            .await
            .unwrap();
    }
    app.client(0)
        .await
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code: app.code("o-movable"),
        })
        .await
        .unwrap();

    let rotated = app
        .replica_with(&["--session-key-kid=new", "--purge-interval-secs=1"])
        .await;
    let kids_of_movable = "select (select session_key_kid from login_sessions where openid = 'o-movable') \
         || ',' || (select session_key_kid from user_session_keys where openid = 'o-movable')";
    wxauth_harness::eventually(
        "the movable session and user key are re-sealed",
        Duration::from_secs(10),
        || async {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            let kids: String = sqlx::query_scalar(kids_of_movable)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            kids == "new,new"
        },
    )
    .await;
    let gone: i64 = sqlx::query_scalar(
        "select (select count(*) from login_sessions where session_key_kid = 'gone') \
           + (select count(*) from user_session_keys where session_key_kid = 'gone')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(gone, 1200, "rows no replica can open are left as they are");
    drop(rotated);
}
