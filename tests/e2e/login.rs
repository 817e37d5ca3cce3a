//! The seed flow, as the mini-program and an internal service see it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wxauth_e2e::stack::{APP, APP2, Stack, envelope, save_body};
use wxauth_proto::v1::{GetUserRequest, ValidateTokenRequest};

#[tokio::test]
async fn the_seed_flow_logs_in_and_an_internal_service_learns_who_the_token_is() {
    let stack = Stack::start().await;
    let code = stack.mint_code(APP, "o-band", Some("u-band")).await;

    // wx.login() -> GET wxauth/getsessionkey
    let (status, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["code"], 10000);
    let uuid = session["data"].as_str().unwrap().to_owned();
    assert!(
        uuid.len() >= 40,
        "the session id carries at least 128 random bits: {uuid}"
    );
    // What is stored is digests and ciphertext, never the secrets themselves.
    let session_key = stack.session_key(APP, "o-band").await;
    let dump: String = sqlx::query_scalar(
        "select coalesce(string_agg(encode(id_hash, 'escape') || encode(session_key_sealed, 'escape') || encode(session_key_sealed, 'base64'), ''), '') from login_sessions",
    )
    .fetch_one(&stack.db.pool().await)
    .await
    .unwrap();
    assert!(!dump.is_empty());
    assert!(!dump.contains(&session_key) && !dump.contains(&uuid));

    // wx.getUserInfo() -> POST wxauth/wxsmallusersave
    let profile = json!({"nickName": "Band", "gender": 1, "language": "zh_CN", "city": "Guangzhou",
        "province": "Guangdong", "country": "CN", "avatarUrl": "https://wx.qlogo.cn/band/0"});
    let data = stack.user_info(APP, "o-band", profile).await;
    let (status, saved) = stack
        .save_user(&save_body(APP, &uuid, "userinfo", &data))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["code"], 10000);
    let token = saved["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(saved["data"]["user"]["nickname"], "Band");
    assert_eq!(saved["data"]["user"]["city"], "Guangzhou");

    // An internal service asks who the token belongs to.
    let mut grpc = stack.grpc().await;
    let who = grpc
        .validate_token(ValidateTokenRequest {
            token: token.clone(),
            appid: APP.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            who.appid.as_str(),
            who.openid.as_str(),
            who.unionid.as_str()
        ),
        (APP, "o-band", "u-band")
    );
    assert_eq!(
        who.user_id,
        saved["data"]["user"]["user_id"].as_str().unwrap()
    );
    assert!(who.expires_at.unwrap().seconds > saved["data"]["expires_at"].as_i64().unwrap() - 5);

    let user = grpc
        .get_user(GetUserRequest {
            user_id: who.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (
            user.nickname.as_str(),
            user.gender,
            user.avatar_url.as_str()
        ),
        ("Band", 1, "https://wx.qlogo.cn/band/0")
    );

    assert_eq!(
        stack.count("login_sessions").await,
        0,
        "the session is used up by its login"
    );
    let pool = stack.db.pool().await;
    let refresh = saved["data"]["refresh_token"].as_str().unwrap();
    assert!(
        refresh.starts_with("wxrt_"),
        "the seed route also returns the refresh token"
    );
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select token_hash from refresh_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!String::from_utf8_lossy(&stored[0]).contains(refresh));
}

#[tokio::test]
async fn a_form_encoded_body_works_and_keeps_plus_signs() {
    let stack = Stack::start().await;
    // Log in until WeChat's base64 holds a '+', the character form decoding mangles.
    for attempt in 0.. {
        assert!(attempt < 50, "no '+' in 50 payloads");
        let openid = format!("o-form-{attempt}");
        let code = stack.mint_code(APP, &openid, None).await;
        let (_, session) = stack
            .get_session_key(&[("appid", APP), ("code", &code)])
            .await;
        let data = stack
            .user_info(APP, &openid, json!({"nickName": "Form"}))
            .await;
        let body = save_body(APP, session["data"].as_str().unwrap(), "userinfo", &data);
        let blob = format!("{}{}", data["encryptedData"], data["iv"]);
        if !blob.contains('+') {
            continue;
        }
        let pairs: Vec<(String, String)> = body
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
            .collect();
        let response = stack
            .http
            .post(format!("{}/wxauth/wxsmallusersave", stack.gateway.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&pairs).unwrap())
            .send()
            .await
            .unwrap();
        let (status, saved) = envelope(response).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["data"]["user"]["nickname"], "Form");
        break;
    }
}

