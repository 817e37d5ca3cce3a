//! What the auth-service counts, for Prometheus.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use wxauth_wechat::WeChatError;

/// An RPC and how it ended: `OK` or the error reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The RPC, for example `CreateSession`.
    pub method: String,
    /// `OK`, or the `ErrorReason` name.
    pub outcome: String,
}

/// An RPC.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// The RPC.
    pub method: String,
}

/// How a WeChat call ended: `ok`, the errcode, `timeout`, `unreachable` or `bad_response`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WeChatLabels {
    /// Which WeChat API: `jscode2session`, `stable_token`, `getuserphonenumber`,
    /// `checksession` or `resetusersessionkey`.
    pub api: &'static str,
    /// The outcome.
    pub outcome: String,
}

/// Connections of the database pool by state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: String,
}

/// The auth-service's metrics.
#[derive(Debug)]
pub struct Metrics {
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    wechat_calls: Family<WeChatLabels, Counter>,
    wechat_duration: Histogram,
    pool_connections: Family<PoolLabels, Gauge>,
    audit_unwritten: Gauge,
    shed: Counter,
    wechat_quota_refused: Family<AppLabels, Counter>,
    database_up: Gauge,
    revocation_listener_up: Gauge,
    app_token_refreshes: Family<AppOutcome, Counter>,
    phone_bindings: Family<AppOutcome, Counter>,
    nickname_checks: Family<AppOutcome, Counter>,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    webhook_backlog_age: Gauge,
    webhook_pending: Gauge,
    webhook_dead: Gauge,
    replicas: Gauge,
    table_bytes: Family<TableLabels, Gauge>,
}

/// A table of the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct TableLabels {
    /// Its name.
    pub table: String,
}

/// Labels of a webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct WebhookLabels {
    /// The subscription.
    pub subscription: String,
    /// `delivered`, `retry` (failed, tried again later) or `dead` (failed for the last time).
    pub outcome: &'static str,
}

/// Labels of a per-app outcome.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct AppOutcome {
    /// The appid.
    pub appid: String,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// Labels of a per-app series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct AppLabels {
    /// The appid.
    pub appid: String,
}

impl Metrics {
    /// The metrics and the registry that exposes them.
    pub fn new() -> (Self, Registry) {
        let metrics = Self {
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(wxauth_process::metrics::latency_histogram),
            wechat_calls: Family::default(),
            wechat_duration: wxauth_process::metrics::latency_histogram(),
            pool_connections: Family::default(),
            audit_unwritten: Gauge::default(),
            shed: Counter::default(),
            wechat_quota_refused: Family::default(),
            database_up: Gauge::default(),
            revocation_listener_up: Gauge::default(),
            app_token_refreshes: Family::default(),
            phone_bindings: Family::default(),
            nickname_checks: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_backlog_age: Gauge::default(),
            webhook_pending: Gauge::default(),
            webhook_dead: Gauge::default(),
            replicas: Gauge::default(),
            table_bytes: Family::default(),
        };
        let mut registry = Registry::with_prefix("wxauth");
        registry.register(
            "rpc_requests",
            "gRPC calls by method and outcome",
            metrics.rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency by method",
            metrics.rpc_duration.clone(),
        );
        registry.register(
            "wechat_calls",
            "calls to WeChat by api and outcome (errcode)",
            metrics.wechat_calls.clone(),
        );
        registry.register(
            "wechat_call_duration_seconds",
            "latency of calls to WeChat",
            metrics.wechat_duration.clone(),
        );
        registry.register(
            "db_pool_connections",
            "database pool connections by state",
            metrics.pool_connections.clone(),
        );
        registry.register(
            "calls_shed",
            "calls refused at once (RESOURCE_EXHAUSTED) because too many were in flight",
            metrics.shed.clone(),
        );
        registry.register(
            "wechat_quota_refused",
            "calls to WeChat refused (not made) because the app was over WXAUTH_WECHAT_CALLS_PER_SECOND",
            metrics.wechat_quota_refused.clone(),
        );
        registry.register(
            "database_up",
            "1 while the database answers the health ping (every second) and takes writes, else 0",
            metrics.database_up.clone(),
        );
        registry.register(
            "revocation_listener_up",
            "1 while this replica hears other replicas' revocations (its LISTEN connection answers its heartbeat), else 0",
            metrics.revocation_listener_up.clone(),
        );
        registry.register(
            "app_token_refreshes",
            "fetches of an app's WeChat access_token by outcome (ok, failed)",
            metrics.app_token_refreshes.clone(),
        );
        // The name this series had; dashboards and alerts of earlier releases read it.
        registry.register(
            "access_token_refreshes",
            "the same as wxauth_app_token_refreshes_total, under the name it had before",
            metrics.app_token_refreshes.clone(),
        );
        registry.register(
            "phone_bindings",
            "phone numbers asked of WeChat by the getPhoneNumber code, by outcome (ok: a number \
             WeChat charges for; refused: WeChat refused the code; reused: a code already sent, \
             refused here; failed: WeChat unavailable or unexpected)",
            metrics.phone_bindings.clone(),
        );
        registry.register(
            "nickname_checks",
            "nicknames checked with WeChat's msgSecCheck, by outcome (pass, review, risky, failed)",
            metrics.nickname_checks.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "webhook delivery attempts by subscription and outcome (delivered; retry: failed, \
             tried again later; dead: failed for the last time, waiting for ReplayEvents)",
            metrics.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_backlog_age_seconds",
            "how long the oldest webhook event not yet delivered has waited (0: none waits)",
            metrics.webhook_backlog_age.clone(),
        );
        registry.register(
            "webhook_events_pending",
            "webhook events waiting for delivery",
            metrics.webhook_pending.clone(),
        );
        registry.register(
            "webhook_events_dead",
            "webhook events that failed for the last time (ReplayEvents sends them again)",
            metrics.webhook_dead.clone(),
        );
        registry.register(
            "replicas_alive",
            "auth-service replicas with a heartbeat in the last 5 seconds, this one included: \
             the quotas toward WeChat are divided among them",
            metrics.replicas.clone(),
        );
        registry.register(
            "table_bytes",
            "each table's size on disk, indexes and TOAST included (measured every \
             WXAUTH_PURGE_INTERVAL_SECS, before the purge)",
            metrics.table_bytes.clone(),
        );
        registry.register(
            "audit_unwritten",
            "refusals and reads counted for the audit trail but not yet in the database (it grows while the database refuses them; none is dropped)",
            metrics.audit_unwritten.clone(),
        );
        (metrics, registry)
    }

