//! The account-lifecycle RPCs (deletion, export, restore, status, finding users): their
//! requests checked into domain input, and their answers built. `service` routes to them.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use wxauth_proto::v1::{
    self, DeleteMeRequest, DeleteMeResponse, DeleteUserRequest, DeleteUserResponse,
    ExportMeRequest, ExportMeResponse, ExportUserRequest, ExportUserResponse, FindUsersRequest,
    FindUsersResponse, RestoreUserRequest, RestoreUserResponse, SetUserStatusRequest,
    SetUserStatusResponse, delete_user_request, find_users_request, set_user_status_request,
};

use super::{
    AuthApi,
    convert::{self, PhoneShown, timestamp, user_message},
};
use crate::{
    domain::{Bearer, CallContext, lifecycle::StatusChange},
    error::AuthError,
    lifecycle::Deletion,
    store::{Search, Target},
};

/// The longest reason an operator may give, in characters.
const MAX_REASON_CHARS: usize = 256;
/// How many users FindUsers answers when the caller does not say.
const DEFAULT_PAGE: i64 = 20;
/// The most it answers at once.
const MAX_PAGE: i64 = 100;
/// What a page token starts with, so a token of another listing is not taken for one.
const PAGE_PREFIX: &str = "users-after:";

fn bad(message: impl Into<String>) -> AuthError {
    AuthError::InvalidArgument(message.into())
}

/// A reason for the record: at most [`MAX_REASON_CHARS`] characters, no control characters.
fn reason(raw: &str) -> Result<String, AuthError> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_REASON_CHARS || trimmed.chars().any(char::is_control) {
        return Err(bad(
            "reason must be at most 256 characters without control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Who a DeleteUser or SetUserStatus is about.
fn target(user_id: Option<&str>, account_id: Option<&str>) -> Result<Target, AuthError> {
    match (user_id, account_id) {
        (Some(user_id), None) => Ok(Target::User(convert::user_id(user_id)?)),
        (None, Some(account_id)) => Ok(Target::Account(convert::account_id(account_id)?)),
        _ => Err(bad("give the user_id or the account_id")),
    }
}

fn deletion(deleted: Deletion) -> DeleteUserResponse {
    DeleteUserResponse {
        user_ids: deleted.user_ids.iter().map(i64::to_string).collect(),
        erased: deleted.erase_at.is_none(),
        erase_at: deleted.erase_at.and_then(timestamp),
    }
}

/// What SetUserStatus asks for.
fn status_change(req: &SetUserStatusRequest) -> Result<StatusChange, AuthError> {
    let reason = reason(&req.reason)?;
    match v1::UserStatus::try_from(req.status) {
        Ok(v1::UserStatus::Suspended) => Ok(StatusChange::Suspend {
            reason,
            until: req
                .until
                .as_ref()
                .map(|until| convert::instant("until", until))
                .transpose()?,
        }),
        Ok(v1::UserStatus::Active) if req.until.is_none() => Ok(StatusChange::Lift { reason }),
        Ok(v1::UserStatus::Active) => Err(bad("until goes with USER_STATUS_SUSPENDED only")),
        _ => Err(bad(
            "status must be USER_STATUS_SUSPENDED or USER_STATUS_ACTIVE (deletion is DeleteUser)",
        )),
    }
}

/// Text that names a user (an openid, a unionid): 1 to 128 printable ASCII characters.
fn id_text(field: &str, raw: &str) -> Result<String, AuthError> {
    if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(format!(
            "{field} must be 1 to 128 printable ASCII characters"
        )));
    }
    Ok(raw.to_owned())
}

/// What FindUsers searches by.
fn search(by: Option<find_users_request::By>) -> Result<Search, AuthError> {
    use find_users_request::By;
    match by {
        Some(By::Openid(query)) => Ok(Search::Openid {
            appid: convert::appid(&query.appid)?.as_str().to_owned(),
            openid: id_text("openid", &query.openid)?,
        }),
        Some(By::Unionid(unionid)) => Ok(Search::Unionid(id_text("unionid", &unionid)?)),
        Some(By::PhoneNumber(number)) => {
            if !(3..=20).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "phone_number must be the number without its country code: 3 to 20 digits",
                ));
            }
            Ok(Search::Phone(number))
        }
        Some(By::NicknamePrefix(query)) => {
            let chars = query.prefix.chars().count();
            if chars == 0 || chars > 64 || query.prefix.chars().any(char::is_control) {
                return Err(bad(
                    "nickname_prefix.prefix must be 1 to 64 characters without control characters",
                ));
            }
            Ok(Search::NicknamePrefix {
                appid: convert::appid(&query.appid)?.as_str().to_owned(),
                prefix: query.prefix,
            })
        }
        None => Err(bad(
            "give one of openid, unionid, phone_number or nickname_prefix",
        )),
    }
}

/// The user a page starts after.
fn page_after(token: &str) -> Result<i64, AuthError> {
    if token.is_empty() {
        return Ok(0);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(PAGE_PREFIX)?.parse::<i64>().ok())
        .filter(|after| *after > 0)
        .ok_or_else(|| bad("page_token is not one this service gave: pass next_page_token as is"))
}

fn page_token(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PAGE_PREFIX}{after}"))
}

fn page_limit(raw: i32) -> Result<i64, AuthError> {
    match raw {
        0 => Ok(DEFAULT_PAGE),
        1..=100 => Ok(i64::from(raw).min(MAX_PAGE)),
        _ => Err(bad("limit must be between 1 and 100 (0 means 20)")),
    }
}

