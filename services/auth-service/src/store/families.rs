//! Session families (one per login) and their refresh tokens: their records, and revocation,
//! which every replica hears of through `NOTIFY` (the rotation itself is `rotating`'s). Ending a
//! family also ends the user's open login sessions, so nothing issued before can mint tokens
//! again.

use sqlx::{
    Row as _,
    postgres::{PgConnection, PgRow},
};

use super::statement;
use super::{
    PgStore, StoreError,
    audit::AUDIT_INSERT,
    gate::barred_sql,
    logins::IssuedLogin,
    outbox::{bind_wanted, outbox_cte},
};
use crate::{
    clock::Timestamp,
    domain::{
        AuditKind, CallContext,
        events::EventKind,
        rotation::{Presented, RefreshRules, Refusal},
    },
    secrets::Sealed,
};

/// The Postgres channel that carries revoked family ids (and heartbeats) to every replica.
pub const REVOKED_CHANNEL: &str = "wxauth_revoked";

/// A login's new refresh token, stored by its digest.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh<'a> {
    /// SHA-256 of the refresh token.
    pub hash: &'a [u8],
    /// Lifetime in seconds: how long the family may sit unused (its idle limit).
    pub ttl_secs: i64,
    /// The scopes the login asked for, space-separated, kept with the family; `None`: the
    /// default grant (every scope, no ID token).
    pub scope: Option<&'a str>,
}

/// A rotation: the successor, and the rules it is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// SHA-256 of the new refresh token.
    pub new_hash: &'a [u8],
    /// The new refresh token, sealed (bound to the old one's digest), kept for the grace.
    pub successor: &'a Sealed,
    /// How refresh tokens age.
    pub rules: RefreshRules,
}

/// What presenting a refresh token did.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// It was live: it is now used, and the new one is stored in the same family.
    Rotated(Box<IssuedLogin>),
    /// It was used moments ago and its successor is still unused: the same successor again.
    Replayed {
        /// The user and family, and when the successor expires.
        issued: Box<IssuedLogin>,
        /// The successor, sealed.
        successor: Sealed,
    },
    /// It had been used before: the family is now revoked.
    Reused {
        /// The revoked family.
        family_id: i64,
    },
    /// Refused, and nothing changed: unknown, expired, of a family too old or revoked.
    Refused {
        /// Why.
        why: Refusal,
        /// The family and its user and app, when the token is on record.
        family: Option<(i64, i64, String)>,
    },
}

/// A refresh token as an introspection reads it (no lock): what the rotation rule judges,
/// and whose it is.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// What the rule judges (without the successor: a used token is never active).
    pub presented: Presented,
    /// The family.
    pub family_id: i64,
    /// The user.
    pub user_id: i64,
    /// The app.
    pub appid: String,
    /// The scopes the family was granted (`None`: the default grant).
    pub scope: Option<String>,
    /// The user's openid.
    pub openid: Option<String>,
    /// The user's unionid.
    pub unionid: Option<String>,
    /// The user's account.
    pub account_id: Option<i64>,
}

/// Revokes the families that `which` selects (a `where` over `token_families`, with `$1`),
/// ends their users' open login sessions, tells every replica, and audits each family as
/// `$2` (kind) with `$3` (reason), `$4`..`$6` and `$8` the call, at `$7`. Writes the
/// webhook events bound at `$9`..`$12` for each family (see [`revoke`]). Returns the
/// families revoked.
fn revoke_sql(which: &str) -> String {
    format!(
        "with revoked as (update token_families set revoked_at = $7, revoke_reason = $3 \
           where {which} and revoked_at is null returning family_id, user_id, appid), \
         ended as (delete from login_sessions s using users u \
           where u.user_id in (select user_id from token_families where {which}) \
           and s.appid = u.appid and s.openid = u.openid), \
         audited as ({AUDIT_INSERT} select $7, $2, $3, appid, user_id, null, family_id, $4, $5, \
           $6, $8 from revoked), \
         {events} \
         select family_id, pg_notify('{REVOKED_CHANNEL}', family_id::text)::text as notified \
         from revoked",
        events = outbox_cte(
            "ev",
            "(select r.family_id, r.user_id, r.appid, us.account_id, us.openid, us.unionid \
               from revoked r join users us on us.user_id = r.user_id) x",
            9,
            "$7",
            "true",
            "'family_id', x.family_id::text, 'reason', $3::text",
        ),
    )
}

/// The families a revocation ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Families<'a> {
    /// One family.
    One(i64),
    /// Every live family of a user.
    OfUser(i64),
    /// Every live family of these users.
    OfUsers(&'a [i64]),
}

/// Why families end: the audit kind, the reason, and whether it is reuse (then
/// `session.reuse_detected` comes before `session.revoked`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ending<'a> {
    pub(super) kind: AuditKind,
    pub(super) reason: &'a str,
    pub(super) reuse: bool,
}

/// Revokes `families` on `conn` ([`revoke_sql`]), audited and with the webhook events of
/// `ending`; returns its rows, one per family revoked.
pub(super) async fn revoke(
    store: &PgStore,
    conn: &mut PgConnection,
    families: Families<'_>,
    ending: Ending<'_>,
    context: &CallContext,
    now: Timestamp,
) -> Result<Vec<PgRow>, sqlx::Error> {
    let wanted = if ending.reuse {
        store.wanting(&[EventKind::SessionReuseDetected, EventKind::SessionRevoked])
    } else {
        store.wanting(&[EventKind::SessionRevoked])
    };
    let sql = revoke_sql(match families {
        Families::One(_) => "family_id = $1",
        Families::OfUser(_) => "user_id = $1",
        Families::OfUsers(_) => "user_id = any($1)",
    });
    let query = statement::query(&sql);
    let query = match families {
        Families::One(id) | Families::OfUser(id) => query.bind(id),
        Families::OfUsers(ids) => query.bind(ids),
    };
    bind_wanted(
        query
            .bind(ending.kind.name())
            .bind(ending.reason)
            .bind(&context.caller)
            .bind(&context.client_addr)
            .bind(&context.request_id)
            .bind(now)
            .bind(&context.client_request_id),
        &wanted,
    )
    .fetch_all(&mut *conn)
    .await
}

