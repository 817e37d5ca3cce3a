//! The end-to-end harness: starts `wechat-sim`, `auth-service` and `gateway` as real
//! processes on free ports against a fresh Postgres database, and gives tests the clients
//! a mini-program, an internal service and an operator would use.
//!
//! Readiness comes from the `listening on <addr>` line each binary prints, never from a
//! sleep. The binaries are taken from the cargo target folder next to the test executable
//! (or `WXAUTH_BIN_DIR`); `scripts/test` builds them first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod certs;
pub mod db;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod stack;

/// Waits until `check` holds, asking again every 25 ms, and fails the test if it does not
/// hold within `deadline`. For effects of a server's background work (a purge, a health
/// probe) that no call returns: the condition is observed, never assumed after a pause.
pub async fn eventually<F, Fut>(what: &str, deadline: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "{what}: still not true after {deadline:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Random hex, for names that must not collide between tests running at once.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the os random source works");
    hex::encode(buf)
}

/// The claims of a JWT, read without checking anything: for asserting what a token says.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}
