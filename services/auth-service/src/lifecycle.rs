//! The account lifecycle: suspension that bites at once, deletion (注销) with an optional
//! cooling-off, restoring, and a copy of everything stored about a user (PIPL art. 45, 47).
//!
//! Every change revokes through the same machinery as a logout (the families, `NOTIFY` to
//! every replica, this replica's cache at once), so a suspended or deleted user's tokens are
//! refused everywhere within a second.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tracing::info;

use crate::{
    audit::AuditLog,
    clock::SharedClock,
    domain::{
        AuditEvent, AuditFilter, AuditKind, Bearer, CallContext, NewAuditEvent, User,
        lifecycle::StatusChange,
    },
    error::AuthError,
    store::{PgStore, Refused, Target, find::FamilyRecord},
    tokens::Tokens,
    users::Users,
};

/// The format an export names itself with.
pub const EXPORT_FORMAT: &str = "wxauth.export.v1";
/// The most audit events an export carries (the newest).
pub const EXPORT_MAX_EVENTS: i64 = 10_000;

/// A deletion as the caller is told of it.
#[derive(Debug)]
pub struct Deletion {
    /// The users deleted, or waiting out the cooling-off.
    pub user_ids: Vec<i64>,
    /// When their data is erased, during a cooling-off (Unix seconds); `None`: erased.
    pub erase_at: Option<i64>,
}

/// The lifecycle service.
#[derive(Debug)]
pub struct Lifecycle {
    store: PgStore,
    tokens: Arc<Tokens>,
    users: Arc<Users>,
    audit: AuditLog,
    clock: SharedClock,
    /// How long a deletion waits before the data is erased; zero: at once.
    cooling_off: Duration,
}

/// Why a refusal of the store is refused.
fn refusal(refused: Refused) -> AuthError {
    match refused {
        Refused::NotFound => AuthError::UserNotFound,
        Refused::Deleted => AuthError::UserDeleted,
        Refused::NotDeleting => AuthError::NotDeleting,
        Refused::UntilPassed => {
            AuthError::InvalidArgument("until must be in the future".to_owned())
        }
    }
}

impl Lifecycle {
    /// The service; deletions wait `cooling_off` before erasing.
    pub fn new(
        store: PgStore,
        tokens: Arc<Tokens>,
        users: Arc<Users>,
        audit: AuditLog,
        clock: SharedClock,
        cooling_off: Duration,
    ) -> Self {
        Self {
            store,
            tokens,
            users,
            audit,
            clock,
            cooling_off,
        }
    }

    /// Checks that every user of `target` is of an app the caller reaches.
    async fn within_reach(&self, target: Target, context: &CallContext) -> Result<(), AuthError> {
        if context.reach.apps.is_none() {
            return Ok(());
        }
        match target {
            Target::User(user_id) => match self.users.get(user_id).await {
                Ok(user) => Ok(context.reach.app(&user.appid)?),
                // A deleted user's app is still on its tombstone: the store answers.
                Err(AuthError::UserNotFound | AuthError::UserDeleted) => Ok(()),
                Err(err) => Err(err),
            },
            Target::Account(account_id) => {
                let apps = self.store.apps_of_account(account_id).await?;
                Ok(context.reach.all(apps.iter().map(String::as_str))?)
            }
        }
    }

    /// Suspends or reinstates the users of `target`; returns them as they stand now.
    pub async fn set_status(
        &self,
        target: Target,
        change: &StatusChange,
        context: &CallContext,
    ) -> Result<Vec<User>, AuthError> {
        self.within_reach(target, context).await?;
        let changed = self
            .store
            .set_status(target, change, context)
            .await?
            .map_err(refusal)?;
        self.tokens.revoked(&changed.families);
        info!(
            ?target,
            users = changed.users.len(),
            revoked = changed.families.len(),
            "status changed"
        );
        Ok(changed.users)
    }

    /// The holder of `token` deletes their own user.
    pub async fn delete_me(
        &self,
        token: &Bearer,
        context: &CallContext,
    ) -> Result<Deletion, AuthError> {
        let user = self.users.me(token, context).await?;
        self.delete(Target::User(user.id), "asked by the user", false, context)
            .await
    }

    /// Deletes the users of `target`: after the cooling-off, or at once when there is none
    /// or `immediately`.
    pub async fn delete(
        &self,
        target: Target,
        reason: &str,
        immediately: bool,
        context: &CallContext,
    ) -> Result<Deletion, AuthError> {
        self.within_reach(target, context).await?;
        let erase_at = (!immediately && !self.cooling_off.is_zero())
            .then(|| self.clock.timestamp().plus(self.cooling_off));
        let erased = self
            .store
            .delete_users(target, erase_at, reason, context)
            .await?
            .map_err(refusal)?;
        self.tokens.revoked(&erased.families);
        info!(
            ?target,
            users = erased.user_ids.len(),
            erased = erased.erase_at.is_none(),
            "deleted"
        );
        Ok(Deletion {
            user_ids: erased.user_ids,
            erase_at: erased.erase_at.map(|at| at.secs()),
        })
    }

    /// Undoes a deletion waiting out its cooling-off.
    pub async fn restore(&self, user_id: i64, context: &CallContext) -> Result<User, AuthError> {
        self.within_reach(Target::User(user_id), context).await?;
        let user = self
            .store
            .restore_user(user_id, context)
            .await?
            .map_err(refusal)?;
        info!(user_id, "deletion undone");
        Ok(user)
    }

