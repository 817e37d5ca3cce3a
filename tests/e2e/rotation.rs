//! Two-phase key rotation: replicas mid-rotation (one already signing and sealing with the
//! new keys, one still with the old) accept each other's tokens and sessions, because every
//! replica got the new keys first.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use tonic::Code;
use wxauth_e2e::stack::{APP, Client, Stack};
use wxauth_proto::v1::{
    CompleteLoginRequest, CreateSessionRequest, DataKind, GetJwksRequest, LoginRequest,
    ValidateTokenRequest,
};

fn key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    STANDARD.encode(bytes)
}

async fn login(stack: &Stack, client: &mut Client, openid: &str) -> String {
    let code = stack.mint_code(APP, openid, None).await;
    client
        .login(LoginRequest {
            scope: String::new(),
            appid: APP.into(),
            code,
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
        .access_token
}

async fn validate(client: &mut Client, token: &str) -> Result<(), Code> {
    client
        .validate_token(ValidateTokenRequest {
            token: token.into(),
            appid: APP.into(),
        })
        .await
        .map(drop)
        .map_err(|status| status.code())
}

async fn session_here_completed_there(
    stack: &Stack,
    here: &mut Client,
    there: &mut Client,
    openid: &str,
) {
    let code = stack.mint_code(APP, openid, None).await;
    let session_id = here
        .create_session(CreateSessionRequest {
            appid: APP.into(),
            code,
        })
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let info = stack
        .user_info(APP, openid, serde_json::json!({"nickName": openid}))
        .await;
    let completed = there
        .complete_login(CompleteLoginRequest {
            appid: APP.into(),
            session_id,
            kind: DataKind::UserInfo.into(),
            encrypted_data: info["encryptedData"].as_str().unwrap().into(),
            iv: info["iv"].as_str().unwrap().into(),
            raw_data: None,
            signature: None,
        })
        .await;
    assert!(completed.is_ok(), "{openid}: {completed:?}");
}

#[tokio::test]
async fn replicas_mid_rotation_accept_each_others_tokens_and_sessions() {
    let stack = Stack::start().await;
    let session_keys = format!("old:{},new:{}", key(), key());
    let (old_signing, new_signing) = (key(), key());
    let signing_keys = format!("t-old:{old_signing},t-new:{new_signing}");
    let replica = |name: &str, session_kid: &str, signing_kid: &str| {
        stack.spawn_replica_with(
            name,
            &[
                ("WXAUTH_SESSION_KEY_KEYS", session_keys.clone()),
                ("WXAUTH_SESSION_KEY_KID", session_kid.into()),
                ("WXAUTH_TOKEN_SIGNING_KEYS", signing_keys.clone()),
                ("WXAUTH_TOKEN_SIGNING_KID", signing_kid.into()),
            ],
        )
    };
    let before = replica("not-rotated-yet", "old", "t-old");
    let after = replica("rotated", "new", "t-new");
    let gateway = Some(stack.keys.gateway.as_str());
    let service = Some(stack.keys.service.as_str());
    let (mut before_login, mut after_login) = (
        stack.grpc_to(&before, gateway).await,
        stack.grpc_to(&after, gateway).await,
    );
    let (mut before_check, mut after_check) = (
        stack.grpc_to(&before, service).await,
        stack.grpc_to(&after, service).await,
    );

    let old_token = login(&stack, &mut before_login, "o-rot-1").await;
    let new_token = login(&stack, &mut after_login, "o-rot-2").await;
    assert_eq!(wxauth_token::peek_kid(&old_token).as_deref(), Some("t-old"));
    assert_eq!(wxauth_token::peek_kid(&new_token).as_deref(), Some("t-new"));
    for (client, name) in [(&mut before_check, "before"), (&mut after_check, "after")] {
        assert_eq!(validate(client, &old_token).await, Ok(()), "{name}");
        assert_eq!(validate(client, &new_token).await, Ok(()), "{name}");
        let kids = client
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .kids;
        assert_eq!(kids, ["t-old", "t-new"], "{name} publishes both");
    }
    session_here_completed_there(&stack, &mut after_login, &mut before_login, "o-rot-3").await;
    session_here_completed_there(&stack, &mut before_login, &mut after_login, "o-rot-4").await;

    // Why the first phase must be finished everywhere: a replica that never got the new
    // signing key refuses what the rotated one signs.
    let stale = stack.spawn_replica_with(
        "without-the-new-key",
        &[("WXAUTH_TOKEN_SIGNING_KEYS", format!("t-old:{old_signing}"))],
    );
    let mut stale_check = stack.grpc_to(&stale, service).await;
    assert_eq!(validate(&mut stale_check, &old_token).await, Ok(()));
    assert_eq!(
        validate(&mut stale_check, &new_token).await,
        Err(Code::Unauthenticated)
    );
}
