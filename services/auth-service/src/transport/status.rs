//! The one mapping from [`AuthError`] to what a gRPC caller sees: a code, a
//! `google.rpc.ErrorInfo` reason (with WeChat's errcode when WeChat caused it) and a message
//! it can act on. Internal causes are logged under the request id, never sent.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{error, info, warn};
use wxauth_proto::{ERROR_DOMAIN, WECHAT_ERRCODE_KEY, v1::ErrorReason};

use crate::error::AuthError;

/// The gRPC code and reason of each error. Exhaustive, with no wildcard: a new variant does
/// not compile until it is given its place here.
pub fn classify(err: &AuthError) -> (Code, ErrorReason) {
    match err {
        AuthError::InvalidArgument(_) => (Code::InvalidArgument, ErrorReason::InvalidArgument),
        AuthError::UnknownApp => (Code::NotFound, ErrorReason::UnknownApp),
        AuthError::SessionNotFound => (Code::Unauthenticated, ErrorReason::SessionNotFound),
        AuthError::CodeRejected { .. } => (Code::Unauthenticated, ErrorReason::CodeRejected),
        AuthError::CodeAlreadyUsed => (Code::Unauthenticated, ErrorReason::CodeAlreadyUsed),
        AuthError::LoginBlocked { .. } => (Code::PermissionDenied, ErrorReason::LoginBlocked),
        AuthError::RateLimited { .. } => (Code::ResourceExhausted, ErrorReason::RateLimited),
        AuthError::WeChatMisconfigured { .. } => {
            (Code::FailedPrecondition, ErrorReason::WechatMisconfigured)
        }
        AuthError::WeChatUnavailable { .. } => (Code::Unavailable, ErrorReason::WechatUnavailable),
        AuthError::WeChatFailed { .. } => (Code::Unknown, ErrorReason::WechatError),
        AuthError::PhoneCodeRejected { .. } => {
            (Code::FailedPrecondition, ErrorReason::PhoneCodeRejected)
        }
        AuthError::SessionKeyInvalid => (Code::FailedPrecondition, ErrorReason::SessionKeyInvalid),
        AuthError::QuotaExceeded { .. } => (Code::ResourceExhausted, ErrorReason::RateLimited),
        AuthError::WeChatApiUnavailable { .. } => {
            (Code::Unavailable, ErrorReason::WechatUnavailable)
        }
        AuthError::DecryptionFailed => (Code::InvalidArgument, ErrorReason::DecryptionFailed),
        AuthError::SignatureMismatch => (Code::InvalidArgument, ErrorReason::SignatureMismatch),
        AuthError::TokenInvalid => (Code::Unauthenticated, ErrorReason::TokenInvalid),
        AuthError::TokenExpired => (Code::Unauthenticated, ErrorReason::TokenExpired),
        AuthError::CallerUnauthenticated => {
            (Code::Unauthenticated, ErrorReason::CallerUnauthenticated)
        }
        AuthError::CallerForbidden { .. } => (Code::PermissionDenied, ErrorReason::CallerForbidden),
        AuthError::UserNotFound => (Code::NotFound, ErrorReason::UserNotFound),
        AuthError::AccountSuspended => (Code::PermissionDenied, ErrorReason::AccountSuspended),
        AuthError::UserDeleted => (Code::NotFound, ErrorReason::UserDeleted),
        AuthError::NicknameRejected => (Code::InvalidArgument, ErrorReason::NicknameRejected),
        AuthError::AppForbidden => (Code::PermissionDenied, ErrorReason::AppForbidden),
        AuthError::NotDeleting => (Code::FailedPrecondition, ErrorReason::NotDeleting),
        AuthError::PhoneCodeAlreadyUsed => {
            (Code::FailedPrecondition, ErrorReason::PhoneCodeRejected)
        }
        AuthError::InvalidScope(_) => (Code::InvalidArgument, ErrorReason::InvalidScope),
        AuthError::Unavailable(_) => (Code::Unavailable, ErrorReason::ServiceUnavailable),
        AuthError::Internal(_) => (Code::Internal, ErrorReason::Internal),
    }
}

/// Turns an error into the `Status` a caller sees, logging it with the request id.
pub fn to_status(err: AuthError, request_id: &str) -> Status {
    let (code, reason) = classify(&err);
    let mut metadata = HashMap::new();
    if let Some(errcode) = err.wechat_errcode() {
        metadata.insert(WECHAT_ERRCODE_KEY.to_owned(), errcode.to_string());
    }
    let message = match &err {
        AuthError::Unavailable(cause) => {
            warn!(reason = reason.as_str_name(), cause = %error_chain(cause.as_ref()), "database unavailable");
            err.to_string()
        }
        AuthError::Internal(cause) => {
            error!(reason = reason.as_str_name(), cause = %error_chain(cause.as_ref()), "request failed");
            format!(
                "internal error; the auth-service logs have the cause under request id {request_id}"
            )
        }
        _ => {
            info!(reason = reason.as_str_name(), "request refused");
            err.to_string()
        }
    };
    let mut details = ErrorDetails::with_error_info(reason.as_str_name(), ERROR_DOMAIN, metadata);
    if let Some(delay) = err.retry_after() {
        details.set_retry_info(Some(delay));
    }
    Status::with_error_details(code, message, details)
}