    /// Erases the users whose cooling-off has ended, `batch` at a time, until none is left;
    /// returns how many. The upkeep loop's.
    pub async fn erase_due(&self, batch: i64) -> Result<usize, AuthError> {
        let context = CallContext {
            caller: Some("wxauth".to_owned()),
            request_id: wxauth_proto::wire::new_request_id(),
            reach: crate::domain::Reach::everything(),
            ..CallContext::default()
        };
        let mut erased = 0;
        loop {
            let (families, count) = self.store.erase_due(batch, &context).await?;
            self.tokens.revoked(&families);
            erased += count;
            if (count as i64) < batch {
                return Ok(erased);
            }
        }
    }

    /// Everything stored about the holder of `token`, as JSON.
    pub async fn export_me(
        &self,
        token: &Bearer,
        context: &CallContext,
    ) -> Result<String, AuthError> {
        let user = self.users.me(token, context).await?;
        self.export_of(user, true, "ExportMe", context).await
    }

    /// Everything stored about a user, as JSON (an operator's copy; the phone number masked
    /// unless the caller has the `pii` scope).
    pub async fn export(&self, user_id: i64, context: &CallContext) -> Result<String, AuthError> {
        let user = self.users.get(user_id).await?;
        context.reach.app(&user.appid)?;
        let full = context.reach.pii;
        self.export_of(user, full, "ExportUser", context).await
    }

    async fn export_of(
        &self,
        user: User,
        full_phone: bool,
        method: &str,
        context: &CallContext,
    ) -> Result<String, AuthError> {
        let account = self.store.users_of_account(user.account_id).await?;
        let families = self.store.families_of(user.id).await?;
        let events = self
            .store
            .audit_events(&AuditFilter {
                user_id: Some(user.id),
                limit: EXPORT_MAX_EVENTS,
                ..AuditFilter::default()
            })
            .await?;
        self.audit.tally(NewAuditEvent {
            kind: AuditKind::DataExported,
            outcome: method.to_owned(),
            appid: Some(user.appid.clone()),
            user_id: Some(user.id),
            openid_digest: None,
            family_id: None,
            account_id: None,
            context: context.clone(),
        });
        let document = export_document(
            &user,
            full_phone,
            &account,
            &families,
            &events,
            self.clock.now(),
            |appid| context.reach.app(appid).is_ok(),
        );
        serde_json::to_string_pretty(&document).map_err(AuthError::internal)
    }
}

/// The export document: every personal field stored about `user` and the trail of what was
/// done with their data; never a secret (no session_key, token, digest or sealed value).
/// `shown` says which apps' users of the account the reader may see.
pub fn export_document(
    user: &User,
    full_phone: bool,
    account: &[User],
    families: &[FamilyRecord],
    events: &[AuditEvent],
    now: i64,
    shown: impl Fn(&str) -> bool,
) -> Value {
    let phone = user.phone.as_ref().map(|phone| {
        if full_phone {
            phone.clone()
        } else {
            phone.masked()
        }
    });
    let profile = &user.profile;
    json!({
        "format": EXPORT_FORMAT,
        "exported_at": now,
        "user": {
            "user_id": user.id.to_string(),
            "account_id": user.account_id.to_string(),
            "appid": user.appid,
            "openid": user.openid,
            "unionid": user.unionid,
            "nickname": profile.nickname,
            "nickname_check": user.nickname_check.map(|check| check.name()),
            "avatar_url": profile.avatar_url,
            "gender": profile.gender,
            "language": profile.language,
            "city": profile.city,
            "province": profile.province,
            "country": profile.country,
            "phone_number": phone.as_ref().map(|phone| phone.number.clone()),
            "pure_phone_number": phone.as_ref().map(|phone| phone.pure_number.clone()),
            "phone_country_code": phone.as_ref().and_then(|phone| phone.country_code.clone()),
            "status": user.standing.status.name(),
            "status_reason": user.standing.reason,
            "suspended_until": user.standing.suspended_until.map(|at| at.secs()),
            "delete_after": user.standing.delete_after.map(|at| at.secs()),
            "created_at": user.created_at,
            "updated_at": user.updated_at,
        },
        "account": {
            "account_id": user.account_id.to_string(),
            "users": account
                .iter()
                .filter(|other| shown(&other.appid))
                .map(|other| json!({
                    "user_id": other.id.to_string(),
                    "appid": other.appid,
                    "created_at": other.created_at,
                }))
                .collect::<Vec<_>>(),
        },
        "sessions": families
            .iter()
            .map(|family| json!({
                "session_id": family.family_id.to_string(),
                "appid": family.appid,
                "created_at": family.created_at,
                "last_refreshed_at": family.last_refreshed_at,
                "ended_at": family.revoked_at,
                "end_reason": family.revoke_reason,
            }))
            .collect::<Vec<_>>(),
        "audit_events": events
            .iter()
            .map(|event| json!({
                "event_id": event.id,
                "at": event.at,
                "kind": event.kind,
                "outcome": event.outcome,
                "appid": event.appid,
                "session_id": event.family_id.map(|id| id.to_string()),
                "actor": event.actor,
                "client_addr": event.client_addr,
                "request_id": event.request_id,
                "count": event.count,
            }))
            .collect::<Vec<_>>(),
        "audit_events_truncated": events.len() as i64 >= EXPORT_MAX_EVENTS,
    })
}