impl PgStore {
    /// Revokes one family (if live) at its holder's request, and ends the user's open login
    /// sessions. Returns whether the family was live.
    pub async fn revoke_family(
        &self,
        family_id: i64,
        context: &CallContext,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let ending = Ending {
            kind: AuditKind::Logout,
            reason: "logout",
            reuse: false,
        };
        let revoked = self
            .run(async |conn| {
                revoke(self, conn, Families::One(family_id), ending, context, now).await
            })
            .await?;
        Ok(revoked.len() == 1)
    }

    /// A refresh token and its family as they stand, for an introspection.
    pub async fn refresh_record(&self, hash: &[u8]) -> Result<Option<RefreshRecord>, StoreError> {
        let now = self.now();
        let row = self
            .run(async |conn| {
                statement::query(&format!(
                    "select r.family_id, f.user_id, f.appid, f.scope, r.used_at, r.expires_at, \
                       f.created_at, f.revoked_at is not null as revoked, u.openid, u.unionid, \
                       u.account_id, coalesce({}, false) as user_barred \
                     from refresh_tokens r join token_families f on f.family_id = r.family_id \
                       left join users u on u.user_id = f.user_id \
                     where r.token_hash = $1",
                    barred_sql("u", "$2")
                ))
                .bind(hash)
                .bind(now)
                .fetch_optional(conn)
                .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(RefreshRecord {
            presented: Presented {
                used_at: row.try_get("used_at")?,
                expires_at: row.try_get("expires_at")?,
                family_created_at: row.try_get("created_at")?,
                family_revoked: row.try_get("revoked")?,
                user_barred: row.try_get("user_barred")?,
                successor: None,
            },
            family_id: row.try_get("family_id")?,
            user_id: row.try_get("user_id")?,
            appid: row.try_get("appid")?,
            scope: row.try_get("scope")?,
            openid: row.try_get("openid")?,
            unionid: row.try_get("unionid")?,
            account_id: row.try_get("account_id")?,
        }))
    }

    /// The scopes the family of a refresh token was granted (`Some(None)`: the default
    /// grant), whatever the token's state; `None` for an unknown token.
    pub async fn scope_of_refresh(
        &self,
        hash: &[u8],
    ) -> Result<Option<Option<String>>, StoreError> {
        self.run(async |conn| {
            statement::query_scalar(
                "select f.scope from refresh_tokens r join token_families f \
                   on f.family_id = r.family_id where r.token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(conn)
            .await
        })
        .await
    }

    /// The app of a refresh token, whatever its state.
    pub async fn app_of_refresh(&self, hash: &[u8]) -> Result<Option<String>, StoreError> {
        self.run(async |conn| {
            statement::query_scalar(
                "select f.appid from refresh_tokens r join token_families f \
                   on f.family_id = r.family_id where r.token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(conn)
            .await
        })
        .await
    }

    /// The family of a refresh token, whatever its state.
    pub async fn family_of_refresh(&self, hash: &[u8]) -> Result<Option<i64>, StoreError> {
        self.run(async |conn| {
            statement::query_scalar("select family_id from refresh_tokens where token_hash = $1")
                .bind(hash)
                .fetch_optional(conn)
                .await
        })
        .await
    }

    /// Revokes every live family of a user and ends their open login sessions, telling every
    /// replica; `reason` says who asked. Returns the families revoked.
    pub async fn revoke_user(
        &self,
        user_id: i64,
        reason: &str,
        context: &CallContext,
    ) -> Result<Vec<i64>, StoreError> {
        let now = self.now();
        let ending = Ending {
            kind: AuditKind::Revoked,
            reason,
            reuse: false,
        };
        let revoked = self
            .run(async |conn| {
                revoke(self, conn, Families::OfUser(user_id), ending, context, now).await
            })
            .await?;
        Ok(revoked
            .iter()
            .map(|row| row.try_get("family_id"))
            .collect::<Result<_, _>>()?)
    }

    /// Families revoked in the last `window_secs` seconds: what a replica's cache must hold
    /// (older ones only have expired access tokens left).
    pub async fn recently_revoked(&self, window_secs: i64) -> Result<Vec<i64>, StoreError> {
        let since = self.now().plus_secs(-window_secs);
        self.run(async |conn| {
            statement::query_scalar("select family_id from token_families where revoked_at > $1")
                .bind(since)
                .fetch_all(conn)
                .await
        })
        .await
    }

    /// Whether a family is revoked, asked of the database itself: the fallback while a
    /// replica's revocation cache is not connected.
    pub async fn is_family_revoked(&self, family_id: i64) -> Result<bool, StoreError> {
        let revoked: Option<bool> = self
            .run(async |conn| {
                statement::query_scalar(
                    "select revoked_at is not null from token_families where family_id = $1",
                )
                .bind(family_id)
                .fetch_optional(conn)
                .await
            })
            .await?;
        // A family that does not exist (deleted user) is as good as revoked.
        Ok(revoked.unwrap_or(true))
    }
}