impl AuthApi {
    pub(super) async fn delete_me_rpc(
        &self,
        req: DeleteMeRequest,
        context: CallContext,
    ) -> Result<DeleteMeResponse, AuthError> {
        let token = Bearer::parse("access_token", req.access_token)?;
        let deleted = deletion(self.lifecycle.delete_me(&token, &context).await?);
        Ok(DeleteMeResponse {
            erased: deleted.erased,
            erase_at: deleted.erase_at,
        })
    }

    pub(super) async fn export_me_rpc(
        &self,
        req: ExportMeRequest,
        context: CallContext,
    ) -> Result<ExportMeResponse, AuthError> {
        let token = Bearer::parse("access_token", req.access_token)?;
        Ok(ExportMeResponse {
            json: self.lifecycle.export_me(&token, &context).await?,
        })
    }

    pub(super) async fn delete_user_rpc(
        &self,
        req: DeleteUserRequest,
        context: CallContext,
    ) -> Result<DeleteUserResponse, AuthError> {
        use delete_user_request::Target as By;
        let target = match &req.target {
            Some(By::UserId(id)) => target(Some(id), None)?,
            Some(By::AccountId(id)) => target(None, Some(id))?,
            None => target(None, None)?,
        };
        let reason = reason(&req.reason)?;
        Ok(deletion(
            self.lifecycle
                .delete(target, &reason, req.immediately, &context)
                .await?,
        ))
    }

    pub(super) async fn restore_user_rpc(
        &self,
        req: RestoreUserRequest,
        context: CallContext,
    ) -> Result<RestoreUserResponse, AuthError> {
        let user = self
            .lifecycle
            .restore(convert::user_id(&req.user_id)?, &context)
            .await?;
        Ok(RestoreUserResponse {
            user: Some(user_message(user, PhoneShown::to(&context))),
        })
    }

    pub(super) async fn export_user_rpc(
        &self,
        req: ExportUserRequest,
        context: CallContext,
    ) -> Result<ExportUserResponse, AuthError> {
        let user_id = convert::user_id(&req.user_id)?;
        Ok(ExportUserResponse {
            json: self.lifecycle.export(user_id, &context).await?,
        })
    }

    pub(super) async fn set_user_status_rpc(
        &self,
        req: SetUserStatusRequest,
        context: CallContext,
    ) -> Result<SetUserStatusResponse, AuthError> {
        use set_user_status_request::Target as By;
        let target = match &req.target {
            Some(By::UserId(id)) => target(Some(id), None)?,
            Some(By::AccountId(id)) => target(None, Some(id))?,
            None => target(None, None)?,
        };
        let change = status_change(&req)?;
        let users = self.lifecycle.set_status(target, &change, &context).await?;
        let shown = PhoneShown::to(&context);
        Ok(SetUserStatusResponse {
            users: users
                .into_iter()
                .map(|user| user_message(user, shown))
                .collect(),
        })
    }

    pub(super) async fn find_users_rpc(
        &self,
        req: FindUsersRequest,
        context: CallContext,
    ) -> Result<FindUsersResponse, AuthError> {
        let limit = page_limit(req.limit)?;
        let after = page_after(&req.page_token)?;
        let search = search(req.by)?;
        let found = self.users.find(&search, after, limit, &context).await?;
        for user in &found.users {
            self.audit.read("FindUsers", Some(user.id), None, &context);
        }
        let shown = PhoneShown::to(&context);
        Ok(FindUsersResponse {
            users: found
                .users
                .into_iter()
                .map(|user| user_message(user, shown))
                .collect(),
            next_page_token: found.next_after.map(page_token).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_anything_else_is_refused() {
        assert_eq!(page_after("").unwrap(), 0);
        assert_eq!(page_after(&page_token(42)).unwrap(), 42);
        for bad in [
            "42",
            "users-after:42",
            &URL_SAFE_NO_PAD.encode("users-after:-1"),
            "!!",
        ] {
            assert!(page_after(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn searches_and_reasons_are_checked() {
        use find_users_request::By;
        assert!(search(None).is_err());
        assert!(search(Some(By::PhoneNumber("+8613800138000".into()))).is_err());
        assert!(search(Some(By::PhoneNumber("13800138000".into()))).is_ok());
        assert!(search(Some(By::Unionid(String::new()))).is_err());
        assert!(
            search(Some(By::NicknamePrefix(v1::NicknameQuery {
                appid: "wx4f4bc4dec97d474b".into(),
                prefix: "界".repeat(65),
            })))
            .is_err()
        );
        assert!(reason(&"x".repeat(257)).is_err());
        assert!(reason("line\nbreak").is_err());
        assert_eq!(reason("  spam  ").unwrap(), "spam");
        assert!(page_limit(101).is_err() && page_limit(-1).is_err());
        assert_eq!(page_limit(0).unwrap(), 20);
    }

    #[test]
    fn a_status_change_is_a_suspension_or_a_lift_only() {
        let req = |status: v1::UserStatus, until: Option<i64>| SetUserStatusRequest {
            target: None,
            status: status.into(),
            reason: "r".into(),
            until: until.map(|seconds| wxauth_proto::prost_types::Timestamp { seconds, nanos: 0 }),
        };
        assert!(matches!(
            status_change(&req(v1::UserStatus::Suspended, Some(2_000_000_000))),
            Ok(StatusChange::Suspend { until: Some(_), .. })
        ));
        assert!(matches!(
            status_change(&req(v1::UserStatus::Active, None)),
            Ok(StatusChange::Lift { .. })
        ));
        for bad in [
            req(v1::UserStatus::Active, Some(2_000_000_000)),
            req(v1::UserStatus::Deleted, None),
            req(v1::UserStatus::Unspecified, None),
        ] {
            assert!(status_change(&bad).is_err());
        }
    }
}
