//! Postgres: the only place SQL lives. Runtime queries (no build-time database needed),
//! each covered by the end-to-end tests against a real server. Every multi-row write runs
//! in one transaction that commits before the caller answers its client.

use sqlx::{PgPool, Row, postgres::PgRow};

use crate::{profile::UserUpdate, secrets::Sealed};

/// The embedded migrations, applied at start-up (sqlx takes an advisory lock, so replicas
/// starting together do not race).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A storage failure. Its `Display` may name tables and Postgres codes, never values: it is
/// for the logs, and the transport never sends it to a client.
#[derive(Debug, thiserror::Error)]
#[error("database error")]
pub struct StoreError(#[from] pub sqlx::Error);

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing a statement): the
    /// caller should retry later, and the answer is "unavailable", not "internal".
    pub fn is_unavailable(&self) -> bool {
        match &self.0 {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // 08: connection exceptions; 57P0x: the server is shutting down or starting;
            // 55000: the database does not accept connections now.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08") || code.starts_with("57P0") || code == "55000"
            }),
            _ => false,
        }
    }
}

/// A login session as stored.
#[derive(Debug)]
pub struct SessionRow {
    /// The appid the session belongs to.
    pub appid: String,
    /// The user's openid.
    pub openid: String,
    /// The unionid WeChat returned with the code, if any.
    pub unionid: Option<String>,
    /// The sealed session_key.
    pub sealed_key: Sealed,
}

/// A new login session.
pub struct NewSession<'a> {
    /// SHA-256 of the session id.
    pub id_hash: &'a [u8],
    /// The appid.
    pub appid: &'a str,
    /// The openid.
    pub openid: &'a str,
    /// The unionid, if WeChat gave one.
    pub unionid: Option<&'a str>,
    /// The sealed session_key.
    pub sealed_key: &'a Sealed,
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The user id.
    pub user_id: i64,
    /// The appid.
    pub appid: String,
    /// The openid.
    pub openid: String,
    /// The unionid, if known.
    pub unionid: Option<String>,
    /// Profile fields and phone.
    pub nickname: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Gender.
    pub gender: Option<i32>,
    /// Language.
    pub language: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Province.
    pub province: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Phone with country code.
    pub phone_number: Option<String>,
    /// Phone without country code.
    pub pure_phone_number: Option<String>,
    /// Phone country code.
    pub phone_country_code: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The Postgres channel that carries revoked family ids to every replica.
pub const REVOKED_CHANNEL: &str = "wxauth_revoked";

/// A login's new refresh token, stored by its digest.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh<'a> {
    /// SHA-256 of the refresh token.
    pub hash: &'a [u8],
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

/// A login as stored: the user and the family its tokens belong to.
#[derive(Debug)]
pub struct IssuedLogin {
    /// The user as stored now.
    pub user: UserRow,
    /// The session family.
    pub family_id: i64,
    /// When the refresh token expires, Unix seconds.
    pub refresh_expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// It was live: it is now used, and the new one is stored in the same family.
    Rotated(Box<IssuedLogin>),
    /// It had been used before: the family is now revoked.
    Reused {
        /// The revoked family.
        family_id: i64,
    },
    /// Unknown, expired, or its family was already revoked.
    Invalid,
}

const USER_COLUMNS: &str = "u.user_id, u.appid, u.openid, u.unionid, u.nickname, u.avatar_url, \
    u.gender, u.language, u.city, u.province, u.country, u.phone_number, u.pure_phone_number, \
    u.phone_country_code, extract(epoch from u.created_at)::bigint as created_at, \
    extract(epoch from u.updated_at)::bigint as updated_at";

