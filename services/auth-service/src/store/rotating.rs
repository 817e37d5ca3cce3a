//! A refresh token presented for rotation, in one transaction: read under lock, judged by
//! [`rotation::decide`], and the decision written (a successor, the same successor again,
//! or the family revoked as reused).

use sqlx::{Connection as _, Row as _, postgres::PgConnection};

use super::{
    PgStore, StoreError, audit,
    families::{Ending, Families, RefreshOutcome, Rotation, revoke},
    gate::barred_sql,
    logins::IssuedLogin,
    statement,
    users::USER_BY_ID,
};
use crate::{
    clock::Timestamp,
    domain::{
        AuditKind, CallContext, NewAuditEvent, User,
        rotation::{self, Decision, Presented, Refusal, Successor},
    },
    secrets::Sealed,
};

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
pub(super) async fn rotate(
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
            let ending = Ending {
                kind: AuditKind::RefreshReused,
                reason: "refresh token reused",
                reuse: true,
            };
            revoke(
                store,
                &mut tx,
                Families::One(family_id),
                ending,
                context,
                now,
            )
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
