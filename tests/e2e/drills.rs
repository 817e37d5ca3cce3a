//! Fault drills on real processes: the database crashing under login load, WeChat hanging
//! and answering garbage, a replica's listener killed while another replica logs a user out.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt as _;
use wxauth_e2e::{
    db::TestDb,
    eventually,
    pg::Cluster,
    stack::{APP, Options, Stack, envelope, save_body},
};
use wxauth_proto::v1::{CreateSessionRequest, ValidateTokenRequest};

/// One seed login through the gateway: the envelope of `wxsmallusersave`, or of the
/// `getsessionkey` that failed.
async fn seed_login(stack: &Stack, openid: &str) -> (StatusCode, Value) {
    let code = stack.mint_code(APP, openid, None).await;
    let (status, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    if status != StatusCode::OK {
        return (status, session);
    }
    let uuid = session["data"].as_str().unwrap_or_default().to_owned();
    let data = stack
        .user_info(APP, openid, json!({"nickName": openid}))
        .await;
    stack
        .save_user(&save_body(APP, &uuid, "userinfo", &data))
        .await
}

#[tokio::test]
async fn a_database_crash_under_login_load_loses_no_acknowledged_login() {
    let cluster = Cluster::start();
    let stack =
        Arc::new(Stack::start_on(TestDb::create_on(cluster.url()).await, Options::default()).await);
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (stack, running) = (stack.clone(), running.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = Vec::new();
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    n += 1;
                    let (status, body) = seed_login(&stack, &format!("o-crash-{worker}-{n}")).await;
                    if status == StatusCode::OK {
                        acknowledged.push(body["data"]["refresh_token"].clone());
                    } else {
                        refused.push((status, body));
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    eventually("logins flow", Duration::from_secs(10), || async {
        stack.count("token_families").await >= 5
    })
    .await;
    cluster.crash_and_restart();
    // Until the service has reconnected and logins succeed again.
    let before = stack.count("token_families").await;
    eventually(
        "logins flow again after the restart",
        Duration::from_secs(30),
        || async { stack.count("token_families").await >= before + 5 },
    )
    .await;
    running.store(false, Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    for worker in workers {
        let (ok, refused) = worker.await.unwrap();
        for (status, body) in refused {
            // A clean refusal a client can retry, never a 500.
            assert!(matches!(status.as_u16(), 401 | 503), "{status}: {body}");
            assert!(
                matches!(body["code"].as_i64(), Some(10002 | 10003 | 10500)),
                "{body}"
            );
        }
        acknowledged.extend(ok);
    }
    assert!(acknowledged.len() >= 10, "{}", acknowledged.len());
    // Every login the client was told succeeded is there: its refresh token works.
    for refresh_token in acknowledged {
        let (status, body) = stack.v1_refresh(&refresh_token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "an acknowledged login was lost: {body}"
        );
    }
}

#[tokio::test]
async fn wechat_hanging_or_answering_garbage_is_a_clean_unavailable() {
    let stack = Stack::start_with(Options {
        wechat_timeout_ms: 400,
        ..Options::default()
    })
    .await;
    // WeChat-shaped, and it would log a user in, but far longer than any answer of WeChat.
    let endless = format!(
        r#"{{"openid":"o-x","session_key":"AAAAAAAAAAAAAAAAAAAAAA==","pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    let cases: [(&str, Value, u16); 6] = [
        ("an endless body", json!({ "body": endless }), 502),
        ("hangs", json!({"delay_ms": 3000}), 503),
        (
            "an html error page",
            json!({"body": "<html>502 Bad Gateway</html>", "status": 502}),
            502,
        ),
        (
            "json that is not WeChat's",
            json!({"body": "{\"hello\": \"world\"}"}),
            502,
        ),
        (
            // Kept, it would have failed every decryption of the user's data as an
            // internal error.
            "a session_key that is not 16 bytes",
            json!({"body": "{\"openid\": \"o-x\", \"session_key\": \"c2hvcnQ=\"}"}),
            502,
        ),
        (
            "a truncated body",
            json!({"body": "{\"openid\": \"o-x\", \"session_k"}),
            502,
        ),
    ];
    for (case, fault, expected) in cases {
        stack.sim_post("/sim/faults", fault).await;
        let code = stack.mint_code(APP, "o-garbage", None).await;
        let (status, body) = stack
            .get_session_key(&[("appid", APP), ("code", &code)])
            .await;
        assert_eq!(
            (status.as_u16(), body["code"].as_i64()),
            (expected, Some(10005)),
            "{case}: {body}"
        );
        assert!(
            !body["msg"].as_str().unwrap_or_default().contains("html"),
            "{case}"
        );
    }
    assert_eq!(
        stack.count("login_sessions").await,
        0,
        "nothing half-written"
    );
    // And WeChat answering properly again, logins work.
    let (status, _) = seed_login(&stack, "o-after").await;
    assert_eq!(status, StatusCode::OK);
}

/// A loopback server that answers anything with what a followed redirect would make a
/// success (WeChat-shaped JSON), and says whether anyone came.
async fn redirect_trap() -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/elsewhere", listener.local_addr().unwrap());
    let visited = Arc::new(AtomicBool::new(false));
    let seen = visited.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.store(true, Ordering::SeqCst);
            let body = r#"{"openid":"o-trap","session_key":"AAAAAAAAAAAAAAAAAAAAAA==","access_token":"trap","expires_in":7200}"#;
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::io::AsyncWriteExt::write_all(&mut socket, answer.as_bytes()).await;
        }
    });
    (url, visited)
}

