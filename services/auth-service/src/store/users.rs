//! Users: how a row becomes a [`User`], lookups, and the changes a user makes to their own
//! record after logging in.

use std::sync::LazyLock;

use sqlx::{Row as _, postgres::PgRow};

use super::statement;
use super::{
    PgStore, StoreError,
    audit::AUDIT_INSERT,
    outbox::{bind_wanted, outbox_cte},
    phones::PHONE_COLUMNS,
};
use crate::{
    clock::Timestamp,
    domain::{
        AuditKind, CallContext, FilledProfile, NicknameCheck, Phone, Profile, User,
        events::EventKind,
        lifecycle::{Standing, Status},
    },
};

/// The columns of a user, from a relation named `u`.
pub(super) static USER_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "u.user_id, u.appid, u.openid, u.unionid, u.nickname, u.avatar_url, \
         u.gender, u.language, u.city, u.province, u.country, {PHONE_COLUMNS}, u.account_id, \
         extract(epoch from u.created_at)::bigint as created_at, \
         extract(epoch from u.updated_at)::bigint as updated_at, u.status, u.status_reason, \
         u.suspended_until, u.delete_after, u.nickname_check"
    )
});

/// The standing of a row of [`USER_COLUMNS`].
pub(super) fn standing_of(row: &PgRow) -> Result<Standing, sqlx::Error> {
    Ok(Standing {
        status: Status::parse(&row.try_get::<String, _>("status")?),
        reason: row.try_get("status_reason")?,
        suspended_until: row.try_get::<Option<Timestamp>, _>("suspended_until")?,
        delete_after: row.try_get::<Option<Timestamp>, _>("delete_after")?,
    })
}

/// The standing as it is at `now`: a suspension whose time has passed is over, whatever the
/// row still says.
fn in_effect(standing: Standing, now: Timestamp) -> Standing {
    if standing.effective(now) == standing.status {
        standing
    } else {
        Standing {
            delete_after: standing.delete_after,
            ..Standing::active()
        }
    }
}

impl PgStore {
    /// A user from a row of [`USER_COLUMNS`], their phone opened, their standing as it is
    /// now.
    pub(super) fn user_from_row(&self, row: &PgRow) -> Result<User, sqlx::Error> {
        let appid: String = row.try_get("appid")?;
        let openid: String = row
            .try_get::<Option<String>, _>("openid")?
            .unwrap_or_default();
        let phone = self.phone_of(row, &appid, &openid)?;
        Ok(User {
            id: row.try_get("user_id")?,
            account_id: row.try_get("account_id")?,
            appid,
            openid,
            unionid: row.try_get("unionid")?,
            profile: Profile {
                nickname: row.try_get("nickname")?,
                avatar_url: row.try_get("avatar_url")?,
                gender: row.try_get("gender")?,
                language: row.try_get("language")?,
                city: row.try_get("city")?,
                province: row.try_get("province")?,
                country: row.try_get("country")?,
            },
            phone,
            nickname_check: row
                .try_get::<Option<String>, _>("nickname_check")?
                .as_deref()
                .and_then(NicknameCheck::parse),
            standing: in_effect(standing_of(row)?, self.now()),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Users from rows of [`USER_COLUMNS`].
    pub(super) fn users_from_rows(&self, rows: &[PgRow]) -> Result<Vec<User>, StoreError> {
        rows.iter()
            .map(|row| self.user_from_row(row))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// One user by id.
pub(super) static USER_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("select {} from users u where u.user_id = $1", *USER_COLUMNS));

/// `update`, a `returning {USER_COLUMNS}` update of one user, with its audit event of `kind`
/// in the same statement; the call's context and time are `$n`..`$n+4` (time, caller, client
/// address, request id, client's request id).
/// The webhook events are bound at `$n+5`..`$n+8`, their payload's data adds `data` (see
/// [`outbox_cte`]).
fn audited_update(update: &str, kind: AuditKind, n: usize, data: &str) -> String {
    let (at, actor, addr, rid, crid) = (n, n + 1, n + 2, n + 3, n + 4);
    format!(
        "with u as ({update}), \
         a as ({AUDIT_INSERT} select ${at}, '{kind}', 'ok', u.appid, u.user_id, null, null, \
           ${actor}, ${addr}, ${rid}, ${crid} from u), \
         {events} \
         select * from u",
        kind = kind.name(),
        events = outbox_cte("ev", "u x", n + 5, &format!("${at}"), "true", data),
    )
}

/// Writes the fields given and keeps the others (a nickname with what the content check
/// said of it: `$5`), and audits it; returns the user as stored. Only a user in good
/// standing changes.
static UPDATE_PROFILE: LazyLock<String> = LazyLock::new(|| {
    audited_update(
        &format!(
            "update users as u set nickname = coalesce($2, u.nickname), \
               avatar_url = coalesce($3, u.avatar_url), \
               nickname_check = case when $2::text is null then u.nickname_check else $5 end, \
               updated_at = $4 \
             where u.user_id = $1 and u.status = 'active' returning {}",
            *USER_COLUMNS
        ),
        AuditKind::ProfileUpdated,
        6,
        "'nickname', x.nickname, 'avatar_url', x.avatar_url",
    )
});

/// Writes the phone, sealed, in place of any number in the clear, and audits it; returns
/// the user as stored. Only a user in good standing changes.
static SET_PHONE: LazyLock<String> = LazyLock::new(|| {
    audited_update(
        &format!(
            "update users as u set phone_kid = $2, phone_nonce = $3, phone_sealed = $4, \
               phone_index = $5, phone_index_kid = $6, phone_number = null, \
               pure_phone_number = null, phone_country_code = null, updated_at = $7 \
             where u.user_id = $1 and u.status = 'active' returning {}",
            *USER_COLUMNS
        ),
        AuditKind::PhoneBound,
        7,
        "'phone_number', case when s.pii then $17::text else $16::text end",
    )
});

/// The users of an account (its deleted ones left out).
static USERS_OF_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select {} from users u where u.account_id = $1 and u.status <> 'deleted' \
         order by u.user_id",
        *USER_COLUMNS
    )
});

impl PgStore {
    /// A user by id.
    pub async fn get_user(&self, user_id: i64) -> Result<Option<User>, StoreError> {
        let row = self
            .run(async |conn| {
                statement::query(&USER_BY_ID)
                    .bind(user_id)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| self.user_from_row(&row)).transpose()?)
    }

