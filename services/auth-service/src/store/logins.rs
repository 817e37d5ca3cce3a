//! Logins: the user written (their account decided by `domain::merge`), and the token
//! family each login starts.

use std::sync::LazyLock;

use sqlx::{Row as _, postgres::PgRow};

use super::statement;
use super::{
    NewRefresh, PgStore, StoreError,
    audit::AUDIT_INSERT,
    gate::barred_sql,
    outbox::{bind_wanted, outbox_cte},
    users::{USER_COLUMNS, standing_of},
};
use crate::domain::{
    AuditKind, CallContext, User, UserUpdate,
    events::EventKind,
    lifecycle::{self, Barred},
    merge,
};

/// What writing a login came to.
#[derive(Debug)]
pub enum LoginWrite {
    /// Stored, with a new family.
    Issued(Box<IssuedLogin>),
    /// The login session is gone (expired, used, replaced by a newer login).
    SessionGone,
    /// The user may not log in (suspended, or waiting out a deletion): nothing was written.
    Barred(Barred),
}

impl LoginWrite {
    /// The login stored, if it was.
    pub fn issued(self) -> Option<IssuedLogin> {
        match self {
            Self::Issued(issued) => Some(*issued),
            Self::SessionGone | Self::Barred(_) => None,
        }
    }
}

/// A login as stored: the user and the family its tokens belong to.
#[derive(Debug)]
pub struct IssuedLogin {
    /// The user as stored now.
    pub user: User,
    /// The session family.
    pub family_id: i64,
    /// When the refresh token expires, Unix seconds.
    pub refresh_expires_at: i64,
    /// The scopes the family was granted (`None`: a family of before scopes, every scope).
    pub scope: Option<String>,
}

/// A query that reads what the account rule needs of the user of (appid, openid) and of a
/// unionid, given as the parameters numbered `appid`, `openid` and `unionid`: one row, in
/// one snapshot, one index read of each table. The statement that stores a login session
/// ends with it (see `store::sessions`), so a login usually needs no read of its own.
pub(super) fn account_facts(appid: usize, openid: usize, unionid: usize) -> String {
    format!(
        "select stored.account_id as stored_account, stored.unionid as stored_unionid, \
           stored.status, stored.status_reason, stored.suspended_until, stored.delete_after, \
           (select account_id from accounts where unionid = ${unionid}) as unionid_account \
         from (select 1) as one left join users as stored \
           on stored.appid = ${appid} and stored.openid = ${openid}"
    )
}

/// The account facts of a row of [`account_facts`], read for `unionid`.
pub(super) fn account_state(
    row: &PgRow,
    unionid: Option<&str>,
) -> Result<merge::AccountState, sqlx::Error> {
    let stored = row
        .try_get::<Option<i64>, _>("stored_account")?
        .map(|account_id| {
            Ok::<_, sqlx::Error>(merge::StoredUser {
                account_id,
                unionid: row.try_get("stored_unionid")?,
            })
        })
        .transpose()?;
    let standing = match row.try_get::<Option<String>, _>("status")? {
        Some(_) => Some(standing_of(row)?),
        None => None,
    };
    Ok(merge::AccountState {
        stored,
        unionid: unionid.map(str::to_owned),
        unionid_account: row.try_get("unionid_account")?,
        standing,
    })
}