#[tokio::test]
async fn a_phone_number_joins_the_profile_and_keeps_its_country_code() {
    let stack = Stack::start().await;
    let first = stack
        .login(APP, "o-phone", json!({"nickName": "Ann"}))
        .await;

    let code = stack.mint_code(APP, "o-phone", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let phone = stack
        .sim_post(
            "/sim/phone",
            json!({"appid": APP, "openid": "o-phone", "phoneNumber": "+852 61234567",
            "purePhoneNumber": "61234567", "countryCode": "852"}),
        )
        .await;
    let (status, saved) = stack
        .save_user(&save_body(
            APP,
            session["data"].as_str().unwrap(),
            "phone",
            &phone,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let user = &saved["data"]["user"];
    assert_eq!(
        user["user_id"], first["user"]["user_id"],
        "the same user, not a new one"
    );
    assert_eq!(
        (
            user["phone_country_code"].as_str(),
            user["pure_phone_number"].as_str()
        ),
        (Some("852"), Some("61234567"))
    );
    assert_eq!(user["nickname"], "Ann", "a phone login keeps the profile");
}

#[tokio::test]
async fn wechats_anonymous_placeholder_never_overwrites_a_real_profile() {
    let stack = Stack::start().await;
    stack
        .login(
            APP,
            "o-anon",
            json!({"nickName": "Real Name", "avatarUrl": "https://real/1", "gender": 2}),
        )
        .await;
    let later = stack
        .login(
            APP,
            "o-anon",
            json!({"nickName": "微信用户", "avatarUrl": "https://grey/0", "gender": 0, "city": ""}),
        )
        .await;
    let user = &later["user"];
    assert_eq!(
        (
            user["nickname"].as_str(),
            user["avatar_url"].as_str(),
            user["gender"].as_i64()
        ),
        (Some("Real Name"), Some("https://real/1"), Some(2))
    );
    assert_eq!(stack.count("users").await, 1);
}

#[tokio::test]
async fn a_newer_login_replaces_the_older_session() {
    let stack = Stack::start().await;
    let old_code = stack.mint_code(APP, "o-twice", None).await;
    let (_, old) = stack
        .get_session_key(&[("appid", APP), ("code", &old_code)])
        .await;
    let new_code = stack.mint_code(APP, "o-twice", None).await;
    let (_, new) = stack
        .get_session_key(&[("appid", APP), ("code", &new_code)])
        .await;

    // WeChat keeps one session_key per user: the old session's key is stale, and the old
    // session says so clearly instead of failing to decrypt.
    let data = stack
        .user_info(APP, "o-twice", json!({"nickName": "T"}))
        .await;
    let (status, refused) = stack
        .save_user(&save_body(
            APP,
            old["data"].as_str().unwrap(),
            "userinfo",
            &data,
        ))
        .await;
    assert_eq!(
        (status, refused["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10002)),
        "{refused}"
    );
    let (status, saved) = stack
        .save_user(&save_body(
            APP,
            new["data"].as_str().unwrap(),
            "userinfo",
            &data,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        stack.count("login_sessions").await,
        0,
        "the newer session is used up by its login, the older one was replaced"
    );
}

#[tokio::test]
async fn several_apps_are_served_and_keep_their_users_apart() {
    let stack = Stack::start().await;
    let one = stack
        .login(APP, "o-same", json!({"nickName": "In App 1"}))
        .await;
    let two = stack
        .login(APP2, "o-same", json!({"nickName": "In App 2"}))
        .await;
    assert_ne!(one["user"]["user_id"], two["user"]["user_id"]);

    let mut grpc = stack.grpc().await;
    for (data, appid) in [(&one, APP), (&two, APP2)] {
        let who = grpc
            .validate_token(ValidateTokenRequest {
                token: data["token"].as_str().unwrap().into(),
                appid: appid.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(who.appid, appid);
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_client_or_the_gateway() {
    // The binaries, as deployed: every log line of each process is scanned.
    let mut stack = Stack::start_processes().await;
    let mut bodies: Vec<Value> = Vec::new();

    let data = stack
        .login(APP, "o-leak", json!({"nickName": "Leak"}))
        .await;
    bodies.push(data.clone());
    let token = data["token"].as_str().unwrap().to_owned();
    let refresh = data["refresh_token"].as_str().unwrap().to_owned();
    let code = stack.mint_code(APP, "o-leak", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let uuid = session["data"].as_str().unwrap().to_owned();
    // Failure paths too: a reused code, tampered data, a bad signature, WeChat failing.
    bodies.push(
        stack
            .get_session_key(&[("appid", APP), ("code", &code)])
            .await
            .1,
    );
    let mut payload = stack
        .user_info(APP, "o-leak", json!({"nickName": "Leak"}))
        .await;
    payload["signature"] = json!("00".repeat(20));
    bodies.push(
        stack
            .save_user(&save_body(APP, &uuid, "userinfo", &payload))
            .await
            .1,
    );
    payload["encryptedData"] = json!(format!(
        "AAAA{}",
        &payload["encryptedData"].as_str().unwrap()[4..]
    ));
    bodies.push(
        stack
            .save_user(&json!({"appid": APP, "uuid": uuid, "type": "userinfo",
        "encryptedData": payload["encryptedData"], "iv": payload["iv"]}))
            .await
            .1,
    );
    stack.fault(Some(-1), 0, 1).await;
    let busy_code = stack.mint_code(APP, "o-leak", None).await;
    bodies.push(
        stack
            .get_session_key(&[("appid", APP), ("code", &busy_code)])
            .await
            .1,
    );
    let session_key = stack.session_key(APP, "o-leak").await;

    // Stopped, every process has written all its log lines.
    for server in [&mut stack.gateway, &mut stack.auth, &mut stack.sim] {
        assert!(server.process().terminate().success());
    }
    let logs = stack.logs();
    let clients: String = bodies.iter().map(Value::to_string).collect();
    let mut secrets = stack.secrets.clone();
    secrets.push(session_key);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs:\n{logs}"
        );
        assert!(
            !clients.contains(secret.as_str()),
            "a secret reached a client: {clients}"
        );
    }
    for handed_out in [&token, &refresh, &uuid, &code, &busy_code] {
        assert!(
            !logs.contains(handed_out.as_str()),
            "a bearer secret reached the logs:\n{logs}"
        );
    }
    assert!(
        logs.contains("CreateSession"),
        "the scan read the real logs"
    );
}

/// A login session issues tokens once: the same `wxsmallusersave` body sent again (a replay,
/// or a double tap) answers "log in again", and no other token family is made. Revoking
/// the user ends their open login sessions too.
#[tokio::test]
async fn a_login_session_issues_tokens_once_and_revocation_ends_open_sessions() {
    let stack = Stack::start().await;
    let code = stack.mint_code(APP, "o-replay", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let uuid = session["data"].as_str().unwrap().to_owned();
    let data = stack
        .user_info(APP, "o-replay", json!({"nickName": "Replay"}))
        .await;
    let body = save_body(APP, &uuid, "userinfo", &data);
    let (status, saved) = stack.save_user(&body).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    for attempt in 0..3 {
        let (status, replayed) = stack.save_user(&body).await;
        assert_eq!(
            (status, replayed["code"].as_i64()),
            (StatusCode::UNAUTHORIZED, Some(10002)),
            "replay {attempt}: {replayed}"
        );
    }
    assert_eq!(stack.count("token_families").await, 1);

    // A session opened before the operator revoked the user cannot mint tokens after.
    let code = stack.mint_code(APP, "o-replay", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let open = session["data"].as_str().unwrap().to_owned();
    let data = stack
        .user_info(APP, "o-replay", json!({"nickName": "Replay"}))
        .await;
    let user_id = saved["data"]["user"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack
        .grpc()
        .await
        .revoke_user_sessions(wxauth_proto::v1::RevokeUserSessionsRequest { user_id })
        .await
        .unwrap();
    let (status, after) = stack
        .save_user(&save_body(APP, &open, "userinfo", &data))
        .await;
    assert_eq!(
        (status, after["code"].as_i64()),
        (StatusCode::UNAUTHORIZED, Some(10002)),
        "{after}"
    );
    assert_eq!(stack.count("token_families").await, 1);
}

/// Many silent logins of one user at once, across two replicas, each with its own code: the
/// codes are spent at WeChat, so every one ends in tokens of its own family. A login that
/// supersedes another's session does not take its tokens away.
#[tokio::test]
async fn concurrent_silent_logins_of_one_user_all_succeed_across_replicas() {
    use wxauth_e2e::stack::{CallerKey, channel_to};
    use wxauth_proto::v1::{
        CheckSessionKeyRequest, LoginRequest, SessionKeyState,
        auth_service_client::AuthServiceClient,
    };

    const LOGINS: usize = 80;
    let stack = Stack::start().await;
    let replica = stack.spawn_replica("auth-2");
    let channels = [channel_to(&stack.auth).await, channel_to(&replica).await];
    let mut codes = Vec::new();
    for _ in 0..LOGINS {
        codes.push(stack.mint_code(APP, "o-burst", Some("u-burst")).await);
    }
    // Every call is ready before any is sent, so they reach the replicas together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(LOGINS));
    let calls = codes.into_iter().enumerate().map(|(n, code)| {
        let mut client = AuthServiceClient::with_interceptor(
            channels[n % 2].clone(),
            CallerKey::new(&stack.keys.gateway).unwrap(),
        );
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            client
                .login(LoginRequest {
                    scope: String::new(),
                    appid: APP.into(),
                    code,
                })
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let mut users = std::collections::BTreeSet::new();
    let mut families = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(login) => {
                let user = login.user.unwrap();
                users.insert(user.user_id);
                let tokens = login.tokens.unwrap();
                let claims = wxauth_e2e::jwt_claims(&tokens.access_token);
                families.insert(claims["sid"].as_str().unwrap().to_owned());
            }
            Err(status) => failures.push(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(users.len(), 1, "one user");
    assert_eq!(families.len(), LOGINS, "each login has its own family");

    // The kept session_key is one WeChat gave; the next login's is WeChat's current one.
    let user_id = users.into_iter().next().unwrap();
    let after = stack.v1_login_with(APP, "o-burst", Some("u-burst")).await;
    assert_eq!(after["user"]["user_id"], user_id.as_str());
    let state = stack
        .grpc_as(Some(&stack.keys.service))
        .await
        .check_session_key(CheckSessionKeyRequest { user_id })
        .await
        .unwrap()
        .into_inner()
        .state();
    assert_eq!(state, SessionKeyState::Current);
    assert_eq!(
        stack.count("login_sessions").await,
        1,
        "only the newest session"
    );
}
