//! The end-to-end harness: starts `wechat-sim`, `auth-service` and `gateway` as real
//! processes on free ports against a fresh Postgres database, and gives tests the clients
//! a mini-program, an internal service and an operator would use.
//!
//! Readiness comes from the `listening on <addr>` line each binary prints, never from a
//! sleep. The binaries are taken from the cargo target folder next to the test executable
//! (or `WXAUTH_BIN_DIR`); `scripts/test` builds them first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod certs;
pub mod pg;
pub mod pooler;
pub mod proxy;
pub mod stack;

pub use wxauth_harness::{db, eventually, process, random_hex, seed};

/// The claims of a JWT, read without checking anything: for asserting what a token says.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// A gRPC refusal as its code and `google.rpc.ErrorInfo` reason (empty when it has none).
pub fn refusal(status: &tonic::Status) -> (tonic::Code, String) {
    use tonic_types::StatusExt as _;
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

/// Polls ValidateToken on `replica` until it refuses `token` (as `TOKEN_INVALID`), failing
/// if it still accepts it a second after `since`: "every replica within a second".
pub async fn refused_within_a_second(
    replica: &mut stack::Client,
    token: &str,
    since: std::time::Instant,
) {
    loop {
        let answer = replica
            .validate_token(wxauth_proto::v1::ValidateTokenRequest {
                token: token.into(),
                appid: String::new(),
            })
            .await;
        match answer {
            Err(status) => {
                assert_eq!(
                    refusal(&status),
                    (tonic::Code::Unauthenticated, "TOKEN_INVALID".into())
                );
                return;
            }
            Ok(_) => assert!(
                since.elapsed() < std::time::Duration::from_secs(1),
                "a replica still accepts the token a second later"
            ),
        }
        tokio::task::yield_now().await;
    }
}