fn user_from_row(row: &PgRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        user_id: row.try_get("user_id")?,
        appid: row.try_get("appid")?,
        openid: row.try_get("openid")?,
        unionid: row.try_get("unionid")?,
        nickname: row.try_get("nickname")?,
        avatar_url: row.try_get("avatar_url")?,
        gender: row.try_get("gender")?,
        language: row.try_get("language")?,
        city: row.try_get("city")?,
        province: row.try_get("province")?,
        country: row.try_get("country")?,
        phone_number: row.try_get("phone_number")?,
        pure_phone_number: row.try_get("pure_phone_number")?,
        phone_country_code: row.try_get("phone_country_code")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The Postgres store, cheap to clone (a pool inside).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Wraps a connected pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records that a code is about to be exchanged. Returns false when it already was: the
    /// primary key makes this atomic across replicas.
    pub async fn claim_code(&self, appid: &str, code_hash: &[u8]) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "insert into used_codes (appid, code_hash) values ($1, $2) on conflict do nothing",
        )
        .bind(appid)
        .bind(code_hash)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Stores a new session and drops the user's older sessions of the same app (their
    /// session_key is no longer WeChat's live one). Returns the expiry in Unix seconds.
    pub async fn create_session(&self, session: NewSession<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("delete from login_sessions where appid = $1 and openid = $2")
            .bind(session.appid)
            .bind(session.openid)
            .execute(&mut *tx)
            .await?;
        let expires_at: i64 = sqlx::query_scalar(
            "insert into login_sessions \
               (id_hash, appid, openid, unionid, session_key_kid, session_key_nonce, session_key_sealed, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) \
             returning extract(epoch from expires_at)::bigint",
        )
        .bind(session.id_hash)
        .bind(session.appid)
        .bind(session.openid)
        .bind(session.unionid)
        .bind(&session.sealed_key.kid)
        .bind(&session.sealed_key.nonce)
        .bind(&session.sealed_key.ciphertext)
        .bind(session.ttl_secs as f64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(expires_at)
    }

    /// The live session with this id digest, if any.
    pub async fn find_session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "select appid, openid, unionid, session_key_kid, session_key_nonce, session_key_sealed \
             from login_sessions where id_hash = $1 and expires_at > now()",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRow {
            appid: row.try_get("appid")?,
            openid: row.try_get("openid")?,
            unionid: row.try_get("unionid")?,
            sealed_key: Sealed {
                kid: row.try_get("session_key_kid")?,
                nonce: row.try_get("session_key_nonce")?,
                ciphertext: row.try_get("session_key_sealed")?,
            },
        }))
    }

    /// Creates or updates the user of (appid, openid), and starts a session family with its
    /// first refresh token, in one transaction. Fields of `update` that are `None` keep their
    /// stored value.
    pub async fn complete_login(
        &self,
        appid: &str,
        openid: &str,
        update: &UserUpdate,
        refresh: NewRefresh<'_>,
    ) -> Result<IssuedLogin, StoreError> {
        let mut tx = self.pool.begin().await?;
        let user_id: i64 = sqlx::query_scalar(
            "insert into users as u (appid, openid, unionid, nickname, avatar_url, gender, language, \
                city, province, country, phone_number, pure_phone_number, phone_country_code) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             on conflict (appid, openid) do update set \
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
                updated_at = now() \
             returning user_id",
        )
        .bind(appid)
        .bind(openid)
        .bind(&update.unionid)
        .bind(&update.nickname)
        .bind(&update.avatar_url)
        .bind(update.gender)
        .bind(&update.language)
        .bind(&update.city)
        .bind(&update.province)
        .bind(&update.country)
        .bind(&update.phone_number)
        .bind(&update.pure_phone_number)
        .bind(&update.phone_country_code)
        .fetch_one(&mut *tx)
        .await?;
        let family_id: i64 = sqlx::query_scalar(
            "insert into token_families (user_id, appid) values ($1, $2) returning family_id",
        )
        .bind(user_id)
        .bind(appid)
        .fetch_one(&mut *tx)
        .await?;
        let refresh_expires_at = insert_refresh(&mut tx, family_id, refresh).await?;
        let user = fetch_user(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(IssuedLogin {
            user,
            family_id,
            refresh_expires_at,
        })
    }

    /// Trades a refresh token for a new one in the same family, atomically: two concurrent
    /// refreshes with one token cannot both win (the row is locked), and the loser is
    /// treated as reuse.
    pub async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new: NewRefresh<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "select r.family_id, r.used_at is not null as used, r.expires_at <= now() as expired, \
                    f.revoked_at is not null as revoked, f.user_id \
             from refresh_tokens r join token_families f on f.family_id = r.family_id \
             where r.token_hash = $1 for update of r, f",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let family_id: i64 = row.try_get("family_id")?;
        let (used, expired, revoked): (bool, bool, bool) = (
            row.try_get("used")?,
            row.try_get("expired")?,
            row.try_get("revoked")?,
        );
        if revoked || expired {
            return Ok(RefreshOutcome::Invalid);
        }
        if used {
            revoke_families(&mut tx, &[family_id], "refresh token reused").await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused { family_id });
        }
        sqlx::query("update refresh_tokens set used_at = now() where token_hash = $1")
            .bind(old_hash)
            .execute(&mut *tx)
            .await?;
        let refresh_expires_at = insert_refresh(&mut tx, family_id, new).await?;
        let user = fetch_user(&mut tx, row.try_get("user_id")?).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(Box::new(IssuedLogin {
            user,
            family_id,
            refresh_expires_at,
        })))
    }

    /// Revokes one family (if live). Returns whether it was live.
    pub async fn revoke_family(&self, family_id: i64, reason: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = revoke_families(&mut tx, &[family_id], reason).await?;
        tx.commit().await?;
        Ok(revoked == 1)
    }

    /// The family of a refresh token, whatever its state.
    pub async fn family_of_refresh(&self, hash: &[u8]) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("select family_id from refresh_tokens where token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Revokes every live family of a user. Returns how many there were.
    pub async fn revoke_user(&self, user_id: i64, reason: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let families: Vec<i64> = sqlx::query_scalar(
            "select family_id from token_families where user_id = $1 and revoked_at is null for update",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let revoked = revoke_families(&mut tx, &families, reason).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Families revoked in the last `window_secs` seconds: what a replica's cache must hold
    /// (older ones only have expired access tokens left).
    pub async fn recently_revoked(&self, window_secs: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "select family_id from token_families \
             where revoked_at > now() - make_interval(secs => $1)",
        )
        .bind(window_secs as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether a family is revoked, asked of the database itself: the fallback while a
    /// replica's revocation cache is not connected.
    pub async fn is_family_revoked(&self, family_id: i64) -> Result<bool, StoreError> {
        let revoked: Option<bool> = sqlx::query_scalar(
            "select revoked_at is not null from token_families where family_id = $1",
        )
        .bind(family_id)
        .fetch_optional(&self.pool)
        .await?;
        // A family that does not exist (deleted user) is as good as revoked.
        Ok(revoked.unwrap_or(true))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes expired rows, `batch` at a time per statement, until none is left. Returns
    /// how many were deleted. What goes:
    /// - codes older than ten minutes (WeChat's codes live five);
    /// - sessions past their expiry;
    /// - refresh tokens past their expiry (used ones are kept until then, for reuse detection);
    /// - session families with no refresh token left (their access tokens expired long ago).
    pub async fn purge_expired(&self, batch: i64) -> Result<u64, StoreError> {
        const STATEMENTS: [&str; 4] = [
            "delete from used_codes where (appid, code_hash) in (select appid, code_hash from used_codes \
             where created_at < now() - interval '10 minutes' limit $1)",
            "delete from login_sessions where id_hash in (select id_hash from login_sessions \
             where expires_at < now() limit $1)",
            "delete from refresh_tokens where token_hash in (select token_hash from refresh_tokens \
             where expires_at < now() limit $1)",
            "delete from token_families where family_id in (select f.family_id from token_families f \
             where not exists (select 1 from refresh_tokens r where r.family_id = f.family_id) \
             and f.created_at < now() - interval '1 minute' limit $1)",
        ];
        let mut purged = 0;
        for statement in STATEMENTS {
            loop {
                let deleted = sqlx::query(statement)
                    .bind(batch)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                purged += deleted;
                if deleted < u64::try_from(batch).unwrap_or(0) {
                    break;
                }
            }
        }
        Ok(purged)
    }

    /// The pool, for the revocation listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A user by id.
    pub async fn get_user(&self, user_id: i64) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!(
            "select {USER_COLUMNS} from users u where u.user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| user_from_row(&row))
            .transpose()
            .map_err(StoreError)
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    family_id: i64,
    refresh: NewRefresh<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "insert into refresh_tokens (token_hash, family_id, expires_at) \
         values ($1, $2, now() + make_interval(secs => $3)) \
         returning extract(epoch from expires_at)::bigint",
    )
    .bind(refresh.hash)
    .bind(family_id)
    .bind(refresh.ttl_secs as f64)
    .fetch_one(&mut **tx)
    .await
}

async fn fetch_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: i64,
) -> Result<UserRow, sqlx::Error> {
    let row = sqlx::query(&format!(
        "select {USER_COLUMNS} from users u where u.user_id = $1"
    ))
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    user_from_row(&row)
}

/// Marks families revoked and tells every replica (the NOTIFY is delivered on commit).
async fn revoke_families(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    families: &[i64],
    reason: &str,
) -> Result<u64, sqlx::Error> {
    if families.is_empty() {
        return Ok(0);
    }
    let revoked: Vec<i64> = sqlx::query_scalar(
        "update token_families set revoked_at = now(), revoke_reason = $2 \
         where family_id = any($1) and revoked_at is null returning family_id",
    )
    .bind(families)
    .bind(reason)
    .fetch_all(&mut **tx)
    .await?;
    for family_id in &revoked {
        sqlx::query("select pg_notify($1, $2)")
            .bind(REVOKED_CHANNEL)
            .bind(family_id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(revoked.len() as u64)
}