    /// The users of an account, oldest first.
    pub async fn users_of_account(&self, account_id: i64) -> Result<Vec<User>, StoreError> {
        let rows = self
            .run(async |conn| {
                statement::query(&USERS_OF_ACCOUNT)
                    .bind(account_id)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        self.users_from_rows(&rows)
    }

    /// Stores the user's phone, sealed, audited in the same statement; `None` when there is
    /// no such user in good standing.
    pub async fn set_phone(
        &self,
        user: &User,
        phone: &Phone,
        context: &CallContext,
    ) -> Result<Option<User>, StoreError> {
        let sealed = self.seal_phone(&user.appid, &user.openid, phone)?;
        let now = self.now();
        let wanted = self.wanting(&[EventKind::UserPhoneBound]);
        let masked = phone.masked().number;
        let row = self
            .run(async |conn| {
                let query = statement::query(&SET_PHONE)
                    .bind(user.id)
                    .bind(&sealed.sealed.kid)
                    .bind(&sealed.sealed.nonce)
                    .bind(&sealed.sealed.ciphertext)
                    .bind(&sealed.index)
                    .bind(&sealed.index_kid)
                    .bind(now)
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(&context.client_request_id);
                bind_wanted(query, &wanted)
                    .bind(&masked)
                    .bind(&phone.number)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| self.user_from_row(&row)).transpose()?)
    }

    /// Stores what the user filled in, with what the content check said of the nickname,
    /// audited in the same statement; `None` when there is no such user in good standing.
    pub async fn update_profile(
        &self,
        user_id: i64,
        filled: &FilledProfile,
        check: Option<NicknameCheck>,
        context: &CallContext,
    ) -> Result<Option<User>, StoreError> {
        let now = self.now();
        let wanted = self.wanting(&[EventKind::UserProfileUpdated]);
        let row = self
            .run(async |conn| {
                let query = statement::query(&UPDATE_PROFILE)
                    .bind(user_id)
                    .bind(filled.nickname.as_deref())
                    .bind(filled.avatar_url.as_deref())
                    .bind(now)
                    .bind(check.map(NicknameCheck::name))
                    .bind(now)
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(&context.client_request_id);
                bind_wanted(query, &wanted).fetch_optional(conn).await
            })
            .await?;
        Ok(row.map(|row| self.user_from_row(&row)).transpose()?)
    }
}
