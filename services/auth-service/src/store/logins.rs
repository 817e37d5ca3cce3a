//! Users, and the session family each login starts.

use std::sync::LazyLock;

use sqlx::{Row as _, postgres::PgRow};

use super::{NewRefresh, PgStore, StoreError, audit::AUDIT_INSERT};
use crate::domain::{AuditKind, CallContext, Phone, Profile, User, UserUpdate};

/// A login as stored: the user and the family its tokens belong to.
#[derive(Debug)]
pub struct IssuedLogin {
    /// The user as stored now.
    pub user: User,
    /// The session family.
    pub family_id: i64,
    /// When the refresh token expires, Unix seconds.
    pub refresh_expires_at: i64,
}

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

/// The statement that completes a login: the session checked (and used up, when
/// `consume`), the user upserted, a family and its first refresh token started, and the
/// event audited, all or nothing.
fn complete_login_sql(consume: bool) -> String {
    // A silent login needs no live session: the code exchange it just made is its right to
    // tokens. Its session may already be superseded by a concurrent login of the same user
    // (the user's session is only the newest one), and the login must still end in tokens,
    // since the code is spent at WeChat.
    let live = if consume {
        "delete from login_sessions where id_hash = $16 and expires_at > $21 returning 1"
    } else {
        "select 1 where $16::bytea is not null"
    };
    // The account: with a unionid, the account of that unionid (made with the user's own
    // account id when it is new); without one, the user's own. A known account is only read.
    // A new one is claimed with `on conflict do update`, which returns the row another
    // transaction committed meanwhile (the read in this statement would not see it), so two
    // first logins of one person through two apps at once end in one account.
    format!(
        "with live as ({live}), \
         prior as (select account_id from users where appid = $1 and openid = $2), \
         known as (select account_id from accounts where unionid = $3), \
         claimed as ( \
           insert into accounts as a (account_id, unionid, created_at) \
           select coalesce((select account_id from prior), \
                           nextval(pg_get_serial_sequence('accounts', 'account_id'))), $3, $21 \
           from live where $3 is not null and not exists (select 1 from known) \
           on conflict (unionid) do update set unionid = excluded.unionid \
           returning account_id), \
         acct as (select account_id from known union all select account_id from claimed), \
         u as ( \
           insert into users as u (appid, openid, unionid, nickname, avatar_url, gender, language, \
              city, province, country, phone_number, pure_phone_number, phone_country_code, \
              account_id, created_at, updated_at) \
           select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
              coalesce((select account_id from acct), (select account_id from prior), \
                       nextval(pg_get_serial_sequence('accounts', 'account_id'))), $21, $21 \
           from live \
           on conflict (appid, openid) do update set \
              account_id = coalesce((select account_id from acct), u.account_id), \
              unionid = coalesce(excluded.unionid, u.unionid), \
              nickname = coalesce(excluded.nickname, u.nickname), \
              avatar_url = coalesce(excluded.avatar_url, u.avatar_url), \
              gender = coalesce(excluded.gender, u.gender), \
              language = coalesce(excluded.language, u.language), \
              city = coalesce(excluded.city, u.city), \
              province = coalesce(excluded.province, u.province), \
              country = coalesce(excluded.country, u.country), \
              phone_number = coalesce(excluded.phone_number, u.phone_number), \
              pure_phone_number = coalesce(excluded.pure_phone_number, u.pure_phone_number), \
              phone_country_code = coalesce(excluded.phone_country_code, u.phone_country_code), \
              updated_at = $21 \
           returning *), \
         f as (insert into token_families (user_id, appid, created_at) \
           select user_id, appid, $21 from u returning family_id), \
         r as (insert into refresh_tokens (token_hash, family_id, created_at, expires_at) \
           select $14, family_id, $21, $15 from f \
           returning extract(epoch from expires_at)::bigint as refresh_expires_at), \
         a as ({AUDIT_INSERT} select $21, $17, 'ok', u.appid, u.user_id, null, f.family_id, $18, $19, \
           $20, $22 from u, f) \
         select {USER_COLUMNS}, f.family_id, r.refresh_expires_at from u, f, r"
    )
}

static COMPLETE_LOGIN: LazyLock<String> = LazyLock::new(|| complete_login_sql(true));
static SILENT_LOGIN: LazyLock<String> = LazyLock::new(|| complete_login_sql(false));

/// How a login is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// With encrypted data: the session is used up, so it issues tokens once.
    UsesUpSession,
    /// Silently, at the exchange: the session stays for encrypted data sent later, and is
    /// not checked (a concurrent login of the same user may have superseded it already).
    KeepsSession,
}

impl PgStore {
    /// Creates or updates the user of (appid, openid), and starts a session family with its
    /// first refresh token. A completion with encrypted data needs its login session
    /// `session_hash` live and uses it up: `None` when it is gone (expired, used, or replaced
    /// by a newer login). A silent login always completes. Fields of `update` that are `None`
    /// keep their stored value.
    ///
    /// One statement (one round trip, one commit): the check of the session, the user, the
    /// family and the refresh token are written together or not at all, and the user comes
    /// back as stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_login(
        &self,
        session_hash: &[u8],
        completion: Completion,
        appid: &str,
        openid: &str,
        update: &UserUpdate,
        refresh: NewRefresh<'_>,
        context: &CallContext,
    ) -> Result<Option<IssuedLogin>, StoreError> {
        let (sql, kind) = match completion {
            Completion::UsesUpSession => (&*COMPLETE_LOGIN, AuditKind::Login),
            Completion::KeepsSession => (&*SILENT_LOGIN, AuditKind::SilentLogin),
        };
        let now = self.now();
        let row = self
            .run(async |conn| {
                let (profile, phone) = (&update.profile, update.phone.as_ref());
                sqlx::query(sql)
                    .bind(appid)
                    .bind(openid)
                    .bind(&update.unionid)
                    .bind(&profile.nickname)
                    .bind(&profile.avatar_url)
                    .bind(profile.gender)
                    .bind(&profile.language)
                    .bind(&profile.city)
                    .bind(&profile.province)
                    .bind(&profile.country)
                    .bind(phone.map(|phone| &phone.number))
                    .bind(phone.map(|phone| &phone.pure_number))
                    .bind(phone.and_then(|phone| phone.country_code.as_ref()))
                    .bind(refresh.hash)
                    .bind(now.plus_secs(refresh.ttl_secs))
                    .bind(session_hash)
                    .bind(kind.name())
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(now)
                    .bind(&context.client_request_id)
                    .fetch_optional(conn)
                    .await
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(IssuedLogin {
            user: user_from_row(&row)?,
            family_id: row.try_get("family_id")?,
            refresh_expires_at: row.try_get("refresh_expires_at")?,
        }))
    }

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
}
