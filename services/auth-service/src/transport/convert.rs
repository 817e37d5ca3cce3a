//! Requests into checked domain input (every field checked here, once), and domain results
//! into messages.

use wxauth_proto::{
    prost_types::Timestamp,
    v1::{self, CompleteLoginRequest, ListAuditEventsRequest, LogoutRequest},
};
use wxauth_wechat::{AppId, JsCode};

use crate::{
    domain::{
        AuditEvent, AuditFilter, AuditKind, Bearer, CallContext, NicknameCheck, TokenStatus, User,
        lifecycle::Status,
    },
    error::AuthError,
    login::{CompleteRequest, DataKind, SignedRawData},
    tokens::{LogoutBy, TokenPair},
    wechat_calls::KeyState,
};

/// The appid of a request.
pub fn appid(raw: &str) -> Result<AppId, AuthError> {
    Ok(AppId::parse("appid", raw)?)
}

/// The `wx.login()` code of a request.
pub fn code(raw: &str) -> Result<JsCode, AuthError> {
    Ok(JsCode::parse("code", raw)?)
}

/// A user id as `ValidateToken` returned it.
pub fn user_id(raw: &str) -> Result<i64, AuthError> {
    raw.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        AuthError::InvalidArgument("user_id must be a positive decimal number".into())
    })
}

/// An account id as the API gives it.
pub fn account_id(raw: &str) -> Result<i64, AuthError> {
    raw.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        AuthError::InvalidArgument("account_id must be a positive decimal number".into())
    })
}

/// The appid a token must have been issued for; empty means any.
pub fn audience(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then_some(raw)
}

