//! Finding users (operators' searches, a page at a time) and what an export reads besides
//! the user: their token families, the apps of an account.

use sqlx::Row as _;

use super::statement;
use super::{PgStore, StoreError, users::USER_COLUMNS};
use crate::domain::User;

/// How to find users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// The user of an app and openid.
    Openid {
        /// The mini-program.
        appid: String,
        /// The openid.
        openid: String,
    },
    /// The users with a unionid.
    Unionid(String),
    /// The users with a national phone number.
    Phone(String),
    /// The users of an app whose nickname starts so.
    NicknamePrefix {
        /// The mini-program.
        appid: String,
        /// The start of the nickname.
        prefix: String,
    },
}

/// A page of users found.
#[derive(Debug)]
pub struct Found {
    /// Oldest first.
    pub users: Vec<User>,
    /// The last user id of the page when there may be more.
    pub next_after: Option<i64>,
}

/// A session family as an export shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    /// Its id.
    pub family_id: i64,
    /// The mini-program.
    pub appid: String,
    /// When the login happened, Unix seconds.
    pub created_at: i64,
    /// When its tokens were last refreshed, Unix seconds.
    pub last_refreshed_at: Option<i64>,
    /// When it ended, Unix seconds.
    pub revoked_at: Option<i64>,
    /// Why it ended.
    pub revoke_reason: Option<String>,
}

impl PgStore {
    /// A page of the users `search` finds (never a deleted one), after user `after`, of the
    /// apps `apps` when given.
    pub async fn find_users(
        &self,
        search: &Search,
        after: i64,
        limit: i64,
        apps: Option<&[String]>,
    ) -> Result<Found, StoreError> {
        let (condition, first, second, third): (&str, String, Option<String>, Option<String>) =
            match search {
                Search::Openid { appid, openid } => (
                    "u.appid = $1 and u.openid = $2",
                    appid.clone(),
                    Some(openid.clone()),
                    None,
                ),
                Search::Unionid(unionid) => ("u.unionid = $1", unionid.clone(), None, None),
                Search::Phone(number) => (
                    "(u.phone_index = any($6) \
                      or (u.phone_number is not null and u.pure_phone_number = $1))",
                    number.clone(),
                    None,
                    None,
                ),
                // A range of the `text_pattern_ops` index, then the exact test.
                Search::NicknamePrefix { appid, prefix } => (
                    "u.appid = $1 and u.nickname ~>=~ $2 and u.nickname ~<~ $3 \
                     and starts_with(u.nickname, $2)",
                    appid.clone(),
                    Some(prefix.clone()),
                    Some(format!("{prefix}\u{10FFFF}")),
                ),
            };
        let lookups = match search {
            Search::Phone(number) => self.phone_lookups(number),
            _ => Vec::new(),
        };
        let sql = format!(
            "select {} from users u where {condition} and u.status <> 'deleted' \
               and u.user_id > $4 and ($7::text[] is null or u.appid = any($7)) \
             order by u.user_id limit $5",
            *USER_COLUMNS
        );
        let rows = self
            .run(async |conn| {
                statement::query(&sql)
                    .bind(&first)
                    .bind(&second)
                    .bind(&third)
                    .bind(after)
                    .bind(limit)
                    .bind(&lookups)
                    .bind(apps)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        let users = self.users_from_rows(&rows)?;
        let next_after = (users.len() as i64 == limit)
            .then(|| users.last().map(|user| user.id))
            .flatten();
        Ok(Found { users, next_after })
    }

    /// Every session family of a user, oldest first, for an export.
    pub async fn families_of(&self, user_id: i64) -> Result<Vec<FamilyRecord>, StoreError> {
        let rows = self
            .run(async |conn| {
                statement::query(
                    "select f.family_id, f.appid, extract(epoch from f.created_at)::bigint as created_at, \
                       extract(epoch from f.revoked_at)::bigint as revoked_at, f.revoke_reason, \
                       (select extract(epoch from max(r.created_at))::bigint from refresh_tokens r \
                         where r.family_id = f.family_id) as last_refreshed_at \
                     from token_families f where f.user_id = $1 order by f.family_id",
                )
                .bind(user_id)
                .fetch_all(conn)
                .await
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(FamilyRecord {
                    family_id: row.try_get("family_id")?,
                    appid: row.try_get("appid")?,
                    created_at: row.try_get("created_at")?,
                    last_refreshed_at: row.try_get("last_refreshed_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    revoke_reason: row.try_get("revoke_reason")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The apps of the users of an account (deleted ones left out), for a caller that may
    /// reach some apps only.
    pub async fn apps_of_account(&self, account_id: i64) -> Result<Vec<String>, StoreError> {
        self.run(async |conn| {
            statement::query_scalar(
                "select distinct appid from users where account_id = $1 and status <> 'deleted' \
                 order by appid",
            )
            .bind(account_id)
            .fetch_all(conn)
            .await
        })
        .await
    }
}