#[tokio::test]
async fn a_redirect_in_place_of_wechats_answer_is_not_followed() {
    let stack = Stack::start().await;
    let (trap, visited) = redirect_trap().await;

    // The code exchange (a GET carrying the code and the app secret).
    stack
        .sim_post(
            "/sim/faults",
            json!({"status": 302, "body": "", "location": trap}),
        )
        .await;
    let code = stack.mint_code(APP, "o-redirect", None).await;
    let (status, body) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(
        (status, body["code"].as_i64()),
        (StatusCode::BAD_GATEWAY, Some(10005)),
        "{body}"
    );
    assert_eq!(stack.count("login_sessions").await, 0, "nothing written");

    // The access_token fetch (a POST whose body holds the app secret; a 307 would resend it).
    let login = stack.v1_login(APP, "o-redirect").await;
    let token = login["access_token"].as_str().unwrap();
    stack
        .sim_post(
            "/sim/faults",
            json!({"endpoint": "stable_token", "status": 307, "body": "", "location": trap}),
        )
        .await;
    let phone_code = stack
        .mint_phone_code(APP, "o-redirect", "13800138000")
        .await;
    let (status, body) = envelope(
        stack
            .http
            .post(format!("{}/v1/me/phone", stack.gateway.url()))
            .bearer_auth(token)
            .json(&json!({ "code": phone_code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_eq!(body["code"].as_i64(), Some(10005), "{body}");

    assert!(
        !visited.load(Ordering::SeqCst),
        "a redirect was followed off WeChat"
    );
}

#[tokio::test]
async fn a_listener_killed_during_a_logout_elsewhere_lets_no_revoked_token_through() {
    let stack = Stack::start().await;
    let replica = stack.spawn_replica("auth-listener-killed");
    let login = stack.v1_login(APP, "o-killed").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let mut on_replica = stack.grpc_to(&replica, Some(&stack.keys.service)).await;
    let validate = |client: &mut wxauth_e2e::stack::Client, token: String| {
        let mut client = client.clone();
        async move {
            client
                .validate_token(ValidateTokenRequest {
                    token,
                    appid: APP.into(),
                })
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    };
    assert_eq!(validate(&mut on_replica, token.clone()).await, Ok(()));

    // Every LISTEN connection is killed while the other replica logs the user out.
    let (killed, logout) = tokio::join!(
        stack.db.admin(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = '{db}' and query ilike 'listen%'"
        ),
        stack
            .http
            .post(format!("{}/v1/logout", stack.gateway.url()))
            .bearer_auth(&token)
            .send(),
    );
    let () = killed;
    assert_eq!(envelope(logout.unwrap()).await.0, StatusCode::OK);
    eventually(
        "the replica refuses the logged-out token",
        Duration::from_secs(5),
        || async {
            validate(&mut on_replica.clone(), token.clone()).await == Err(Code::Unauthenticated)
        },
    )
    .await;
    // And keeps refusing once its listener is back.
    eventually("the listener is back", Duration::from_secs(10), || async {
        replica.log().contains("revocation listener connected")
            && replica
                .log()
                .matches("revocation listener connected")
                .count()
                >= 2
    })
    .await;
    assert_eq!(
        validate(&mut on_replica, token).await,
        Err(Code::Unauthenticated)
    );
}

/// A statement the database ends at the statement timeout (a lock held by a migration, a
/// vacuum or an operator's transaction) means the database is slow: UNAVAILABLE, which a
/// client retries, not an internal error. Before, it answered INTERNAL.
#[tokio::test]
async fn a_statement_ended_at_the_statement_timeout_is_unavailable_not_internal() {
    let stack = Stack::start().await;
    let replica = stack.spawn_replica_with(
        "auth-impatient",
        &[("WXAUTH_DB_STATEMENT_TIMEOUT_MS", "300".into())],
    );
    // An operator's transaction holds the table every code exchange writes first.
    let pool = stack.db.pool().await;
    let mut operator = pool.begin().await.unwrap();
    sqlx::query("lock table used_codes in exclusive mode")
        .execute(&mut *operator)
        .await
        .unwrap();
    let code = stack.mint_code(APP, "o-locked-out", None).await;
    let status = stack
        .grpc_to(&replica, Some(&stack.keys.gateway))
        .await
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code: code.clone(),
        })
        .await
        .expect_err("the claim cannot be written while the table is locked");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retry"), "{status:?}");
    // Told when, too: the gateway turns this into `retry-after`.
    let retry_delay = status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay);
    assert_eq!(retry_delay, Some(Duration::from_secs(1)), "{status:?}");
    operator.rollback().await.unwrap();

    // Nothing reached WeChat, so the same code logs the user in once the lock is gone.
    stack
        .grpc_to(&replica, Some(&stack.keys.gateway))
        .await
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code,
        })
        .await
        .expect("the code still works");
}