fn required(field: &'static str, value: String) -> Result<String, AuthError> {
    if value.is_empty() {
        Err(AuthError::InvalidArgument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

fn data_kind(raw: i32) -> Result<DataKind, AuthError> {
    match v1::DataKind::try_from(raw) {
        Ok(v1::DataKind::UserInfo) => Ok(DataKind::UserInfo),
        Ok(v1::DataKind::Phone) => Ok(DataKind::Phone),
        Ok(v1::DataKind::Unspecified) | Err(_) => Err(AuthError::InvalidArgument(
            "kind must be DATA_KIND_USER_INFO or DATA_KIND_PHONE".into(),
        )),
    }
}

/// rawData and signature go together; empty strings count as absent.
fn signed_raw_data(
    raw_data: Option<String>,
    signature: Option<String>,
) -> Result<Option<SignedRawData>, AuthError> {
    match (
        raw_data.filter(|text| !text.is_empty()),
        signature.filter(|text| !text.is_empty()),
    ) {
        (Some(raw_data), Some(signature)) => Ok(Some(SignedRawData {
            raw_data,
            signature,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(AuthError::InvalidArgument(
            "rawData was sent without its signature: send both or neither".into(),
        )),
        (None, Some(_)) => Err(AuthError::InvalidArgument(
            "signature was sent without rawData: send both or neither".into(),
        )),
    }
}

/// A `CompleteLogin` request, every field checked.
pub fn complete_request(req: CompleteLoginRequest) -> Result<CompleteRequest, AuthError> {
    let appid = appid(&req.appid)?;
    let session_id = Bearer::parse("session_id", req.session_id)?;
    let encrypted_data = required("encryptedData", req.encrypted_data)?;
    let iv = required("iv", req.iv)?;
    let kind = data_kind(req.kind)?;
    let signed_raw_data = signed_raw_data(req.raw_data, req.signature)?;
    if kind == DataKind::Phone && signed_raw_data.is_some() {
        return Err(AuthError::InvalidArgument(
            "rawData and signature come with wx.getUserInfo(), not with a phone number: omit them"
                .into(),
        ));
    }
    Ok(CompleteRequest {
        appid,
        session_id,
        kind,
        encrypted_data,
        iv,
        signed_raw_data,
    })
}

/// Which session a `Logout` ends: by access token, else by refresh token.
pub fn logout(req: LogoutRequest) -> Result<LogoutBy, AuthError> {
    if !req.access_token.is_empty() {
        Ok(LogoutBy::AccessToken(Bearer::parse(
            "access_token",
            req.access_token,
        )?))
    } else if !req.refresh_token.is_empty() {
        Ok(LogoutBy::RefreshToken(Bearer::parse(
            "refresh_token",
            req.refresh_token,
        )?))
    } else {
        Err(AuthError::InvalidArgument(
            "give the access_token or the refresh_token of the session to end".into(),
        ))
    }
}

/// The events a `ListAuditEvents` asks for.
pub fn audit_filter(req: &ListAuditEventsRequest) -> Result<AuditFilter, AuthError> {
    let limit = match req.limit {
        0 => 50,
        1..=500 => i64::from(req.limit),
        _ => {
            return Err(AuthError::InvalidArgument(
                "limit must be between 1 and 500 (0 means 50)".into(),
            ));
        }
    };
    if req.before_event_id < 0 {
        return Err(AuthError::InvalidArgument(
            "before_event_id must not be negative".into(),
        ));
    }
    let kinds = req
        .kinds
        .iter()
        .map(|name| {
            AuditKind::parse(name).ok_or_else(|| {
                AuthError::InvalidArgument(format!(
                    "kinds: {name:?} is not a kind of event; the kinds are {}",
                    AuditKind::ALL.map(AuditKind::name).join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let since = req
        .since
        .as_ref()
        .map(|at| instant("since", at))
        .transpose()?;
    let until = req
        .until
        .as_ref()
        .map(|at| instant("until", at))
        .transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(AuthError::InvalidArgument(
            "since must be before until".into(),
        ));
    }
    Ok(AuditFilter {
        user_id: if req.user_id.is_empty() {
            None
        } else {
            Some(user_id(&req.user_id)?)
        },
        kinds,
        since,
        until,
        before: (req.before_event_id > 0).then_some(req.before_event_id),
        limit,
        apps: None,
    })
}

/// A protobuf timestamp as the service's time; `field` names it in the error.
pub fn instant(field: &str, at: &Timestamp) -> Result<crate::clock::Timestamp, AuthError> {
    if !(0..1_000_000_000).contains(&at.nanos) || at.seconds < 0 {
        return Err(AuthError::InvalidArgument(format!(
            "{field} must be a time after 1970 with nanos from 0 to 999999999"
        )));
    }
    Ok(
        crate::clock::Timestamp::from_secs(at.seconds).plus(std::time::Duration::from_nanos(
            u64::try_from(at.nanos).unwrap_or(0),
        )),
    )
}

/// An audit event as the API shows it.
pub fn audit_event(event: AuditEvent) -> v1::AuditEvent {
    v1::AuditEvent {
        event_id: event.id,
        at: timestamp(event.at),
        kind: event.kind,
        outcome: event.outcome,
        appid: event.appid.unwrap_or_default(),
        user_id: event.user_id.map(|id| id.to_string()).unwrap_or_default(),
        session_id: event.family_id.map(|id| id.to_string()).unwrap_or_default(),
        actor: event.actor.unwrap_or_default(),
        client_addr: event.client_addr.unwrap_or_default(),
        request_id: event.request_id.unwrap_or_default(),
        count: event.count,
        client_request_id: event.client_request_id.unwrap_or_default(),
        account_id: event
            .account_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

/// A protobuf timestamp of Unix seconds.
pub fn timestamp(unix_seconds: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: unix_seconds,
        nanos: 0,
    })
}

/// How a phone number is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneShown {
    /// In full: to the user themselves, or to a caller with the `pii` scope.
    Full,
    /// Masked (`138****8000`).
    Masked,
}

impl PhoneShown {
    /// How a caller of `context` sees other users' numbers.
    pub fn to(context: &CallContext) -> Self {
        if context.reach.pii {
            Self::Full
        } else {
            Self::Masked
        }
    }
}

/// A user as the API shows it; what is unknown is empty (proto3 has no absence for strings).
pub fn user_message(user: User, shown: PhoneShown) -> v1::User {
    let profile = user.profile;
    let phone = match shown {
        PhoneShown::Full => user.phone,
        PhoneShown::Masked => user.phone.map(|phone| phone.masked()),
    };
    let standing = user.standing;
    v1::User {
        user_id: user.id.to_string(),
        account_id: user.account_id.to_string(),
        appid: user.appid,
        openid: user.openid,
        unionid: user.unionid.unwrap_or_default(),
        nickname: profile.nickname.unwrap_or_default(),
        avatar_url: profile.avatar_url.unwrap_or_default(),
        gender: profile.gender.unwrap_or_default(),
        language: profile.language.unwrap_or_default(),
        city: profile.city.unwrap_or_default(),
        province: profile.province.unwrap_or_default(),
        country: profile.country.unwrap_or_default(),
        phone_country_code: phone
            .as_ref()
            .and_then(|phone| phone.country_code.clone())
            .unwrap_or_default(),
        pure_phone_number: phone
            .as_ref()
            .map(|phone| phone.pure_number.clone())
            .unwrap_or_default(),
        phone_number: phone.map(|phone| phone.number).unwrap_or_default(),
        created_at: timestamp(user.created_at),
        updated_at: timestamp(user.updated_at),
        status: match standing.status {
            Status::Active => v1::UserStatus::Active,
            Status::Suspended => v1::UserStatus::Suspended,
            Status::Deleting => v1::UserStatus::Deleting,
            Status::Deleted => v1::UserStatus::Deleted,
        }
        .into(),
        status_reason: standing.reason.unwrap_or_default(),
        suspended_until: standing.suspended_until.and_then(|at| timestamp(at.secs())),
        delete_after: standing.delete_after.and_then(|at| timestamp(at.secs())),
        nickname_check: match user.nickname_check {
            None => v1::NicknameCheck::Unspecified,
            Some(NicknameCheck::Passed) => v1::NicknameCheck::Passed,
            Some(NicknameCheck::Review) => v1::NicknameCheck::Review,
            Some(NicknameCheck::Unchecked) => v1::NicknameCheck::Unchecked,
        }
        .into(),
    }
}

/// A token pair as the API shows it.
pub fn token_pair(tokens: TokenPair) -> Option<v1::TokenPair> {
    Some(v1::TokenPair {
        access_token: tokens.access_token,
        access_token_expires_at: timestamp(tokens.access_expires_at),
        refresh_token: tokens.refresh_token,
        refresh_token_expires_at: timestamp(tokens.refresh_expires_at),
        token_type: "Bearer".to_owned(),
        id_token: tokens.id_token.unwrap_or_default(),
        scope: tokens.scope,
    })
}

/// What WeChat says of a kept session_key, as the API names it.
pub fn key_state(state: KeyState) -> v1::SessionKeyState {
    match state {
        KeyState::Current => v1::SessionKeyState::Current,
        KeyState::Stale => v1::SessionKeyState::Stale,
        KeyState::NoneKept => v1::SessionKeyState::None,
    }
}

/// An app's token status as operators see it: never the token.
pub fn app_token_status(status: TokenStatus) -> v1::AppAccessToken {
    v1::AppAccessToken {
        appid: status.appid,
        has_token: status.fetched_at.is_some(),
        age_seconds: status.age_secs.unwrap_or(0),
        fetched_at: status.fetched_at.and_then(timestamp),
        expires_at: status.expires_at.and_then(timestamp),
        refreshes: status.refreshes,
        last_attempt_at: status.last_attempt_at.and_then(timestamp),
        last_outcome: status.last_outcome.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(kind: v1::DataKind, raw: Option<&str>, sig: Option<&str>) -> CompleteLoginRequest {
        CompleteLoginRequest {
            appid: "wx4f4bc4dec97d474b".into(),
            session_id: "wxs_x".into(),
            kind: kind.into(),
            encrypted_data: "e".into(),
            iv: "i".into(),
            raw_data: raw.map(str::to_owned),
            signature: sig.map(str::to_owned),
        }
    }

    #[test]
    fn raw_data_and_signature_go_together_and_only_with_user_info() {
        let ok = complete_request(complete(v1::DataKind::UserInfo, Some("r"), Some("s")));
        assert!(ok.unwrap().signed_raw_data.is_some());
        let blank = complete_request(complete(v1::DataKind::UserInfo, Some(""), None));
        assert!(blank.unwrap().signed_raw_data.is_none());
        for (kind, raw, sig) in [
            (v1::DataKind::UserInfo, Some("r"), None),
            (v1::DataKind::UserInfo, None, Some("s")),
            (v1::DataKind::Phone, Some("r"), Some("s")),
            (v1::DataKind::Unspecified, None, None),
        ] {
            assert!(
                matches!(
                    complete_request(complete(kind, raw, sig)),
                    Err(AuthError::InvalidArgument(_))
                ),
                "{kind:?} {raw:?} {sig:?}"
            );
        }
    }

    #[test]
    fn each_missing_field_is_named() {
        let mut req = complete(v1::DataKind::UserInfo, None, None);
        req.iv.clear();
        let Err(AuthError::InvalidArgument(message)) = complete_request(req) else {
            panic!("a missing iv is refused");
        };
        assert_eq!(message, "iv is required");
        assert!(user_id("0").is_err() && user_id("x").is_err() && user_id("7").is_ok());
    }
}
