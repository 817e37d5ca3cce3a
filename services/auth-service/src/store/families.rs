//! Session families (one per login) and their refresh tokens: rotation with a grace period,
//! reuse detection, and revocation, which every replica hears of through `NOTIFY`. Ending a
//! family also ends the user's open login sessions, so nothing issued before can mint tokens
//! again.

use sqlx::{Connection as _, Row as _, postgres::PgConnection};

use super::{
    PgStore, StoreError,
    audit::{self, AUDIT_INSERT},
    logins::{IssuedLogin, USER_BY_ID, user_from_row},
};
use crate::{
    domain::{AuditKind, CallContext, NewAuditEvent},
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
}

/// A rotation: the successor, and the rules it is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// The new refresh token.
    pub new: NewRefresh<'a>,
    /// The new refresh token, sealed (bound to the old one's digest), kept for the grace.
    pub successor: &'a Sealed,
    /// How long after a rotation the old token still yields the same successor, seconds.
    pub grace_secs: i64,
    /// The longest a family lives, however often it is refreshed, seconds.
    pub family_max_age_secs: i64,
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
    /// Unknown, expired, of a family too old, or its family was already revoked.
    Invalid,
}

/// Revokes the families that `which` selects (a `where` over `token_families`, with `$1`),
/// ends their users' open login sessions, tells every replica, and audits each family as
/// `$2` (kind) with `$3` (reason), `$4`..`$6` the call. Returns the families revoked.
fn revoke_sql(which: &str) -> String {
    format!(
        "with revoked as (update token_families set revoked_at = now(), revoke_reason = $3 \
           where {which} and revoked_at is null returning family_id, user_id, appid), \
         ended as (delete from login_sessions s using users u \
           where u.user_id in (select user_id from token_families where {which}) \
           and s.appid = u.appid and s.openid = u.openid), \
         audited as ({AUDIT_INSERT} select $2, $3, appid, user_id, null, family_id, $4, $5, $6 \
           from revoked) \
         select family_id, pg_notify('{REVOKED_CHANNEL}', family_id::text)::text as notified \
         from revoked"
    )
}

