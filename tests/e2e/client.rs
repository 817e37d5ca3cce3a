//! The client crate as an internal service uses it: the `whoami` example, run as a real
//! process, authenticates callers offline (JWKS) and online (ValidateToken).

use serde_json::json;
use tonic::{Code, metadata::AsciiMetadataValue, transport::Endpoint};
use whoami_example::pb::{WhoAmIRequest, who_am_i_client::WhoAmIClient};
use wxauth_e2e::{
    process::Proc,
    stack::{APP, Stack, envelope},
};

fn start_whoami(stack: &Stack, name: &str, mode: &str) -> Proc {
    Proc::spawn_named(
        "whoami",
        name,
        &[
            ("WHOAMI_ADDR", "127.0.0.1:0".into()),
            ("AUTH_GRPC_URL", stack.auth.url()),
            ("AUTH_CALLER_KEY", stack.keys.service.clone()),
            ("WHOAMI_VERIFY", mode.into()),
        ],
        &std::env::temp_dir(),
    )
}

async fn who_am_i(service: &Proc, bearer: Option<&str>) -> Result<String, Code> {
    let channel = Endpoint::from_shared(service.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(WhoAmIRequest {});
    if let Some(token) = bearer {
        let value: AsciiMetadataValue = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
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

    for service in [&offline, &online] {
        assert_eq!(who_am_i(service, Some(access)).await, Ok(user_id.clone()));
        assert_eq!(
            who_am_i(service, None).await,
            Err(Code::Unauthenticated),
            "no token"
        );
        assert_eq!(
            who_am_i(service, Some("forged.token.value")).await,
            Err(Code::Unauthenticated)
        );
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