/// Writes a login whose account [`merge::decide`] named, in one statement (one round trip,
/// one commit): the session checked (and used up, with `consume`), the account claimed when
/// the rule says so, the user upserted, a family and its first refresh token started, the
/// event audited.
///
/// The decision was made on facts read before this statement, so it holds only if the user's
/// account is still the one read (`$26`): the upsert checks that on the user's row, under
/// its lock, and otherwise writes nothing (`upserted` is false), and the store reads the
/// facts again and decides again. The session is used up only once the user is written, and
/// by one statement only: of two completions of one session at once, the second finds it
/// gone and starts no family.
///
/// A claim is an upsert on the unionid: when a concurrent login (the same person through
/// another app) made the row first, it returns that row, so both end in one account.
///
/// A user who may not log in (suspended, being deleted: [`lifecycle::barred`], in its SQL
/// form) gets nothing written, and the answer says so (`barred`), even when the login
/// session is gone (a suspension ends them); the upsert checks it again under the row's
/// lock, so a suspension committed meanwhile is not outrun.
///
/// With `events`, the webhook events of the login are written too (their subscriptions bound
/// at `$30`..`$33`, the phone masked and in full at `$34` and `$35`); without, the statement
/// has no such clause at all, so a deployment without subscriptions pays nothing for them.
fn write_login_sql(consume: bool, events: bool) -> String {
    let gate = format!(
        "gate as (select {} as barred from users g where g.appid = $1 and g.openid = $2)",
        barred_sql("g", "$16")
    );
    let (ready, used) = if consume {
        (
            "select 1 where exists (select 1 from login_sessions \
               where id_hash = $25 and expires_at > $16) \
               and not coalesce((select barred from gate), false)",
            "delete from login_sessions where id_hash = $25 and exists (select 1 from u) \
               returning 1",
        )
    } else {
        // A silent login needs no live session: the code exchange it just made is its
        // right to tokens. Its session may already be superseded by a concurrent login of
        // the same user (only the newest one is kept), and the login must still end in
        // tokens, since the code is spent at WeChat.
        (
            "select 1 where $25::bytea is not null \
               and not coalesce((select barred from gate), false)",
            "select 1 from u",
        )
    };
    format!(
        "with {gate}, ready as ({ready}), \
         claimed as ( \
           insert into accounts as a (account_id, unionid, created_at) \
           select coalesce($23, nextval(pg_get_serial_sequence('accounts', 'account_id'))), \
             $3, $16 from ready where $22 \
           on conflict (unionid) do update set unionid = excluded.unionid \
           returning account_id), \
         target as (select coalesce((select account_id from claimed), $24) as account_id), \
         u as ( \
           insert into users as u (appid, openid, unionid, nickname, avatar_url, gender, language, \
              city, province, country, phone_kid, phone_nonce, phone_sealed, phone_index, \
              phone_index_kid, account_id, created_at, updated_at) \
           select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $27, $28, \
              coalesce((select account_id from target), \
                       nextval(pg_get_serial_sequence('accounts', 'account_id'))), $16, $16 \
           from ready \
           on conflict (appid, openid) do update set \
              account_id = coalesce((select account_id from target), u.account_id), \
              unionid = coalesce(excluded.unionid, u.unionid), \
              nickname = coalesce(excluded.nickname, u.nickname), \
              avatar_url = coalesce(excluded.avatar_url, u.avatar_url), \
              gender = coalesce(excluded.gender, u.gender), \
              language = coalesce(excluded.language, u.language), \
              city = coalesce(excluded.city, u.city), \
              province = coalesce(excluded.province, u.province), \
              country = coalesce(excluded.country, u.country), \
              phone_kid = coalesce(excluded.phone_kid, u.phone_kid), \
              phone_nonce = coalesce(excluded.phone_nonce, u.phone_nonce), \
              phone_sealed = coalesce(excluded.phone_sealed, u.phone_sealed), \
              phone_index = coalesce(excluded.phone_index, u.phone_index), \
              phone_index_kid = coalesce(excluded.phone_index_kid, u.phone_index_kid), \
              phone_number = case when excluded.phone_sealed is null then u.phone_number end, \
              pure_phone_number = \
                case when excluded.phone_sealed is null then u.pure_phone_number end, \
              phone_country_code = \
                case when excluded.phone_sealed is null then u.phone_country_code end, \
              updated_at = $16 \
           where u.account_id is not distinct from $26 and not {barred_u} \
           returning *, (xmax = 0) as created), \
         used as ({used}), \
         f as (insert into token_families (user_id, appid, created_at, scope) \
           select u.user_id, u.appid, $16, $29 from u, used returning family_id, scope), \
         r as (insert into refresh_tokens (token_hash, family_id, created_at, expires_at) \
           select $14, family_id, $16, $15 from f \
           returning extract(epoch from expires_at)::bigint as refresh_expires_at), \
         a as ({AUDIT_INSERT} select $16, $17, 'ok', u.appid, u.user_id, null, f.family_id, \
           $18, $19, $20, $21 from u, f){events} \
         select exists (select 1 from ready) as ready, exists (select 1 from u) as upserted, \
           coalesce((select barred from gate), false) as barred, \
           {columns}, f.family_id, f.scope, r.refresh_expires_at \
         from (select 1) as one left join u on true left join f on true left join r on true",
        barred_u = barred_sql("u", "$16"),
        columns = *USER_COLUMNS,
        events = if events {
            format!(
                ", {}",
                outbox_cte(
                    "ev",
                    "(select u.user_id, u.appid, u.account_id, u.openid, u.unionid, u.created, \
                       f.family_id, f.scope from u, f) x",
                    30,
                    "$16",
                    "case s.kind when 'user.created' then x.created \
                       when 'user.phone_bound' then $34::text is not null else true end",
                    "'family_id', case when s.kind = 'user.login' then x.family_id::text end, \
                     'scope', case when s.kind = 'user.login' then x.scope end, \
                     'phone_number', case when s.kind = 'user.phone_bound' then \
                       case when s.pii then $35::text else $34::text end end",
                )
            )
        } else {
            String::new()
        },
    )
}

static COMPLETE_LOGIN: LazyLock<String> = LazyLock::new(|| write_login_sql(true, false));
static SILENT_LOGIN: LazyLock<String> = LazyLock::new(|| write_login_sql(false, false));
static COMPLETE_LOGIN_EVENTS: LazyLock<String> = LazyLock::new(|| write_login_sql(true, true));
static SILENT_LOGIN_EVENTS: LazyLock<String> = LazyLock::new(|| write_login_sql(false, true));

