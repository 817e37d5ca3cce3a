//! Background work of a replica: reporting whether the database answers (gRPC health and
//! `/readyz`), purging what has expired, in small batches, so tables do not grow without
//! bound, and refreshing the apps' access_tokens ahead of expiry.

use std::{sync::Arc, time::Duration};

use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::{debug, info, warn};
use wxauth_process::metrics::Readiness;
use wxauth_proto::v1::auth_service_server::SERVICE_NAME;

use crate::{
    lifecycle::Lifecycle,
    login_sessions::LoginSessions,
    metrics::Metrics,
    quotas::WeChatQuota,
    revocation::Revocations,
    store::PgStore,
    store::upkeep::{KeyWalk, Retention},
    wechat_calls::WeChatCalls,
};

/// How often the database is pinged for health.
const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a ping may take before the database counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The health a replica reports, in both forms a caller may read: gRPC health for every
/// service name it serves, and the flag of `/readyz` on the metrics listener (for a
/// Kubernetes HTTP probe when gRPC speaks TLS).
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    readiness: Readiness,
}

impl Health {
    /// Health reported through `reporter` and `readiness`.
    pub fn new(reporter: HealthReporter, readiness: Readiness) -> Self {
        Self {
            reporter,
            readiness,
        }
    }

    /// Sets the readiness flag, then the health of the server as a whole (`""`) and of
    /// `wxauth.v1.AuthService`: whoever sees the gRPC status change sees the flag changed.
    pub async fn set(&self, status: ServingStatus) {
        self.readiness.set(status == ServingStatus::Serving);
        for service in ["", SERVICE_NAME] {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// Keeps gRPC health in step with the database: SERVING while it answers and takes writes,
/// NOT_SERVING while it does not answer or answers reads only (a standby after a failover,
/// a server set read-only: every login would fail). The ping has a connection of its own: a
/// pool kept busy by logins is load, not an unreachable database, and saying otherwise would
/// take every replica of a busy deployment out of service at once. While the database cannot
/// serve, the pool's idle connections are closed, so that once it can, no request is handed
/// one that died or still points at the old primary.
pub async fn report_health(
    store: PgStore,
    health: Health,
    metrics: Arc<Metrics>,
    revocations: Arc<Revocations>,
    replica: Replica,
) {
    let own = store.own_connection();
    let mut serving = true;
    loop {
        let (size, idle) = store.pool_status();
        metrics.pool(size, idle);
        let unusable = match tokio::time::timeout(PING_TIMEOUT, own.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {PING_TIMEOUT:?}")),
        };
        if unusable.is_none() {
            // The heartbeat that tells every replica how many share the quotas; a missed
            // one leaves the share as it was.
            if let Ok(Ok(replicas)) =
                tokio::time::timeout(PING_TIMEOUT, own.replica_beat(&replica.id)).await
            {
                replica.quota.set_replicas(replicas);
                metrics.replicas(replicas);
            }
        }
        let usable = unusable.is_none();
        if !usable {
            // After a failover the old connections may still reach the old primary, now a
            // standby; a new one reaches the new primary. The ping's own included: kept, it
            // would report the old primary's read-only state for as long as that lives.
            store.drop_idle_connections();
            own.drop_idle_connections();
        }
        metrics.liveness(usable, revocations.is_live());
        if usable != serving {
            serving = usable;
            if serving {
                info!("database answers and takes writes again: serving");
                health.set(ServingStatus::Serving).await;
            } else {
                warn!(
                    cause = unusable.as_deref().unwrap_or_default(),
                    "database cannot serve logins: not serving"
                );
                health.set(ServingStatus::NotServing).await;
            }
        }
        tokio::time::sleep(PING_EVERY).await;
    }
}

/// This replica, as the others count it: its heartbeat's id, and the quota it divides.
#[derive(Debug, Clone)]
pub struct Replica {
    /// A random id, new at each start.
    pub id: String,
    /// The quotas shared among the replicas alive.
    pub quota: Arc<WeChatQuota>,
}

/// How many batches of kept session_keys each interval looks at: 100 of 500 keys, each an
/// index range read of a millisecond or two, walk ten million users in 200 intervals, under
/// 17 hours at the default interval of five minutes.
const KEPT_KEY_BATCHES: usize = 100;

/// Every `interval`: measures the tables, deletes expired rows, `batch` rows per statement,
/// so no purge holds locks for long, walks on through the kept session_keys, erases the users whose deletion's cooling-off has ended, and moves
/// sessions sealed under an older key to the active one (a key rotation's last step).
/// Several replicas may do all of it at once: their purges and erasures take disjoint rows,
/// and a re-seal replaces a row only if it is still as it was read.
pub async fn purge_expired(
    store: PgStore,
    sessions: Arc<LoginSessions>,
    lifecycle: Arc<Lifecycle>,
    interval: Duration,
    batch: i64,
    retention: Retention,
    metrics: Arc<Metrics>,
) {
    let mut walk = KeyWalk::default();
    loop {
        match store.table_sizes().await {
            Ok(sizes) => metrics.table_sizes(&sizes),
            Err(err) => {
                warn!(error = %err, "measuring the tables failed; retrying at the next interval")
            }
        }
        tokio::time::sleep(interval).await;
        match lifecycle.erase_due(batch).await {
            Ok(0) => {}
            Ok(erased) => info!(erased, "users erased at the end of their cooling-off"),
            Err(err) => {
                warn!(error = %err, "erasing deleted users failed; retrying at the next interval")
            }
        }
        match store.purge_expired(batch, retention).await {
            Ok(0) => debug!("nothing expired to purge"),
            Ok(purged) => info!(purged, "purged expired rows"),
            Err(err) => warn!(error = %err, "purge failed; retrying at the next interval"),
        }
        match store
            .purge_kept_keys(&mut walk, batch, KEPT_KEY_BATCHES)
            .await
        {
            Ok(0) => {}
            Ok(purged) => info!(purged, "purged session_keys kept past 30 days"),
            Err(err) => {
                warn!(error = %err, "purging kept session_keys failed; retrying at the next interval")
            }
        }
        match sessions.reseal(batch).await {
            Ok(0) => {}
            Ok(moved) => info!(moved, "sessions re-sealed under the active key"),
            Err(err) => warn!(error = %err, "re-sealing failed; retrying at the next interval"),
        }
    }
}

/// Seals the phone numbers still in the clear (written by a release before sealing) and
/// moves those sealed under a retired key to the active one: `batch` at a time, at once
/// while there are more, then every `interval`. This is the online migration of phone
/// numbers: nothing waits for it, and a number is found by the same query before and after.
pub async fn seal_phones(store: PgStore, interval: Duration, batch: i64) {
    loop {
        match store.seal_phones(batch).await {
            Ok(sealed) if sealed as i64 >= batch => {
                info!(
                    sealed,
                    "phone numbers sealed under the active key; more to go"
                );
                continue;
            }
            Ok(0) => {}
            Ok(sealed) => info!(sealed, "phone numbers sealed under the active key"),
            Err(err) => {
                warn!(error = %err, "sealing phone numbers failed; retrying at the next interval")
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Every `interval`: refreshes the apps' access_tokens that are about to expire, so calls
/// that need one rarely wait for WeChat. Every replica looks; for each app one fetches (under
/// the app's lock) and the others find the fresh token.
pub async fn refresh_app_tokens(wechat_calls: Arc<WeChatCalls>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(err) = wechat_calls.refresh_expiring().await {
            warn!(error = %err, "looking for access_tokens to refresh failed; retrying at the next interval");
        }
    }
}
