//! Users: how a row becomes a [`User`], lookups, and the changes a user makes to their own
//! record after logging in.

use std::sync::LazyLock;

use sqlx::{Row as _, postgres::PgRow};

use super::{PgStore, StoreError, audit::AUDIT_INSERT};
use crate::domain::{AuditKind, CallContext, FilledProfile, Phone, Profile, User};

/// The columns of a user, from a relation named `u`.
pub(super) const USER_COLUMNS: &str = "u.user_id, u.appid, u.openid, u.unionid, u.nickname, u.avatar_url, \
    u.gender, u.language, u.city, u.province, u.country, u.phone_number, u.pure_phone_number, \
    u.phone_country_code, u.account_id, extract(epoch from u.created_at)::bigint as created_at, \
    extract(epoch from u.updated_at)::bigint as updated_at";

/// A user from a row of [`USER_COLUMNS`].
pub(super) fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    let phone_number: Option<String> = row.try_get("phone_number")?;
    let pure_phone_number: Option<String> = row.try_get("pure_phone_number")?;
    Ok(User {
        id: row.try_get("user_id")?,
        account_id: row.try_get("account_id")?,
        appid: row.try_get("appid")?,
        openid: row.try_get("openid")?,
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
        phone: match (phone_number, pure_phone_number) {
            (Some(number), Some(pure_number)) => Some(Phone {
                number,
                pure_number,
                country_code: row.try_get("phone_country_code")?,
            }),
            _ => None,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One user by id.
pub(super) static USER_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("select {USER_COLUMNS} from users u where u.user_id = $1"));

/// `update`, a `returning {USER_COLUMNS}` update of one user, with its audit event of `kind`
/// in the same statement; the call's context and time are `$n`..`$n+4` (time, caller, client
/// address, request id, client's request id).
fn audited_update(update: &str, kind: AuditKind, n: usize) -> String {
    let (at, actor, addr, rid, crid) = (n, n + 1, n + 2, n + 3, n + 4);
    format!(
        "with u as ({update}), \
         a as ({AUDIT_INSERT} select ${at}, '{kind}', 'ok', u.appid, u.user_id, null, null, \
           ${actor}, ${addr}, ${rid}, ${crid} from u) \
         select * from u",
        kind = kind.name()
    )
}

/// Writes the fields given and keeps the others, and audits it; returns the user as stored.
static UPDATE_PROFILE: LazyLock<String> = LazyLock::new(|| {
    audited_update(
        &format!(
            "update users as u set nickname = coalesce($2, u.nickname), \
               avatar_url = coalesce($3, u.avatar_url), updated_at = $4 \
             where u.user_id = $1 returning {USER_COLUMNS}"
        ),
        AuditKind::ProfileUpdated,
        4,
    )
});

/// Writes the phone and keeps the rest, and audits it; returns the user as stored.
static SET_PHONE: LazyLock<String> = LazyLock::new(|| {
    audited_update(
        &format!(
            "update users as u set phone_number = $2, pure_phone_number = $3, \
               phone_country_code = $4, updated_at = $5 \
             where u.user_id = $1 returning {USER_COLUMNS}"
        ),
        AuditKind::PhoneBound,
        5,
    )
});

/// The users of an account.
static USERS_OF_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!("select {USER_COLUMNS} from users u where u.account_id = $1 order by u.user_id")
});

impl PgStore {
    /// A user by id.
    pub async fn get_user(&self, user_id: i64) -> Result<Option<User>, StoreError> {
        let row = self
            .run(async |conn| {
                sqlx::query(&USER_BY_ID)
                    .bind(user_id)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }

    /// The users of an account, oldest first.
    pub async fn users_of_account(&self, account_id: i64) -> Result<Vec<User>, StoreError> {
        let rows = self
            .run(async |conn| {
                sqlx::query(&USERS_OF_ACCOUNT)
                    .bind(account_id)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores the user's phone, audited in the same statement; `None` when there is no such
    /// user.
    pub async fn set_phone(
        &self,
        user_id: i64,
        phone: &Phone,
        context: &CallContext,
    ) -> Result<Option<User>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                sqlx::query(&SET_PHONE)
                    .bind(user_id)
                    .bind(&phone.number)
                    .bind(&phone.pure_number)
                    .bind(phone.country_code.as_deref())
                    .bind(now)
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(&context.client_request_id)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }

    /// Stores what the user filled in, audited in the same statement; `None` when there is
    /// no such user.
    pub async fn update_profile(
        &self,
        user_id: i64,
        filled: &FilledProfile,
        context: &CallContext,
    ) -> Result<Option<User>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                sqlx::query(&UPDATE_PROFILE)
                    .bind(user_id)
                    .bind(filled.nickname.as_deref())
                    .bind(filled.avatar_url.as_deref())
                    .bind(now)
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(&context.client_request_id)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }
}
