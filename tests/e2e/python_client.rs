//! A caller in another language, proven: the Python example generates its client from
//! `proto/` with grpcio-tools and validates tokens against the real stack, handling each
//! error reason (its exit code says which).

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use wxauth_e2e::{
    random_hex,
    stack::{APP, Stack},
};
use wxauth_token::Claims;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// Runs the example: (exit code, the JSON it printed).
fn whoami(
    python: &PathBuf,
    generated_dir: &PathBuf,
    addr: &str,
    key: &str,
    token: &str,
) -> (i32, Value) {
    let output = Command::new(python)
        .arg(root().join("examples/python/whoami.py"))
        .arg(token)
        .env("WXAUTH_PY_GEN", generated_dir)
        .env("AUTH_GRPC_ADDR", addr)
        .env("AUTH_CALLER_KEY", key)
        .env("WHOAMI_APPID", APP)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let printed = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "whoami.py printed no JSON:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), printed)
}

#[tokio::test]
async fn the_python_example_validates_tokens_and_handles_each_reason() {
    let python = root().join("target/python-example/bin/python");
    assert!(
        python.exists(),
        "the Python example's venv is missing: scripts/test makes it \
         (python3 -m venv target/python-example && target/python-example/bin/pip install -r examples/python/requirements.txt)"
    );
    let stack = Stack::start().await;
    let generated_dir = stack.dir().join(format!("python-gen-{}", random_hex(4)));
    let ran = Command::new(&python)
        .arg(root().join("examples/python/generate.py"))
        .arg(&generated_dir)
        .status()
        .unwrap();
    assert!(ran.success(), "the client is generated from proto/");

    let login = stack.v1_login(APP, "o-python").await;
    let token = login["access_token"].as_str().unwrap();
    let addr = stack.auth.addr().to_string();
    let key = stack.keys.service.clone();

    let (code, printed) = whoami(&python, &generated_dir, &addr, &key, token);
    assert_eq!(code, 0, "{printed}");
    assert_eq!(printed["user_id"], login["user"]["user_id"]);
    assert_eq!(printed["account_id"], login["user"]["account_id"]);
    assert_eq!(printed["openid"], "o-python");

    // Expired: signed by the stack's own key, an hour in the past.
    let genuine: Claims = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    };
    let expired = stack.sign(&Claims {
        iat: genuine.iat - 7200,
        exp: genuine.iat - 3600,
        ..genuine
    });
    let cases = [
        (
            "expired",
            addr.clone(),
            key.clone(),
            expired,
            2,
            "TOKEN_EXPIRED",
        ),
        (
            "forged",
            addr.clone(),
            key.clone(),
            "a.b.c".to_owned(),
            3,
            "TOKEN_INVALID",
        ),
        (
            "unknown caller key",
            addr.clone(),
            "not-a-known-key-0123456789".to_owned(),
            token.to_owned(),
            4,
            "CALLER_UNAUTHENTICATED",
        ),
        (
            "the gateway's key lacks the validate scope",
            addr.clone(),
            stack.keys.gateway.clone(),
            token.to_owned(),
            4,
            "CALLER_FORBIDDEN",
        ),
        (
            "nothing listening",
            "127.0.0.1:9".to_owned(),
            key.clone(),
            token.to_owned(),
            5,
            "SERVICE_UNAVAILABLE",
        ),
    ];
    for (case, addr, key, token, expected, reason) in cases {
        let (code, printed) = whoami(&python, &generated_dir, &addr, &key, &token);
        assert_eq!(
            (code, printed["reason"].as_str()),
            (expected, Some(reason)),
            "{case}: {printed}"
        );
    }
}
