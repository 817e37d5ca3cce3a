//! WeChat failing: every errcode gets its envelope, the code is never exchanged twice, and
//! no session is written.

use serde_json::Value;
use wxauth_e2e::stack::{APP, APP_BAD_SECRET, Options, Stack, envelope};

/// What the gateway answered: status, envelope and `retry-after`.
type Answer = (reqwest::StatusCode, Value, Option<String>);

/// `GET /wxauth/getsessionkey` with `query`, as an [`Answer`].
async fn ask(stack: &Stack, query: &[(&str, &str)]) -> Answer {
    let response = stack.get_session_key_answer(query).await;
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let (status, body) = envelope(response).await;
    (status, body, retry_after)
}

/// Checks an answer's status, envelope code, WeChat errcode and `retry-after` (a client told
/// to retry later is told when).
fn expect(
    case: &str,
    got: &Answer,
    status: u16,
    code: i64,
    errcode: Option<i64>,
    retry_after: Option<&str>,
) {
    let (got_status, body, got_retry_after) = got;
    assert_eq!(
        (
            got_status.as_u16(),
            body["code"].as_i64(),
            body["errcode"].as_i64(),
            got_retry_after.as_deref()
        ),
        (status, Some(code), errcode, retry_after),
        "case {case:?}: answered {body}"
    );
}

#[tokio::test]
async fn each_wechat_errcode_gets_its_envelope_and_writes_no_session() {
    let stack = Stack::start().await;
    let injected = [
        ("system busy", -1, 503, 10005, Some("1")),
        // WeChat counts a user's calls per minute.
        ("frequency limit", 45011, 429, 10006, Some("60")),
        ("code already used at wechat", 40163, 401, 10003, None),
        ("undocumented errcode", 61099, 502, 10005, Some("1")),
    ];
    for (case, errcode, status, code, retry_after) in injected {
        stack.fault(Some(errcode), 0, 1).await;
        let login_code = stack.mint_code(APP, "o-fail", None).await;
        let answer = ask(&stack, &[("appid", APP), ("code", &login_code)]).await;
        expect(case, &answer, status, code, Some(errcode), retry_after);
    }

    // Natural answers of the simulator, with no fault injected.
    let risky = stack.mint_risky_code(APP, "o-risky").await;
    expect(
        "high-risk user",
        &ask(&stack, &[("appid", APP), ("code", &risky)]).await,
        403,
        10003,
        Some(40226),
        None,
    );
    let misconfigured = stack.mint_code(APP_BAD_SECRET, "o-any", None).await;
    expect(
        "wrong app secret in our settings",
        &ask(
            &stack,
            &[("appid", APP_BAD_SECRET), ("code", &misconfigured)],
        )
        .await,
        502,
        10005,
        Some(40125),
        None,
    );
    assert_eq!(stack.count("login_sessions").await, 0);
}

/// An openid or unionid that cannot be WeChat's (a NUL, a line break) is a malformed answer,
/// not a user to store: before, the NUL made the session's insert fail as an internal error.
#[tokio::test]
async fn an_id_that_cannot_be_wechats_is_a_bad_answer_not_an_internal_error() {
    let stack = Stack::start().await;
    for (case, openid, unionid) in [
        ("nul in the openid", "o-\u{0}", None),
        ("line break in the unionid", "o-fine", Some("u-\n1")),
    ] {
        let login_code = stack.mint_code(APP, openid, unionid).await;
        let answer = ask(&stack, &[("appid", APP), ("code", &login_code)]).await;
        expect(case, &answer, 502, 10005, None, Some("1"));
    }
    assert_eq!(stack.count("login_sessions").await, 0);
}

#[tokio::test]
async fn a_code_is_never_sent_to_wechat_twice_even_after_wechat_failed() {
    let stack = Stack::start().await;
    stack.fault(Some(-1), 0, 1).await;
    let code = stack.mint_code(APP, "o-retry", None).await;
    let query = [("appid", APP), ("code", code.as_str())];
    expect(
        "busy",
        &ask(&stack, &query).await,
        503,
        10005,
        Some(-1),
        Some("1"),
    );
    let exchanges = stack.exchanges().await;
    // The client retries with the same code: refused here, WeChat is not asked again.
    expect(
        "retry with the same code",
        &ask(&stack, &query).await,
        401,
        10003,
        None,
        None,
    );
    assert_eq!(stack.exchanges().await, exchanges);
    // A fresh code works.
    let fresh = stack.mint_code(APP, "o-retry", None).await;
    let (status, _) = stack
        .get_session_key(&[("appid", APP), ("code", &fresh)])
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn wechat_timing_out_is_unavailable_not_an_internal_error() {
    let stack = Stack::start_with(Options {
        wechat_timeout_ms: 300,
        ..Options::default()
    })
    .await;
    stack.fault(None, 3_000, 1).await;
    let code = stack.mint_code(APP, "o-slow", None).await;
    let answer = ask(&stack, &[("appid", APP), ("code", &code)]).await;
    expect("timeout", &answer, 503, 10005, None, Some("1"));
    let body = answer.1;
    assert!(
        body["msg"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    assert_eq!(stack.count("login_sessions").await, 0);
}

#[tokio::test]
async fn the_gateway_answers_503_while_the_auth_service_is_down() {
    let mut stack = Stack::start_processes().await;
    let exit = stack.auth.process().terminate();
    assert!(
        exit.success(),
        "the auth-service stops cleanly on SIGTERM: {exit:?}"
    );
    let code = stack.mint_code(APP, "o-down", None).await;
    expect(
        "auth-service down",
        &ask(&stack, &[("appid", APP), ("code", &code)]).await,
        503,
        10500,
        None,
        Some("1"),
    );
}
