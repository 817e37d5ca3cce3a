//! wxauth plugged in by configuration, proven with stock libraries rather than our own code:
//! Node's openid-client runs discovery, the code exchange, userinfo, refresh and revocation
//! (`examples/oidc-node`); Python's joserfc verifies an access token through `jwks_uri` and
//! authlib's RFC 7662 client introspects it (`examples/oidc-python`).

use std::{path::PathBuf, process::Command};

use serde_json::Value;
use wxauth_e2e::stack::{APP, Stack};

use crate::oidc::{exchange, oidc_stack};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// The JSON line a program printed, or its output when it failed.
fn printed(output: &std::process::Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{what} printed no JSON:\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn openid_client_discovers_exchanges_refreshes_and_revokes() {
    let example = root().join("examples/oidc-node");
    assert!(
        example.join("node_modules/openid-client").exists(),
        "openid-client is missing: scripts/test installs it (npm ci --prefix examples/oidc-node)"
    );
    let stack = Stack::start_with(oidc_stack()).await;
    let code = stack.mint_code(APP, "o-node", Some("u-o-node")).await;
    let output = Command::new("node")
        .arg(example.join("plug.mjs"))
        .env("WXAUTH_ISSUER", stack.gateway.url())
        .env("APPID", APP)
        .env("WX_LOGIN_CODE", &code)
        .output()
        .expect("node runs");
    let seen = printed(&output, "plug.mjs");
    assert_eq!(seen["issuer"], stack.gateway.url().as_str());
    assert_eq!(seen["aud"], APP);
    assert_eq!(seen["scope"], "openid profile phone");
    assert_eq!(seen["userinfo"]["sub"], seen["sub"]);
    assert_eq!(seen["userinfo"]["urn:wxauth:openid"], "o-node");
    assert_eq!(seen["refreshed"], true);
    // The refresh token it revoked is dead.
    let (status, _) = stack.v1_refresh(&seen["revoked"]).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn joserfc_verifies_through_the_jwks_uri_and_authlib_introspects() {
    let python = root().join("target/oidc-python/bin/python");
    assert!(
        python.exists(),
        "the stock Python libraries are missing: scripts/test installs them into target/oidc-python"
    );
    let stack = Stack::start_with(oidc_stack()).await;
    let (_, tokens) = exchange(&stack, "o-python", "openid profile").await;
    let access = tokens["access_token"].as_str().unwrap();
    let run = |token: &str| {
        Command::new(&python)
            .arg(root().join("examples/oidc-python/resource_server.py"))
            .arg(token)
            .env("WXAUTH_ISSUER", stack.gateway.url())
            .env("CALLER_NAME", "orders")
            .env("CALLER_KEY", &stack.keys.service)
            .output()
            .expect("python runs")
    };
    let seen = printed(&run(access), "resource_server.py");
    assert_eq!(seen["offline"]["valid"], true, "{seen}");
    assert_eq!(seen["offline"]["scope"], "openid profile");
    assert_eq!(seen["introspection"]["active"], true);
    assert_eq!(seen["introspection"]["client_id"], APP);
    assert_eq!(seen["introspection"]["sub"], seen["offline"]["sub"]);

    // Revoked: the signature still verifies offline until the token expires, and
    // introspection says it is no longer active.
    let (status, _) = crate::oidc::form(
        &stack,
        "/oauth/revoke",
        &[("token", tokens["refresh_token"].as_str().unwrap())],
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let seen = printed(&run(access), "resource_server.py");
    assert_eq!(seen["offline"]["valid"], true);
    assert_eq!(seen["introspection"], serde_json::json!({"active": false}));
    // A token of another issuer does not verify.
    let forged = stack.sign(&wxauth_token::Claims {
        iss: "https://someone.else".into(),
        ..serde_json::from_value(wxauth_e2e::jwt_claims(access)).unwrap()
    });
    let seen = printed(&run(&forged), "resource_server.py");
    assert_eq!(seen["offline"]["valid"], false);
    assert_eq!(seen["introspection"]["active"], false);
}