impl PgStore {
    /// Trades a refresh token for a new one in the same family, atomically: two concurrent
    /// refreshes with one token cannot both rotate it (the row is locked); the second gets
    /// the same successor while the grace lasts, and anything later is reuse.
    pub async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        rotation: Rotation<'_>,
        context: &CallContext,
    ) -> Result<RefreshOutcome, StoreError> {
        self.run(async |conn| rotate(conn, old_hash, rotation, context).await)
            .await
    }

    /// Revokes one family (if live) at its holder's request, and ends the user's open login
    /// sessions. Returns whether the family was live.
    pub async fn revoke_family(
        &self,
        family_id: i64,
        context: &CallContext,
    ) -> Result<bool, StoreError> {
        let revoked = self
            .run(async |conn| {
                sqlx::query(&revoke_sql("family_id = $1"))
                    .bind(family_id)
                    .bind(AuditKind::Logout.name())
                    .bind("logout")
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        Ok(revoked.len() == 1)
    }

    /// The family of a refresh token, whatever its state.
    pub async fn family_of_refresh(&self, hash: &[u8]) -> Result<Option<i64>, StoreError> {
        self.run(async |conn| {
            sqlx::query_scalar("select family_id from refresh_tokens where token_hash = $1")
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
        let revoked = self
            .run(async |conn| {
                sqlx::query(&revoke_sql("user_id = $1"))
                    .bind(user_id)
                    .bind(AuditKind::Revoked.name())
                    .bind(reason)
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .fetch_all(conn)
                    .await
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
        self.run(async |conn| {
            sqlx::query_scalar(
                "select family_id from token_families \
                 where revoked_at > now() - make_interval(secs => $1)",
            )
            .bind(window_secs as f64)
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
                sqlx::query_scalar(
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

fn event(
    kind: AuditKind,
    outcome: &str,
    family_id: i64,
    user_id: i64,
    appid: String,
    context: &CallContext,
) -> NewAuditEvent {
    NewAuditEvent {
        kind,
        outcome: outcome.to_owned(),
        appid: Some(appid),
        user_id: Some(user_id),
        openid_digest: None,
        family_id: Some(family_id),
        context: context.clone(),
    }
}

/// The rotation, as one transaction on `conn`.
async fn rotate(
    conn: &mut PgConnection,
    old_hash: &[u8],
    rotation: Rotation<'_>,
    context: &CallContext,
) -> Result<RefreshOutcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    // Locked first: a concurrent rotation of the same token waits here, and then reads the
    // row as that one left it.
    let row = sqlx::query(
        "select r.family_id, f.user_id, f.appid, r.used_at is not null as used, \
                r.used_at > now() - make_interval(secs => $2) as in_grace, \
                r.expires_at <= now() as expired, f.revoked_at is not null as revoked, \
                f.created_at <= now() - make_interval(secs => $3) as too_old, \
                r.successor_hash, r.successor_kid, r.successor_nonce, r.successor_sealed \
         from refresh_tokens r join token_families f on f.family_id = r.family_id \
         where r.token_hash = $1 for update of r, f",
    )
    .bind(old_hash)
    .bind(rotation.grace_secs as f64)
    .bind(rotation.family_max_age_secs as f64)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(RefreshOutcome::Invalid);
    };
    let family_id: i64 = row.try_get("family_id")?;
    let user_id: i64 = row.try_get("user_id")?;
    let appid: String = row.try_get("appid")?;
    let flag = |name: &str| -> Result<bool, sqlx::Error> {
        Ok(row.try_get::<Option<bool>, _>(name)?.unwrap_or(false))
    };
    if flag("revoked")? || flag("expired")? || flag("too_old")? {
        return Ok(RefreshOutcome::Invalid);
    }
    if flag("used")? {
        let successor: Option<Sealed> = match (
            row.try_get::<Option<String>, _>("successor_kid")?,
            row.try_get::<Option<Vec<u8>>, _>("successor_nonce")?,
            row.try_get::<Option<Vec<u8>>, _>("successor_sealed")?,
        ) {
            (Some(kid), Some(nonce), Some(ciphertext)) => Some(Sealed {
                kid,
                nonce,
                ciphertext,
            }),
            _ => None,
        };
        // The successor as it is now (a new statement sees what committed since the lock).
        let successor_hash: Option<Vec<u8>> = row.try_get("successor_hash")?;
        let successor_live: Option<(bool, i64)> = match &successor_hash {
            Some(hash) => {
                sqlx::query_as(
                    "select used_at is null and expires_at > now(), \
                       extract(epoch from expires_at)::bigint \
                     from refresh_tokens where token_hash = $1",
                )
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        if let (true, Some((true, refresh_expires_at)), Some(successor)) =
            (flag("in_grace")?, successor_live, successor)
        {
            let user = user_from_row(
                &sqlx::query(&USER_BY_ID)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?,
            )?;
            audit::record(
                &mut tx,
                &event(
                    AuditKind::RefreshReplayed,
                    "ok",
                    family_id,
                    user_id,
                    appid,
                    context,
                ),
            )
            .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Replayed {
                issued: Box::new(IssuedLogin {
                    user,
                    family_id,
                    refresh_expires_at,
                }),
                successor,
            });
        }
        sqlx::query(&revoke_sql("family_id = $1"))
            .bind(family_id)
            .bind(AuditKind::RefreshReused.name())
            .bind("refresh token reused")
            .bind(&context.caller)
            .bind(&context.client_addr)
            .bind(&context.request_id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused { family_id });
    }
    sqlx::query(
        "update refresh_tokens set used_at = now(), successor_hash = $2, successor_kid = $3, \
           successor_nonce = $4, successor_sealed = $5 where token_hash = $1",
    )
    .bind(old_hash)
    .bind(rotation.new.hash)
    .bind(&rotation.successor.kid)
    .bind(&rotation.successor.nonce)
    .bind(&rotation.successor.ciphertext)
    .execute(&mut *tx)
    .await?;
    // The idle limit from now, but never past the family's absolute lifetime.
    let refresh_expires_at: i64 = sqlx::query_scalar(
        "insert into refresh_tokens (token_hash, family_id, expires_at) \
         select $1, $2, least(now() + make_interval(secs => $3), \
                              f.created_at + make_interval(secs => $4)) \
         from token_families f where f.family_id = $2 \
         returning extract(epoch from expires_at)::bigint",
    )
    .bind(rotation.new.hash)
    .bind(family_id)
    .bind(rotation.new.ttl_secs as f64)
    .bind(rotation.family_max_age_secs as f64)
    .fetch_one(&mut *tx)
    .await?;
    let user = user_from_row(
        &sqlx::query(&USER_BY_ID)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?,
    )?;
    audit::record(
        &mut tx,
        &event(AuditKind::Refresh, "ok", family_id, user_id, appid, context),
    )
    .await?;
    tx.commit().await?;
    Ok(RefreshOutcome::Rotated(Box::new(IssuedLogin {
        user,
        family_id,
        refresh_expires_at,
    })))
}
