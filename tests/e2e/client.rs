//! The client crate as an internal service uses it: the `whoami` example, run as a real
//! process, authenticates callers offline (JWKS) and online (ValidateToken).

use serde_json::json;
use tonic::{Code, metadata::AsciiMetadataValue, transport::Endpoint};
use whoami_example::pb::{WhoAmIRequest, who_am_i_client::WhoAmIClient};
use wxauth_e2e::{
    process::{Proc, run_to_exit},
    stack::{APP, APP2, Stack, envelope},
};

fn start_whoami(stack: &Stack, name: &str, mode: &str) -> Proc {
    start_whoami_at(stack, name, mode, &stack.auth.url())
}

fn start_whoami_at(stack: &Stack, name: &str, mode: &str, auth_url: &str) -> Proc {
    start_whoami_with(stack, name, mode, auth_url, &[])
}

fn start_whoami_with(
    stack: &Stack,
    name: &str,
    mode: &str,
    auth_url: &str,
    more: &[(&str, String)],
) -> Proc {
    let mut env = vec![
        ("WHOAMI_ADDR", "127.0.0.1:0".into()),
        ("AUTH_GRPC_URL", auth_url.into()),
        ("AUTH_CALLER_KEY", stack.keys.service.clone()),
        ("WHOAMI_APPID", APP.into()),
        ("WHOAMI_VERIFY", mode.into()),
    ];
    env.extend(more.iter().cloned());
    Proc::spawn_named("whoami", name, &env, stack.dir())
}

async fn who_am_i(service: &Proc, bearer: Option<&str>) -> Result<String, Code> {
    who_am_i_presenting(service, bearer.as_slice()).await
}

/// Asks `service` who the caller is, with one `authorization` entry per token.
async fn who_am_i_presenting(service: &Proc, bearers: &[&str]) -> Result<String, Code> {
    let channel = Endpoint::from_shared(service.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(WhoAmIRequest {});
    for token in bearers {
        let value: AsciiMetadataValue = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().append("authorization", value);
    }
    WhoAmIClient::new(channel)
        .who_am_i(request)
        .await
        .map(|answer| answer.into_inner().user_id)
        .map_err(|status| status.code())
}

#[tokio::test]
async fn the_example_service_knows_its_caller_offline_and_online() {
    let stack = Stack::start().await;
    let offline = start_whoami(
        &stack,
        &format!("whoami-offline-{}", wxauth_e2e::random_hex(4)),
        "offline",
    );
    let online = start_whoami(
        &stack,
        &format!("whoami-online-{}", wxauth_e2e::random_hex(4)),
        "online",
    );
    let login = stack.v1_login(APP, "o-whoami").await;
    let access = login["access_token"].as_str().unwrap();
    let user_id = login["user"]["user_id"].as_str().unwrap().to_owned();

    let other_app = stack.v1_login(APP2, "o-whoami").await;
    let other_app = other_app["access_token"].as_str().unwrap();
    for service in [&offline, &online] {
        assert_eq!(who_am_i(service, Some(access)).await, Ok(user_id.clone()));
        assert_eq!(
            who_am_i(service, Some(other_app)).await,
            Err(Code::Unauthenticated),
            "a token of another app"
        );
        assert_eq!(
            who_am_i(service, None).await,
            Err(Code::Unauthenticated),
            "no token"
        );
        assert_eq!(
            who_am_i(service, Some("forged.token.value")).await,
            Err(Code::Unauthenticated)
        );
        // Two tokens are ambiguous, in either order, even when one of them is good.
        for bearers in [
            [access, "forged.token.value"],
            ["forged.token.value", access],
        ] {
            assert_eq!(
                who_am_i_presenting(service, &bearers).await,
                Err(Code::Unauthenticated),
                "two authorization entries"
            );
        }
    }

    // After a logout, the online service refuses at once; the offline one only sees expiry
    // (that is the documented trade-off of verifying offline).
    let response = stack
        .http
        .post(format!("{}/v1/logout", stack.gateway.url()))
        .bearer_auth(access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(response).await.0, 200);
    assert_eq!(
        who_am_i(&online, Some(access)).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(who_am_i(&offline, Some(access)).await, Ok(user_id));
}

/// A service must say whose tokens it takes; and an auth-service that does not answer makes
/// a call fail within the fetch timeout instead of hanging it.
#[tokio::test]
async fn the_audience_is_required_and_an_unanswering_auth_service_is_bounded() {
    let (code, stderr) = run_to_exit(
        "whoami",
        &[
            ("WHOAMI_ADDR", "127.0.0.1:0".into()),
            ("AUTH_CALLER_KEY", "svc-0123456789abcdef0123".into()),
        ],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("WHOAMI_APPID"), "{stderr}");

    let stack = Stack::start().await;
    let token = stack.v1_login(APP, "o-hanging").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Each call to the auth-service is bounded (500 ms here, 5 s by default) and made three
    // times at most.
    let offline = start_whoami_with(
        &stack,
        "whoami-hanging",
        "offline",
        &silent_url,
        &[("WHOAMI_AUTH_TIMEOUT_MS", "500".into())],
    );
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        who_am_i(&offline, Some(&token)),
    )
    .await
    .expect("the call ends instead of hanging");
    assert_eq!(answered, Err(Code::Unavailable));
    drop(silent);
}
