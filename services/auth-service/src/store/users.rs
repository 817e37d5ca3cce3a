//! Changes a user makes to their own record after logging in.

use std::sync::LazyLock;

use super::{
    PgStore, StoreError,
    logins::{USER_COLUMNS, user_from_row},
};
use crate::domain::{FilledProfile, Phone, User};

/// Writes the fields given and keeps the others; returns the user as stored.
static UPDATE_PROFILE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update users as u set nickname = coalesce($2, u.nickname), \
           avatar_url = coalesce($3, u.avatar_url), updated_at = $4 \
         where u.user_id = $1 returning {USER_COLUMNS}"
    )
});

/// Writes the phone and keeps the rest; returns the user as stored.
static SET_PHONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "update users as u set phone_number = $2, pure_phone_number = $3, \
           phone_country_code = $4, updated_at = $5 \
         where u.user_id = $1 returning {USER_COLUMNS}"
    )
});

/// The users of an account.
static USERS_OF_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    format!("select {USER_COLUMNS} from users u where u.account_id = $1 order by u.user_id")
});

impl PgStore {
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

    /// Stores the user's phone; `None` when there is no such user.
    pub async fn set_phone(&self, user_id: i64, phone: &Phone) -> Result<Option<User>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                sqlx::query(&SET_PHONE)
                    .bind(user_id)
                    .bind(&phone.number)
                    .bind(&phone.pure_number)
                    .bind(phone.country_code.as_deref())
                    .bind(now)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }

    /// Stores what the user filled in; `None` when there is no such user.
    pub async fn update_profile(
        &self,
        user_id: i64,
        filled: &FilledProfile,
    ) -> Result<Option<User>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                sqlx::query(&UPDATE_PROFILE)
                    .bind(user_id)
                    .bind(filled.nickname.as_deref())
                    .bind(filled.avatar_url.as_deref())
                    .bind(now)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }
}
