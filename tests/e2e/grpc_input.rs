//! Every string field of every RPC, given text no client should send (NULs, control and
//! bidi characters, quotes, 100 KB), answers with a status that names the input, never
//! INTERNAL or UNKNOWN, and the service keeps serving.

use tonic::Code;
use wxauth_e2e::stack::{APP, Stack};
use wxauth_proto::v1::{
    BindPhoneNumberRequest, CheckSessionKeyRequest, CompleteLoginRequest, CreateSessionRequest,
    DataKind, GetMeRequest, GetUserRequest, ListAccountUsersRequest, ListAuditEventsRequest,
    LoginRequest, LogoutRequest, RefreshTokenRequest, ResetSessionKeyRequest,
    RevokeUserSessionsRequest, UpdateProfileRequest, ValidateTokenRequest,
};

fn odd_texts() -> Vec<String> {
    vec![
        String::new(),
        "\0".into(),
        "a\0b".into(),
        "\n\r\t".into(),
        "\u{202e}gnp.exe".into(),
        "😀".into(),
        "' or 1=1 --".into(),
        "-1".into(),
        "9223372036854775808".into(),
        "x".repeat(100_000),
    ]
}

/// The statuses an odd input may get: it names the input or the caller's standing.
fn acceptable(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
    )
}

#[tokio::test]
async fn odd_text_in_any_field_is_refused_by_name_never_internal() {
    let stack = Stack::start().await;
    let login = stack.v1_login(APP, "o-odd").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let mut login_calls = stack.grpc_as(Some(&stack.keys.gateway)).await;
    let mut admin_calls = stack.grpc_as(Some(&stack.keys.ops)).await;

    let mut answers: Vec<(String, Result<(), tonic::Status>)> = Vec::new();
    macro_rules! call {
        ($client:expr, $method:ident, $case:expr, $request:expr) => {
            answers.push((
                format!("{} {}", stringify!($method), $case),
                $client.$method($request).await.map(drop),
            ))
        };
    }
    for (n, odd) in odd_texts().into_iter().enumerate() {
        let case = format!("#{n}");
        call!(
            login_calls,
            create_session,
            &case,
            CreateSessionRequest {
                appid: odd.clone(),
                code: "c".into()
            }
        );
        call!(
            login_calls,
            create_session,
            &case,
            CreateSessionRequest {
                appid: APP.into(),
                code: odd.clone()
            }
        );
        call!(
            login_calls,
            login,
            &case,
            LoginRequest {
                scope: String::new(),
                appid: APP.into(),
                code: odd.clone()
            }
        );
        for (field, request) in [
            (
                "appid",
                CompleteLoginRequest {
                    appid: odd.clone(),
                    session_id: "s".into(),
                    ..complete()
                },
            ),
            (
                "session_id",
                CompleteLoginRequest {
                    session_id: odd.clone(),
                    ..complete()
                },
            ),
            (
                "encrypted_data",
                CompleteLoginRequest {
                    encrypted_data: odd.clone(),
                    ..complete()
                },
            ),
            (
                "iv",
                CompleteLoginRequest {
                    iv: odd.clone(),
                    ..complete()
                },
            ),
            (
                "raw_data",
                CompleteLoginRequest {
                    raw_data: Some(odd.clone()),
                    signature: Some("ab".into()),
                    ..complete()
                },
            ),
            (
                "signature",
                CompleteLoginRequest {
                    raw_data: Some("{}".into()),
                    signature: Some(odd.clone()),
                    ..complete()
                },
            ),
        ] {
            call!(
                login_calls,
                complete_login,
                format!("{case} {field}"),
                request
            );
        }
        call!(
            login_calls,
            refresh_token,
            &case,
            RefreshTokenRequest {
                scope: String::new(),
                refresh_token: odd.clone()
            }
        );
        call!(
            login_calls,
            logout,
            &case,
            LogoutRequest {
                access_token: odd.clone(),
                refresh_token: String::new()
            }
        );
        call!(
            login_calls,
            logout,
            &case,
            LogoutRequest {
                access_token: String::new(),
                refresh_token: odd.clone()
            }
        );
        call!(
            login_calls,
            get_me,
            &case,
            GetMeRequest {
                access_token: odd.clone()
            }
        );
        // A nickname may be almost any text: only an answer other than OK or
        // INVALID_ARGUMENT is wrong here.
        let nickname = login_calls
            .update_profile(UpdateProfileRequest {
                access_token: token.clone(),
                nickname: Some(odd.clone()),
                avatar_url: None,
            })
            .await;
        if let Err(status) = nickname {
            answers.push((format!("update_profile nickname {case}"), Err(status)));
        }
        call!(
            login_calls,
            update_profile,
            &case,
            UpdateProfileRequest {
                access_token: token.clone(),
                nickname: None,
                avatar_url: Some(odd.clone())
            }
        );
        call!(
            login_calls,
            bind_phone_number,
            &case,
            BindPhoneNumberRequest {
                access_token: token.clone(),
                code: odd.clone()
            }
        );
        call!(
            admin_calls,
            validate_token,
            &case,
            ValidateTokenRequest {
                token: odd.clone(),
                appid: String::new()
            }
        );
        if !odd.is_empty() {
            // An empty appid asks for no audience check.
            call!(
                admin_calls,
                validate_token,
                &case,
                ValidateTokenRequest {
                    token: token.clone(),
                    appid: odd.clone()
                }
            );
        }
        call!(
            admin_calls,
            get_user,
            &case,
            GetUserRequest {
                user_id: odd.clone()
            }
        );
        call!(
            admin_calls,
            revoke_user_sessions,
            &case,
            RevokeUserSessionsRequest {
                user_id: odd.clone()
            }
        );
        if !odd.is_empty() {
            // An empty user_id lists every user's events.
            call!(
                admin_calls,
                list_audit_events,
                &case,
                ListAuditEventsRequest {
                    user_id: odd.clone(),
                    ..ListAuditEventsRequest::default()
                }
            );
        }
        call!(
            admin_calls,
            list_audit_events,
            &case,
            ListAuditEventsRequest {
                kinds: vec![odd.clone()],
                ..ListAuditEventsRequest::default()
            }
        );
        call!(
            admin_calls,
            list_account_users,
            &case,
            ListAccountUsersRequest {
                account_id: odd.clone()
            }
        );
        call!(
            admin_calls,
            check_session_key,
            &case,
            CheckSessionKeyRequest {
                user_id: odd.clone()
            }
        );
        call!(
            admin_calls,
            reset_session_key,
            &case,
            ResetSessionKeyRequest {
                user_id: odd.clone()
            }
        );
    }

    let wrong: Vec<String> = answers
        .iter()
        .filter_map(|(case, answer)| match answer {
            Err(status) if acceptable(status.code()) && !status.message().is_empty() => None,
            Err(status) => Some(format!(
                "{case}: {:?} {:?}",
                status.code(),
                status.message()
            )),
            Ok(()) => Some(format!("{case}: accepted")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answers:\n{}",
        wrong.len(),
        answers.len(),
        wrong.join("\n")
    );

    // Still serving, the user untouched.
    let me = login_calls
        .get_me(GetMeRequest {
            access_token: token,
        })
        .await
        .expect("the service still serves the user");
    assert!(me.into_inner().user.is_some());
}

fn complete() -> CompleteLoginRequest {
    CompleteLoginRequest {
        appid: APP.into(),
        session_id: "s".into(),
        kind: DataKind::UserInfo.into(),
        encrypted_data: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
        iv: "AAAAAAAAAAAAAAAAAAAAAA==".into(),
        raw_data: None,
        signature: None,
    }
}