    /// Records whether the database and the revocation listener answer.
    pub fn liveness(&self, database: bool, revocation_listener: bool) {
        self.database_up.set(i64::from(database));
        self.revocation_listener_up
            .set(i64::from(revocation_listener));
    }

    /// Counts a fetch of an app's access_token.
    pub fn app_token_refresh(&self, appid: &str, ok: bool) {
        self.app_token_refreshes
            .get_or_create(&AppOutcome {
                appid: appid.to_owned(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Records the tables' sizes.
    pub fn table_sizes(&self, sizes: &[(String, i64)]) {
        for (table, bytes) in sizes {
            self.table_bytes
                .get_or_create(&TableLabels {
                    table: table.clone(),
                })
                .set(*bytes);
        }
    }

    /// Records how many replicas share the quotas.
    pub fn replicas(&self, replicas: u32) {
        self.replicas.set(i64::from(replicas));
    }

    /// Counts a webhook delivery attempt.
    pub fn webhook_delivery(&self, subscription: &str, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&WebhookLabels {
                subscription: subscription.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Records the webhook backlog as measured.
    pub fn webhook_backlog(&self, backlog: crate::store::Backlog) {
        self.webhook_backlog_age.set(backlog.oldest_secs);
        self.webhook_pending.set(backlog.pending);
        self.webhook_dead.set(backlog.dead);
    }

    /// Counts a phone number bind asked with a getPhoneNumber code.
    pub fn phone_binding(&self, appid: &str, outcome: &'static str) {
        self.phone_bindings
            .get_or_create(&AppOutcome {
                appid: appid.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts a nickname content check.
    pub fn nickname_check(&self, appid: &str, outcome: &'static str) {
        self.nickname_checks
            .get_or_create(&AppOutcome {
                appid: appid.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts a call to WeChat not made because the app was over its quota.
    pub fn wechat_quota_refused(&self, appid: &str) {
        self.wechat_quota_refused
            .get_or_create(&AppLabels {
                appid: appid.to_owned(),
            })
            .inc();
    }

    /// Counts a call refused at once because too many were in flight.
    pub fn shed(&self) {
        self.shed.inc();
    }

    /// Moves the count of audit events not yet written by `by`.
    pub fn audit_unwritten(&self, by: i64) {
        self.audit_unwritten.inc_by(by);
    }

    /// Counts a finished RPC.
    pub fn rpc(&self, method: &str, outcome: &str, elapsed: Duration) {
        self.rpc_requests
            .get_or_create(&RpcLabels {
                method: method.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a finished WeChat call.
    pub fn wechat(&self, api: &'static str, result: Result<(), &WeChatError>, elapsed: Duration) {
        let outcome = match result {
            Ok(()) => "ok".to_owned(),
            Err(WeChatError::Api { errcode }) => errcode.to_string(),
            Err(WeChatError::Timeout(_)) => "timeout".to_owned(),
            Err(WeChatError::Unreachable(_)) => "unreachable".to_owned(),
            Err(WeChatError::BadResponse(_)) => "bad_response".to_owned(),
        };
        self.wechat_calls
            .get_or_create(&WeChatLabels { api, outcome })
            .inc();
        self.wechat_duration.observe(elapsed.as_secs_f64());
    }

    /// Records the pool's state.
    pub fn pool(&self, size: usize, idle: usize) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        self.pool_connections
            .get_or_create(&PoolLabels {
                state: "idle".into(),
            })
            .set(idle);
        self.pool_connections
            .get_or_create(&PoolLabels {
                state: "in_use".into(),
            })
            .set(size - idle);
    }
}