/// How often a login is decided again when the user's account changed under it (another
/// login of the same person through another app, at the same moment) before the store
/// gives up and answers "unavailable".
const DECIDE_AGAIN: usize = 3;

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
    /// The account is [`merge::decide`]'s, on `known` facts when they were read for the
    /// same unionid (by the statement that stored the session), else on facts read here;
    /// see [`write_login_sql`] for how a decision made on stale facts is caught.
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_login(
        &self,
        session_hash: &[u8],
        completion: Completion,
        appid: &str,
        openid: &str,
        update: &UserUpdate,
        refresh: NewRefresh<'_>,
        known: Option<merge::AccountState>,
        context: &CallContext,
    ) -> Result<LoginWrite, StoreError> {
        let scope = refresh.scope;
        let wanted = self.wanting(&[
            EventKind::UserCreated,
            EventKind::UserLogin,
            EventKind::UserPhoneBound,
        ]);
        let events = !wanted.names.is_empty();
        let (sql, kind) = match (completion, events) {
            (Completion::UsesUpSession, false) => (&*COMPLETE_LOGIN, AuditKind::Login),
            (Completion::UsesUpSession, true) => (&*COMPLETE_LOGIN_EVENTS, AuditKind::Login),
            (Completion::KeepsSession, false) => (&*SILENT_LOGIN, AuditKind::SilentLogin),
            (Completion::KeepsSession, true) => (&*SILENT_LOGIN_EVENTS, AuditKind::SilentLogin),
        };
        let mut known = known.filter(|state| state.unionid == update.unionid);
        let phone = update
            .phone
            .as_ref()
            .map(|phone| self.seal_phone(appid, openid, phone))
            .transpose()?;
        let masked = update.phone.as_ref().map(|phone| phone.masked().number);
        let full = update.phone.as_ref().map(|phone| phone.number.as_str());
        for _ in 0..DECIDE_AGAIN {
            let state = match known.take() {
                Some(state) => state,
                None => {
                    self.account_state(appid, openid, update.unionid.as_deref())
                        .await?
                }
            };
            let now = self.now();
            if let Some(barred) = state
                .standing
                .as_ref()
                .and_then(|standing| lifecycle::barred(standing, now))
            {
                return Ok(LoginWrite::Barred(barred));
            }
            let (claim, claim_under, target) = match merge::decide(&state.facts()) {
                merge::Account::Fresh => (false, None, None),
                merge::Account::Keep(id) | merge::Account::Join(id) => (false, None, Some(id)),
                merge::Account::Claim { under } => (true, under, None),
            };
            let row = self
                .run(async |conn| {
                    let (profile, phone) = (&update.profile, phone.as_ref());
                    let query = statement::query(sql)
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
                        .bind(phone.map(|phone| &phone.sealed.kid))
                        .bind(phone.map(|phone| &phone.sealed.nonce))
                        .bind(phone.map(|phone| &phone.sealed.ciphertext))
                        .bind(refresh.hash)
                        .bind(now.plus_secs(refresh.ttl_secs))
                        .bind(now)
                        .bind(kind.name())
                        .bind(&context.caller)
                        .bind(&context.client_addr)
                        .bind(&context.request_id)
                        .bind(&context.client_request_id)
                        .bind(claim)
                        .bind(claim_under)
                        .bind(target)
                        .bind(session_hash)
                        .bind(state.stored_account())
                        .bind(phone.map(|phone| &phone.index))
                        .bind(phone.map(|phone| &phone.index_kid))
                        .bind(scope);
                    let query = if events {
                        bind_wanted(query, &wanted)
                            .bind(masked.as_deref())
                            .bind(full)
                    } else {
                        query
                    };
                    query.fetch_one(conn).await
                })
                .await?;
            if row.try_get::<bool, _>("barred")? {
                // Suspended since the facts were read: read them again, which says how.
                known = None;
                continue;
            }
            if !row.try_get::<bool, _>("ready")? {
                return Ok(LoginWrite::SessionGone);
            }
            if !row.try_get::<bool, _>("upserted")? {
                // The user's account changed since the facts were read: decide again.
                continue;
            }
            let Some(family_id) = row.try_get::<Option<i64>, _>("family_id")? else {
                // Another completion of this session used it up first.
                return Ok(LoginWrite::SessionGone);
            };
            return Ok(LoginWrite::Issued(Box::new(IssuedLogin {
                user: self.user_from_row(&row)?,
                family_id,
                refresh_expires_at: row.try_get("refresh_expires_at")?,
                scope: row.try_get("scope")?,
            })));
        }
        Err(StoreError::Contended)
    }

    /// What the account rule needs of (appid, openid) and `unionid`, read now.
    pub async fn account_state(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> Result<merge::AccountState, StoreError> {
        let row = self
            .run(async |conn| {
                statement::query(&account_facts(1, 2, 3))
                    .bind(appid)
                    .bind(openid)
                    .bind(unionid)
                    .fetch_one(conn)
                    .await
            })
            .await?;
        Ok(account_state(&row, unionid)?)
    }
}
