//! Who may call what: every RPC refuses a call with no key or an unknown key
//! (UNAUTHENTICATED) and one whose key lacks the scope (PERMISSION_DENIED).

use tonic::Code;
use tonic_types::StatusExt;
use wxauth_e2e::stack::{Client, Stack};
use wxauth_proto::v1::{
    BindPhoneNumberRequest, CheckSessionKeyRequest, CompleteLoginRequest, CreateSessionRequest,
    GetJwksRequest, GetMeRequest, GetUserRequest, ListAccountUsersRequest,
    ListAppAccessTokensRequest, ListAuditEventsRequest, LoginRequest, LogoutRequest,
    RefreshTokenRequest, ResetSessionKeyRequest, RevokeUserSessionsRequest, UpdateProfileRequest,
    ValidateTokenRequest,
};
use wxauth_proto::wire::CALLER_KEY_HEADER;

/// Calls RPC number `rpc` with empty input; returns the status (Ok for success).
async fn call(client: &mut Client, rpc: &str) -> Result<(), tonic::Status> {
    match rpc {
        "CreateSession" => client
            .create_session(CreateSessionRequest::default())
            .await
            .map(drop),
        "CompleteLogin" => client
            .complete_login(CompleteLoginRequest::default())
            .await
            .map(drop),
        "Login" => client.login(LoginRequest::default()).await.map(drop),
        "RefreshToken" => client
            .refresh_token(RefreshTokenRequest::default())
            .await
            .map(drop),
        "Logout" => client.logout(LogoutRequest::default()).await.map(drop),
        "GetMe" => client.get_me(GetMeRequest::default()).await.map(drop),
        "UpdateProfile" => client
            .update_profile(UpdateProfileRequest::default())
            .await
            .map(drop),
        "BindPhoneNumber" => client
            .bind_phone_number(BindPhoneNumberRequest::default())
            .await
            .map(drop),
        "ListAppAccessTokens" => client
            .list_app_access_tokens(ListAppAccessTokensRequest::default())
            .await
            .map(drop),
        "CheckSessionKey" => client
            .check_session_key(CheckSessionKeyRequest::default())
            .await
            .map(drop),
        "ResetSessionKey" => client
            .reset_session_key(ResetSessionKeyRequest::default())
            .await
            .map(drop),
        "ListAccountUsers" => client
            .list_account_users(ListAccountUsersRequest::default())
            .await
            .map(drop),
        "ListAuditEvents" => client
            .list_audit_events(ListAuditEventsRequest::default())
            .await
            .map(drop),
        "ValidateToken" => client
            .validate_token(ValidateTokenRequest::default())
            .await
            .map(drop),
        "GetJwks" => client.get_jwks(GetJwksRequest::default()).await.map(drop),
        "GetUser" => client.get_user(GetUserRequest::default()).await.map(drop),
        "RevokeUserSessions" => client
            .revoke_user_sessions(RevokeUserSessionsRequest::default())
            .await
            .map(drop),
        other => panic!("no rpc {other}"),
    }
}

#[tokio::test]
async fn every_rpc_needs_a_known_caller_with_the_right_scope() {
    let stack = Stack::start().await;
    let mut anonymous = stack.grpc_as(None).await;
    let mut stranger = stack.grpc_as(Some("stranger-key-0123456789abcdef")).await;
    let mut gateway = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let mut service = stack.grpc_as(Some(&stack.keys.service)).await;
    let mut ops = stack.grpc_as(Some(&stack.keys.ops)).await;

    // (rpc, which callers may call it: gateway, service, ops)
    let table = [
        ("CreateSession", [true, false, false]),
        ("CompleteLogin", [true, false, false]),
        ("Login", [true, false, false]),
        ("RefreshToken", [true, false, false]),
        ("Logout", [true, false, false]),
        ("GetMe", [true, false, false]),
        ("UpdateProfile", [true, false, false]),
        ("ListAuditEvents", [false, false, true]),
        ("BindPhoneNumber", [true, false, false]),
        ("ListAppAccessTokens", [false, false, true]),
        ("CheckSessionKey", [false, true, true]),
        ("ResetSessionKey", [false, false, true]),
        ("ListAccountUsers", [false, false, true]),
        ("ValidateToken", [false, true, true]),
        ("GetJwks", [true, true, true]),
        ("GetUser", [false, false, true]),
        ("RevokeUserSessions", [false, false, true]),
    ];
    for (rpc, allowed) in table {
        for (who, client) in [("no key", &mut anonymous), ("unknown key", &mut stranger)] {
            let status = call(client, rpc).await.expect_err(rpc);
            assert_eq!(status.code(), Code::Unauthenticated, "{rpc} with {who}");
            assert_eq!(
                status.get_error_details().error_info().unwrap().reason,
                "CALLER_UNAUTHENTICATED",
                "{rpc} with {who}"
            );
        }
        for ((who, client), may) in [
            ("gateway", &mut gateway),
            ("service", &mut service),
            ("ops", &mut ops),
        ]
        .into_iter()
        .zip(allowed)
        {
            let result = call(client, rpc).await;
            if may {
                // Allowed callers get past the key check: success, or a refusal of the
                // (empty) input, never a caller error.
                if let Err(status) = result {
                    let reason = status
                        .get_error_details()
                        .error_info()
                        .map(|info| info.reason.clone())
                        .unwrap_or_default();
                    assert!(!reason.starts_with("CALLER_"), "{rpc} as {who}: {status:?}");
                }
            } else {
                let status = result.expect_err(rpc);
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc} as {who}");
                assert_eq!(
                    status.get_error_details().error_info().unwrap().reason,
                    "CALLER_FORBIDDEN",
                    "{rpc} as {who}"
                );
            }
        }
    }
    // Health and reflection stay open for grpcurl and orchestrators.
    let mut health = tonic_health::pb::health_client::HealthClient::new(stack.channel().await);
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
    );
}

/// Two caller keys on one call are refused, whichever comes first and even when one of them
/// may make the call: the service never picks one of two credentials.
#[tokio::test]
async fn a_call_with_two_caller_keys_is_refused() {
    let stack = Stack::start().await;
    let mut anonymous = stack.grpc_as(None).await;
    let service = stack.keys.service.as_str();
    let stranger = "stranger-key-0123456789abcdef";
    let presenting = |keys: &[&str]| {
        let mut request = tonic::Request::new(ValidateTokenRequest::default());
        for key in keys {
            request
                .metadata_mut()
                .append(CALLER_KEY_HEADER, key.parse().unwrap());
        }
        request
    };
    for keys in [[service, stranger], [stranger, service], [service, service]] {
        let status = anonymous
            .validate_token(presenting(&keys))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{keys:?}");
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "CALLER_UNAUTHENTICATED"
        );
        assert!(status.message().contains("one caller key"), "{status:?}");
    }
    // The same key once gets past the key check (and on to the empty token).
    let status = anonymous
        .validate_token(presenting(&[service]))
        .await
        .expect_err("empty token");
    assert_ne!(
        status.get_error_details().error_info().unwrap().reason,
        "CALLER_UNAUTHENTICATED"
    );
}
