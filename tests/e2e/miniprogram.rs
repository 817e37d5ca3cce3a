//! The mini-program module (`clients/miniprogram/wxauth.js`) under Node, with a `wx` shim,
//! against the real gateway: silent login, refresh, re-login, profile, phone, retry, logout.

use std::{path::PathBuf, process::Command};

use wxauth_e2e::stack::{APP, Stack};

#[tokio::test]
async fn the_miniprogram_module_logs_in_refreshes_and_recovers_against_the_real_stack() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf();
    let stack = Stack::start().await;
    let output = Command::new("node")
        .arg(root.join("clients/miniprogram/test/e2e.js"))
        .env("GATEWAY_URL", stack.gateway.url())
        .env("SIM_URL", stack.sim.url())
        .env("APPID", APP)
        .output()
        .expect("node runs (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the module's steps failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
}
