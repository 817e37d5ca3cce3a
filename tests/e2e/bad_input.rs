//! Bad input gets its envelope code and status, never a 500, and leaves nothing half-written.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;
use wxauth_e2e::stack::{APP, APP2, Stack, envelope, save_body};
use wxauth_proto::v1::GetUserRequest;

fn expect(case: &str, got: (StatusCode, Value), status: u16, code: i64) -> Value {
    let (got_status, body) = got;
    assert_eq!(
        (got_status.as_u16(), body["code"].as_i64()),
        (status, Some(code)),
        "case {case:?}: answered {body}"
    );
    assert!(
        !body["msg"].as_str().unwrap_or_default().is_empty(),
        "case {case:?}: no message"
    );
    assert!(
        body["request_id"].is_string(),
        "case {case:?}: no request id in {body}"
    );
    body
}

#[tokio::test]
async fn bad_getsessionkey_requests_get_their_envelope() {
    let stack = Stack::start().await;
    let used = stack.mint_code(APP, "o-used", None).await;
    let (status, _) = stack
        .get_session_key(&[("appid", APP), ("code", &used)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let exchanges_before = stack.exchanges().await;

    /// (case, query, HTTP status, envelope code, WeChat errcode)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, i64, Option<i64>);
    let cases: Vec<Case<'_>> = vec![
        ("no appid", vec![("code", "abc")], 400, 10001, None),
        ("no code", vec![("appid", APP)], 400, 10001, None),
        (
            "empty code",
            vec![("appid", APP), ("code", "")],
            400,
            10001,
            None,
        ),
        (
            "malformed appid",
            vec![("appid", "not-an-appid"), ("code", "abc")],
            400,
            10001,
            None,
        ),
        (
            "code that would break a url",
            vec![("appid", APP), ("code", "a\"b&secret=x")],
            400,
            10001,
            None,
        ),
        (
            "unknown appid",
            vec![("appid", "wxffffffffffffffff"), ("code", "abc")],
            404,
            10008,
            None,
        ),
        (
            "reused code",
            vec![("appid", APP), ("code", &used)],
            401,
            10003,
            None,
        ),
        (
            "invalid code",
            vec![("appid", APP), ("code", "never-minted")],
            401,
            10003,
            Some(40029),
        ),
    ];
    for (case, query, status, code, errcode) in cases {
        let body = expect(case, stack.get_session_key(&query).await, status, code);
        assert_eq!(body["errcode"].as_i64(), errcode, "case {case:?}: {body}");
    }
    // Only the invalid code reached WeChat; the reused one was refused here.
    assert_eq!(stack.exchanges().await, exchanges_before + 1);
    assert_eq!(stack.count("login_sessions").await, 1);
}

#[tokio::test]
async fn bad_wxsmallusersave_requests_get_their_envelope_and_write_nothing() {
    let stack = Stack::start().await;
    let code = stack.mint_code(APP, "o-bad", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let uuid = session["data"].as_str().unwrap().to_owned();
    let good = stack
        .user_info(APP, "o-bad", json!({"nickName": "Bad"}))
        .await;
    let body = save_body(APP, &uuid, "userinfo", &good);
    let with = |field: &str, value: Value| {
        let mut changed = body.clone();
        changed[field] = value;
        changed
    };
    let without = |field: &str| {
        let mut changed = body.clone();
        changed.as_object_mut().unwrap().remove(field);
        changed
    };
    let encrypted = good["encryptedData"].as_str().unwrap();
    let mut tampered_bytes = encrypted.as_bytes().to_vec();
    tampered_bytes[10] = if tampered_bytes[10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered_bytes).unwrap();
    let foreign = stack
        .sim_post("/sim/userinfo", json!({"appid": APP, "openid": "o-bad", "profile": {"nickName": "X"}, "watermark_appid": APP2}))
        .await;
    let stale = stack
        .sim_post("/sim/userinfo", json!({"appid": APP, "openid": "o-bad", "profile": {"nickName": "X"}, "timestamp": 1_477_314_187}))
        .await;

    let cases: Vec<(&str, Value, u16, i64)> = vec![
        ("no appid", without("appid"), 400, 10001),
        ("no uuid", without("uuid"), 400, 10001),
        ("no type", without("type"), 400, 10001),
        ("no encryptedData", without("encryptedData"), 400, 10001),
        ("no iv", without("iv"), 400, 10001),
        ("unknown type", with("type", json!("avatar")), 400, 10001),
        ("appid of a number", with("appid", json!(12)), 400, 10001),
        (
            "appid not of WeChat's shape",
            with("appid", json!("wx4F4BC4DEC97D474B")),
            400,
            10001,
        ),
        (
            "uuid too long",
            with("uuid", json!("s".repeat(1025))),
            400,
            10001,
        ),
        (
            "encryptedData too long",
            with("encryptedData", json!("A".repeat(8193))),
            400,
            10001,
        ),
        ("iv too long", with("iv", json!("A".repeat(65))), 400, 10001),
        (
            "signature too long",
            with("signature", json!("a".repeat(129))),
            400,
            10001,
        ),
        (
            "unknown appid",
            with("appid", json!("wxffffffffffffffff")),
            404,
            10008,
        ),
        (
            "unknown uuid",
            with("uuid", json!("wxs_not-a-session")),
            401,
            10002,
        ),
        (
            "uuid of another appid",
            with("appid", json!(APP2)),
            401,
            10002,
        ),
        ("short iv", with("iv", json!("AAAA")), 400, 10001),
        ("iv not base64", with("iv", json!("!!!!")), 400, 10001),
        (
            "data with a space for a plus",
            with(
                "encryptedData",
                json!(format!("{} {}", &encrypted[..8], &encrypted[9..])),
            ),
            400,
            10001,
        ),
        (
            "data not a block multiple",
            with("encryptedData", json!("AAAAAAAA")),
            400,
            10001,
        ),
        (
            "tampered data",
            with("encryptedData", json!(tampered)),
            400,
            10004,
        ),
        (
            "foreign watermark",
            save_body(APP, &uuid, "userinfo", &foreign),
            400,
            10004,
        ),
        (
            "stale watermark",
            save_body(APP, &uuid, "userinfo", &stale),
            400,
            10004,
        ),
        (
            "bad signature",
            with("signature", json!("ab".repeat(20))),
            400,
            10004,
        ),
        (
            "rawData without signature",
            without("signature"),
            400,
            10001,
        ),
        (
            "phone with rawData",
            with("type", json!("phone")),
            400,
            10001,
        ),
        (
            "phone data under a profile type",
            save_body(
                APP,
                &uuid,
                "phone",
                &json!({"encryptedData": good["encryptedData"], "iv": good["iv"]}),
            ),
            400,
            10004,
        ),
    ];
    for (case, request, status, code) in cases {
        let answer = expect(case, stack.save_user(&request).await, status, code);
        if case == "data with a space for a plus" {
            assert!(
                answer["msg"].as_str().unwrap().contains('+'),
                "the message names the cause: {answer}"
            );
        }
    }

    let raw_cases: [(&str, &str, Vec<u8>, u16); 3] = [
        ("not json", "application/json", b"{not json".to_vec(), 400),
        (
            "unsupported media type",
            "text/plain",
            b"appid=x".to_vec(),
            415,
        ),
        (
            "oversized body",
            "application/json",
            vec![b' '; 200 * 1024],
            413,
        ),
    ];
    for (case, content_type, bytes, status) in raw_cases {
        let response = stack
            .http
            .post(format!("{}/wxauth/wxsmallusersave", stack.gateway.url()))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap();
        expect(case, envelope(response).await, status, 10001);
    }

    // Nothing of the refused requests was written...
    assert_eq!(
        (
            stack.count("users").await,
            stack.count("refresh_tokens").await
        ),
        (0, 0)
    );
    // ...and the session still works once the client sends good data.
    let (status, saved) = stack.save_user(&body).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
}

#[tokio::test]
async fn an_expired_session_is_refused_as_unknown() {
    let stack = Stack::start().await;
    let code = stack.mint_code(APP, "o-late", None).await;
    let (_, session) = stack
        .get_session_key(&[("appid", APP), ("code", &code)])
        .await;
    let data = stack
        .user_info(APP, "o-late", json!({"nickName": "Late"}))
        .await;
    assert_eq!(
        stack
            .execute("update login_sessions set expires_at = now() - interval '1 second'")
            .await,
        1
    );
    let body = save_body(APP, session["data"].as_str().unwrap(), "userinfo", &data);
    expect("expired uuid", stack.save_user(&body).await, 401, 10002);
    assert_eq!(stack.count("users").await, 0);
}

#[tokio::test]
async fn bad_user_ids_are_refused() {
    let stack = Stack::start().await;
    let mut grpc = stack.grpc().await;
    let cases = [
        ("abc", Code::InvalidArgument),
        ("-1", Code::InvalidArgument),
        ("987654321", Code::NotFound),
    ];
    for (user_id, code) in cases {
        let status = grpc
            .get_user(GetUserRequest {
                user_id: user_id.into(),
            })
            .await
            .expect_err(user_id);
        assert_eq!(status.code(), code, "user_id {user_id:?}");
        assert!(
            status.get_error_details().error_info().is_some(),
            "user_id {user_id:?}: no reason"
        );
    }
}
