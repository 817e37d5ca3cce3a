//! Session families (one per login) and their refresh tokens: rotation with a grace period,
//! reuse detection, and revocation, which every replica hears of through `NOTIFY`. Ending a
//! family also ends the user's open login sessions, so nothing issued before can mint tokens
//! again.

use sqlx::{
    Connection as _, Row as _,
    postgres::{PgConnection, PgRow},
};

use super::statement;
use super::{
    PgStore, StoreError,
    audit::{self, AUDIT_INSERT},
    gate::barred_sql,
    logins::IssuedLogin,
    outbox::{bind_wanted, outbox_cte},
    users::USER_BY_ID,
};
use crate::{
    clock::Timestamp,
    domain::{
        AuditKind, CallContext, NewAuditEvent, User,
        events::{EventKind, Wanted},
        rotation::{self, Decision, Presented, RefreshRules, Refusal, Successor},
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
/// webhook events bound at `$9`..`$12` for each family (see [`revoke_events`]). Returns the
/// families revoked.
pub(super) fn revoke_sql(which: &str) -> String {
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

/// Who hears of a revocation: `session.revoked`, after `session.reuse_detected` when it is
/// reuse.
fn revoke_events(store: &PgStore, reuse: bool) -> Wanted {
    if reuse {
        store.wanting(&[EventKind::SessionReuseDetected, EventKind::SessionRevoked])
    } else {
        store.wanting(&[EventKind::SessionRevoked])
    }
}

/// Revokes the families of `ids` (of users), audited as revoked with `reason`, with their
/// webhook events, in the transaction; returns the rows of [`revoke_sql`].
pub(super) async fn revoke_users(
    store: &PgStore,
    tx: &mut PgConnection,
    ids: &[i64],
    reason: &str,
    context: &CallContext,
    now: Timestamp,
) -> Result<Vec<PgRow>, sqlx::Error> {
    let wanted = revoke_events(store, false);
    bind_wanted(
        statement::query(&revoke_sql("user_id = any($1)"))
            .bind(ids)
            .bind(AuditKind::Revoked.name())
            .bind(reason)
            .bind(&context.caller)
            .bind(&context.client_addr)
            .bind(&context.request_id)
            .bind(now)
            .bind(&context.client_request_id),
        &wanted,
    )
    .fetch_all(&mut *tx)
    .await
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
        let now = self.now();
        self.run(async |conn| rotate(self, conn, old_hash, rotation, now, context).await)
            .await
    }

    /// Revokes one family (if live) at its holder's request, and ends the user's open login
    /// sessions. Returns whether the family was live.
    pub async fn revoke_family(
        &self,
        family_id: i64,
        context: &CallContext,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let wanted = revoke_events(self, false);
        let revoked = self
            .run(async |conn| {
                bind_wanted(
                    statement::query(&revoke_sql("family_id = $1"))
                        .bind(family_id)
                        .bind(AuditKind::Logout.name())
                        .bind("logout")
                        .bind(&context.caller)
                        .bind(&context.client_addr)
                        .bind(&context.request_id)
                        .bind(now)
                        .bind(&context.client_request_id),
                    &wanted,
                )
                .fetch_all(conn)
                .await
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
        let wanted = revoke_events(self, false);
        let revoked = self
            .run(async |conn| {
                bind_wanted(
                    statement::query(&revoke_sql("user_id = $1"))
                        .bind(user_id)
                        .bind(AuditKind::Revoked.name())
                        .bind(reason)
                        .bind(&context.caller)
                        .bind(&context.client_addr)
                        .bind(&context.request_id)
                        .bind(now)
                        .bind(&context.client_request_id),
                    &wanted,
                )
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
        account_id: None,
        context: context.clone(),
    }
}

/// The presented token under lock: what [`rotation::decide`] judges, and what the writes
/// of its decision need.
struct Locked {
    family_id: i64,
    user_id: i64,
    appid: String,
    scope: Option<String>,
    presented: Presented,
    successor_sealed: Option<Sealed>,
}

/// Reads the presented token, its family and its successor, the first two locked: a
/// concurrent rotation of the same token waits here, and then reads the rows as that one
/// left them.
async fn lock_presented(
    tx: &mut PgConnection,
    old_hash: &[u8],
    now: Timestamp,
) -> Result<Option<Locked>, sqlx::Error> {
    let Some(row) = statement::query(&format!(
        "select r.family_id, f.user_id, f.appid, f.scope, r.used_at, r.expires_at, f.created_at, \
                f.revoked_at is not null as revoked, r.successor_hash, r.successor_kid, \
                r.successor_nonce, r.successor_sealed, \
                coalesce((select {} from users u where u.user_id = f.user_id), false) \
                  as user_barred \
         from refresh_tokens r join token_families f on f.family_id = r.family_id \
         where r.token_hash = $1 for update of r, f",
        barred_sql("u", "$2")
    ))
    .bind(old_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let successor_sealed = match (
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
    // The successor as it is now: a statement of its own sees what committed while this
    // one waited for the lock, which the locking statement's join would not.
    let successor_hash: Option<Vec<u8>> = row.try_get("successor_hash")?;
    let successor = match &successor_hash {
        Some(hash) => statement::query_as::<(bool, Timestamp)>(
            "select used_at is not null, expires_at from refresh_tokens where token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?
        .map(|(used, expires_at)| Successor {
            used,
            expires_at,
            sealed_kept: successor_sealed.is_some(),
        }),
        None => None,
    };
    Ok(Some(Locked {
        family_id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        appid: row.try_get("appid")?,
        scope: row.try_get("scope")?,
        presented: Presented {
            used_at: row.try_get("used_at")?,
            expires_at: row.try_get("expires_at")?,
            family_created_at: row.try_get("created_at")?,
            family_revoked: row.try_get("revoked")?,
            user_barred: row.try_get("user_barred")?,
            successor,
        },
        successor_sealed,
    }))
}

/// The rotation, as one transaction on `conn`: read under lock, decide, write the decision.
/// Every way out that does not commit rolls back before it returns, so the connection goes
/// back to the pool with no transaction open and no lock held.
async fn rotate(
    store: &PgStore,
    conn: &mut PgConnection,
    old_hash: &[u8],
    rotation: Rotation<'_>,
    now: Timestamp,
    context: &CallContext,
) -> Result<RefreshOutcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let locked = lock_presented(&mut tx, old_hash, now).await?;
    let decision = rotation::decide(
        locked.as_ref().map(|locked| &locked.presented),
        now,
        rotation.rules,
    );
    let locked = match (locked, decision) {
        (Some(locked), Decision::Rotate { .. } | Decision::Replay | Decision::Reuse) => locked,
        (locked, refused) => {
            tx.rollback().await?;
            let why = match refused {
                Decision::Refuse(why) => why,
                _ => Refusal::Unknown,
            };
            return Ok(RefreshOutcome::Refused {
                why,
                family: locked.map(|locked| (locked.family_id, locked.user_id, locked.appid)),
            });
        }
    };
    let (family_id, user_id) = (locked.family_id, locked.user_id);
    let audited = |kind| {
        event(
            kind,
            "ok",
            family_id,
            user_id,
            locked.appid.clone(),
            context,
        )
    };
    match (
        decision,
        locked.successor_sealed,
        locked.presented.successor,
    ) {
        (
            Decision::Rotate {
                successor_expires_at,
            },
            _,
            _,
        ) => {
            statement::query(
                "with used as (update refresh_tokens set used_at = $6, successor_hash = $2, \
                   successor_kid = $3, successor_nonce = $4, successor_sealed = $5 \
                   where token_hash = $1) \
                 insert into refresh_tokens (token_hash, family_id, created_at, expires_at) \
                 values ($2, $7, $6, $8)",
            )
            .bind(old_hash)
            .bind(rotation.new_hash)
            .bind(&rotation.successor.kid)
            .bind(&rotation.successor.nonce)
            .bind(&rotation.successor.ciphertext)
            .bind(now)
            .bind(family_id)
            .bind(successor_expires_at)
            .execute(&mut *tx)
            .await?;
            let user = user_of(store, &mut tx, user_id).await?;
            audit::record(&mut tx, &audited(AuditKind::Refresh), now).await?;
            tx.commit().await?;
            Ok(RefreshOutcome::Rotated(Box::new(IssuedLogin {
                user,
                family_id,
                refresh_expires_at: successor_expires_at.secs(),
                scope: locked.scope,
            })))
        }
        (Decision::Replay, Some(successor), Some(standing)) => {
            let user = user_of(store, &mut tx, user_id).await?;
            audit::record(&mut tx, &audited(AuditKind::RefreshReplayed), now).await?;
            tx.commit().await?;
            Ok(RefreshOutcome::Replayed {
                issued: Box::new(IssuedLogin {
                    user,
                    family_id,
                    refresh_expires_at: standing.expires_at.secs(),
                    scope: locked.scope,
                }),
                successor,
            })
        }
        // Reuse, or a replay whose successor is not there to hand out (the rule only
        // replays one that is): the family is revoked.
        _ => {
            let wanted = revoke_events(store, true);
            bind_wanted(
                statement::query(&revoke_sql("family_id = $1"))
                    .bind(family_id)
                    .bind(AuditKind::RefreshReused.name())
                    .bind("refresh token reused")
                    .bind(&context.caller)
                    .bind(&context.client_addr)
                    .bind(&context.request_id)
                    .bind(now)
                    .bind(&context.client_request_id),
                &wanted,
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(RefreshOutcome::Reused { family_id })
        }
    }
}

/// The user by id, inside the transaction.
async fn user_of(
    store: &PgStore,
    tx: &mut PgConnection,
    user_id: i64,
) -> Result<User, sqlx::Error> {
    store.user_from_row(
        &statement::query(&USER_BY_ID)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?,
    )
}