pub use wxauth_process::logging::error_chain;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use wxauth_wechat::Errcode;

    use super::*;

    /// What each variant must map to, and a number of its own. The `match` has no wildcard,
    /// so a new variant does not compile until it is given its expectation here; and the
    /// numbers of the samples below must cover every arm, so it must be given a sample too.
    fn expected(err: &AuthError) -> (usize, Code, ErrorReason) {
        match err {
            AuthError::InvalidArgument(_) => {
                (0, Code::InvalidArgument, ErrorReason::InvalidArgument)
            }
            AuthError::UnknownApp => (1, Code::NotFound, ErrorReason::UnknownApp),
            AuthError::SessionNotFound => (2, Code::Unauthenticated, ErrorReason::SessionNotFound),
            AuthError::CodeRejected { .. } => (3, Code::Unauthenticated, ErrorReason::CodeRejected),
            AuthError::CodeAlreadyUsed => (4, Code::Unauthenticated, ErrorReason::CodeAlreadyUsed),
            AuthError::LoginBlocked { .. } => {
                (5, Code::PermissionDenied, ErrorReason::LoginBlocked)
            }
            AuthError::RateLimited { .. } => (6, Code::ResourceExhausted, ErrorReason::RateLimited),
            AuthError::WeChatMisconfigured { .. } => (
                7,
                Code::FailedPrecondition,
                ErrorReason::WechatMisconfigured,
            ),
            AuthError::WeChatUnavailable { .. } => {
                (8, Code::Unavailable, ErrorReason::WechatUnavailable)
            }
            AuthError::WeChatFailed { .. } => (9, Code::Unknown, ErrorReason::WechatError),
            AuthError::DecryptionFailed => {
                (10, Code::InvalidArgument, ErrorReason::DecryptionFailed)
            }
            AuthError::SignatureMismatch => {
                (11, Code::InvalidArgument, ErrorReason::SignatureMismatch)
            }
            AuthError::TokenInvalid => (12, Code::Unauthenticated, ErrorReason::TokenInvalid),
            AuthError::TokenExpired => (13, Code::Unauthenticated, ErrorReason::TokenExpired),
            AuthError::CallerUnauthenticated => (
                14,
                Code::Unauthenticated,
                ErrorReason::CallerUnauthenticated,
            ),
            AuthError::CallerForbidden { .. } => {
                (15, Code::PermissionDenied, ErrorReason::CallerForbidden)
            }
            AuthError::UserNotFound => (16, Code::NotFound, ErrorReason::UserNotFound),
            AuthError::Unavailable(_) => (17, Code::Unavailable, ErrorReason::ServiceUnavailable),
            AuthError::Internal(_) => (18, Code::Internal, ErrorReason::Internal),
            AuthError::PhoneCodeRejected { .. } => {
                (19, Code::FailedPrecondition, ErrorReason::PhoneCodeRejected)
            }
            AuthError::SessionKeyInvalid => {
                (20, Code::FailedPrecondition, ErrorReason::SessionKeyInvalid)
            }
            AuthError::WeChatApiUnavailable { .. } => {
                (21, Code::Unavailable, ErrorReason::WechatUnavailable)
            }
            AuthError::QuotaExceeded { .. } => {
                (22, Code::ResourceExhausted, ErrorReason::RateLimited)
            }
            AuthError::AccountSuspended => {
                (23, Code::PermissionDenied, ErrorReason::AccountSuspended)
            }
            AuthError::UserDeleted => (24, Code::NotFound, ErrorReason::UserDeleted),
            AuthError::NicknameRejected => {
                (25, Code::InvalidArgument, ErrorReason::NicknameRejected)
            }
            AuthError::AppForbidden => (26, Code::PermissionDenied, ErrorReason::AppForbidden),
            AuthError::NotDeleting => (27, Code::FailedPrecondition, ErrorReason::NotDeleting),
            AuthError::PhoneCodeAlreadyUsed => {
                (28, Code::FailedPrecondition, ErrorReason::PhoneCodeRejected)
            }
            AuthError::InvalidScope(_) => (29, Code::InvalidArgument, ErrorReason::InvalidScope),
        }
    }

    fn samples() -> Vec<AuthError> {
        let errcode = Errcode::InvalidCode;
        vec![
            AuthError::InvalidArgument("x".into()),
            AuthError::UnknownApp,
            AuthError::SessionNotFound,
            AuthError::CodeRejected { errcode },
            AuthError::CodeAlreadyUsed,
            AuthError::LoginBlocked { errcode },
            AuthError::RateLimited { errcode },
            AuthError::WeChatMisconfigured { errcode },
            AuthError::WeChatUnavailable {
                errcode: None,
                what: "busy",
            },
            AuthError::WeChatFailed { errcode: None },
            AuthError::DecryptionFailed,
            AuthError::SignatureMismatch,
            AuthError::TokenInvalid,
            AuthError::TokenExpired,
            AuthError::CallerUnauthenticated,
            AuthError::CallerForbidden {
                method: "GetUser",
                scope: "admin",
            },
            AuthError::UserNotFound,
            AuthError::Unavailable(Box::new(std::io::Error::other("down"))),
            AuthError::internal(std::io::Error::other("disk")),
            AuthError::PhoneCodeRejected { errcode },
            AuthError::SessionKeyInvalid,
            AuthError::WeChatApiUnavailable {
                errcode: None,
                what: "busy",
            },
            AuthError::QuotaExceeded {
                retry_after_secs: 1,
            },
            AuthError::AccountSuspended,
            AuthError::UserDeleted,
            AuthError::NicknameRejected,
            AuthError::AppForbidden,
            AuthError::NotDeleting,
            AuthError::PhoneCodeAlreadyUsed,
            AuthError::InvalidScope("scope".into()),
        ]
    }

    /// A caller told "retry later" is told when: every UNAVAILABLE and every rate limit
    /// carries a RetryInfo, and nothing a retry cannot cure does.
    #[test]
    fn every_transient_error_says_when_to_retry() {
        for err in samples() {
            let code = classify(&err).0;
            let transient = matches!(err, AuthError::WeChatFailed { .. })
                || matches!(code, Code::Unavailable | Code::ResourceExhausted);
            let status = to_status(err, "rid");
            let delay = status
                .get_error_details()
                .retry_info()
                .and_then(|info| info.retry_delay);
            assert_eq!(delay.is_some(), transient, "{status:?}");
        }
        let quota = to_status(
            AuthError::QuotaExceeded {
                retry_after_secs: 7,
            },
            "rid",
        );
        let wechat_limit = to_status(
            AuthError::RateLimited {
                errcode: Errcode::RateLimited,
            },
            "rid",
        );
        let delays = [quota, wechat_limit].map(|status| {
            status
                .get_error_details()
                .retry_info()
                .and_then(|info| info.retry_delay)
        });
        assert_eq!(
            delays,
            [
                Some(std::time::Duration::from_secs(7)),
                Some(std::time::Duration::from_secs(60))
            ]
        );
    }

    #[test]
    fn every_error_has_its_code_and_reason() {
        let mut covered = BTreeSet::new();
        for err in samples() {
            let (arm, code, reason) = expected(&err);
            assert_eq!(classify(&err), (code, reason), "{err:?}");
            // OUT_OF_RANGE is the codec's refusal of an oversized message, which the edge
            // turns into RESOURCE_EXHAUSTED (`limits`): no error of ours may use it.
            assert_ne!(code, Code::OutOfRange, "{err:?}");
            covered.insert(arm);
        }
        let highest = covered.iter().max().copied().unwrap_or_default();
        assert_eq!(
            covered,
            (0..=highest).collect(),
            "every variant has a sample"
        );
    }

    #[test]
    fn wechat_errcodes_map_to_what_the_caller_must_do() {
        use wxauth_wechat::WeChatError;
        let cases = [
            (-1, ErrorReason::WechatUnavailable),
            (40029, ErrorReason::CodeRejected),
            (40163, ErrorReason::CodeRejected),
            (45011, ErrorReason::RateLimited),
            (40226, ErrorReason::LoginBlocked),
            (40013, ErrorReason::WechatMisconfigured),
            (40125, ErrorReason::WechatMisconfigured),
            (61099, ErrorReason::WechatError),
        ];
        for (raw, reason) in cases {
            let err = AuthError::from(WeChatError::Api {
                errcode: Errcode::from_raw(raw),
            });
            assert_eq!(classify(&err).1, reason, "errcode {raw}");
            assert_eq!(
                err.wechat_errcode().map(Errcode::raw),
                Some(raw),
                "errcode {raw} is kept"
            );
        }
    }

    #[test]
    fn errcodes_of_calls_made_with_the_access_token_mean_their_own_things() {
        use wxauth_wechat::WeChatError;
        let cases = [
            (-1, ErrorReason::WechatUnavailable),
            (40029, ErrorReason::PhoneCodeRejected),
            (45011, ErrorReason::RateLimited),
            (87009, ErrorReason::SessionKeyInvalid),
            (40013, ErrorReason::WechatMisconfigured),
            (40001, ErrorReason::WechatError),
            (61099, ErrorReason::WechatError),
        ];
        for (raw, reason) in cases {
            let err = AuthError::from_app_token_call(WeChatError::Api {
                errcode: Errcode::from_raw(raw),
            });
            assert_eq!(classify(&err).1, reason, "errcode {raw}");
            assert_eq!(err.wechat_errcode().map(Errcode::raw), Some(raw));
        }
    }

    #[test]
    fn an_internal_error_reaches_the_client_as_a_request_id_only() {
        let status = to_status(
            AuthError::internal(std::io::Error::other("password=hunter2")),
            "rid-1",
        );
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("rid-1"));
        assert!(!status.message().contains("hunter2"));
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }
}
