//! The auth-service built from its configuration: connected, migrated, bound to its ports,
//! and run until a stop is asked for. `main` only adds settings, logs and signals, so tests
//! run the whole service in process (with an injected clock) exactly as it runs in
//! production.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{info, warn};
use wxauth_process::metrics::Readiness;
use wxauth_wechat::WeChatClient;

use crate::{
    app_tokens::AppTokens,
    audit::{AuditLog, AuditWriter},
    clock::{SharedClock, SystemClock},
    lifecycle::Lifecycle,
    login::Logins,
    login_sessions::LoginSessions,
    metrics::Metrics,
    profiles::Profiles,
    quotas::WeChatQuota,
    revocation::{self, Revocations},
    schema,
    settings::{Config, Migrations},
    start_error::StartError,
    store::{PgStore, upkeep::Retention},
    tls::Tls,
    tokens::{TokenSettings, Tokens},
    transport::{self, AuthApi, Flows},
    upkeep,
    users::Users,
    webhooks::Webhooks,
    wechat_calls::{WeChatCalls, WeChatParts},
};

/// Rows deleted per statement when purging.
const PURGE_BATCH: i64 = 500;
/// The longest any call may take.
const MAX_CALL: Duration = Duration::from_secs(30);
/// How often an idle connection is pinged, and how long the answer may take, so a dead
/// peer (a client gone without a FIN) does not hold a connection forever.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest header block accepted.
const MAX_HEADER_BYTES: u32 = 16 * 1024;
/// How long telling the other replicas this one stops may take.
const REPLICA_GONE: Duration = Duration::from_secs(2);
/// How long the audit events still queued at shutdown may take to reach the database.
const AUDIT_FLUSH: Duration = Duration::from_secs(5);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection descriptors did not load (a build problem).
    #[error("reflection descriptors are invalid")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while serving.
    #[error("grpc server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// A built auth-service, bound to its ports, not serving yet.
pub struct Application {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    /// What `/readyz` answers: kept with gRPC health.
    readiness: Readiness,
    api: AuthApi,
    store: PgStore,
    metrics: Arc<Metrics>,
    revocations: Arc<Revocations>,
    sessions: Arc<LoginSessions>,
    wechat_calls: Arc<WeChatCalls>,
    lifecycle: Arc<Lifecycle>,
    audit_writer: AuditWriter,
    webhooks: Webhooks,
    replica: upkeep::Replica,
    purge_interval: Duration,
    retention: Retention,
    revocation_heartbeat: Duration,
    app_token_check: Duration,
    reflection: bool,
    max_concurrent_calls: usize,
    tls: Option<Tls>,
    shutdown_grace: Duration,
}

impl Application {
    /// Builds the service on the system clock.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with(config, Arc::new(SystemClock)).await
    }

    /// Builds the service: connects to the database and migrates it, binds the gRPC and
    /// metrics ports (port 0: free ones), and wires every part. Every expiry is judged by
    /// `clock`.
    pub async fn build_with(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let store = match config.database_direct_url() {
            Some(direct) => PgStore::connect_lazy_pooled(
                config.database_url(),
                direct,
                config.db_max_connections as usize,
                config.db_statement_timeout,
                clock.clone(),
            ),
            None => PgStore::connect_lazy(
                config.database_url(),
                config.db_max_connections as usize,
                config.db_statement_timeout,
                clock.clone(),
            ),
        }
        .map_err(|_| StartError::DatabaseUrl)?;
        // Phone numbers are sealed with the key ring of session_keys.
        let keyring = Arc::new(config.keyring);
        let subscribers = Arc::new(config.webhooks.subscribers());
        let store = store
            .with_keyring(keyring.clone())
            .with_subscribers(subscribers);
        if let Some(host) = store.unverified_remote_host() {
            warn!(
                host,
                "DATABASE_URL reaches the database without verifying it: add \
                 sslmode=verify-full&sslrootcert=<ca file> (see README, Security)"
            );
        }
        store.ping().await.map_err(StartError::Database)?;
        match config.migrations {
            Migrations::Apply | Migrations::Only => schema::migrate(&store).await?,
            Migrations::Skip => schema::wait_for_migrations(&store).await?,
        }
        let wechat = WeChatClient::new(&config.wechat_api_base, config.wechat_timeout)
            .map_err(StartError::WeChat)?;
        let tls = config
            .tls
            .as_ref()
            .map(Tls::load)
            .transpose()
            .map_err(StartError::Tls)?;
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.grpc_addr,
                source,
            })?;
        let grpc_addr = listener.local_addr().unwrap_or(config.grpc_addr);
        let (metrics, registry) = Metrics::new();
        let metrics = Arc::new(metrics);
        let readiness = Readiness::new();
        let metrics_addr =
            wxauth_process::metrics::start(config.metrics_addr, registry, Some(readiness.clone()))
                .await
                .map_err(|source| StartError::Metrics {
                    addr: config.metrics_addr,
                    source,
                })?;
        info!(apps = config.apps.len(), wechat = %config.wechat_api_base, callers = ?config.callers, "auth-service starting");

        let apps = Arc::new(config.apps);
        let revocations = Revocations::new(Duration::from_secs(
            u64::try_from(config.tokens.access_ttl_secs).unwrap_or(0),
        ));
        let (audit, audit_writer) = AuditLog::new(store.clone(), clock.clone(), metrics.clone());
        let retention = Retention {
            audit_secs: config.audit_retention_secs,
            events_secs: config.webhooks.retention_secs,
        };
        let webhooks = Webhooks::new(
            config.webhooks,
            store.clone(),
            clock.clone(),
            metrics.clone(),
        )
        .map_err(StartError::Webhooks)?;
        let tokens = Arc::new(Tokens::new(
            TokenSettings {
                keys: config.tokens,
                remembered: config.token_cache_entries,
                rules: config.refresh_rules,
            },
            revocations.clone(),
            store.clone(),
            clock.clone(),
            keyring.clone(),
            audit.clone(),
        ));
        let quota = Arc::new(WeChatQuota::new(
            config.wechat_calls_per_second,
            config.wechat_calls_burst,
            clock.clone(),
            metrics.clone(),
        ));
        let quota_shared = quota.clone();
        let wechat_parts = (apps.clone(), wechat.clone(), keyring.clone());
        let sessions = Arc::new(LoginSessions::new(
            apps.clone(),
            wechat,
            store.clone(),
            keyring,
            metrics.clone(),
            quota.clone(),
            config.session_ttl_secs,
        ));
        let logins = Arc::new(Logins::new(
            apps,
            sessions.clone(),
            tokens.clone(),
            store.clone(),
            clock.clone(),
            config.watermark_max_age_secs,
        ));
        let users = Arc::new(Users::new(store.clone(), tokens.clone(), audit.clone()));
        let (apps, wechat, keyring) = wechat_parts;
        let wechat_calls = Arc::new(WeChatCalls::new(WeChatParts {
            access: AppTokens::new(
                apps,
                wechat.clone(),
                store.clone(),
                keyring,
                metrics.clone(),
                quota,
            ),
            wechat,
            users: users.clone(),
            sessions: sessions.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        }));
        let profiles = Arc::new(Profiles::new(
            users.clone(),
            wechat_calls.clone(),
            store.clone(),
            config.nickname_check,
            config.avatar_hosts,
        ));
        let lifecycle = Arc::new(Lifecycle::new(
            store.clone(),
            tokens.clone(),
            users.clone(),
            audit.clone(),
            clock,
            config.deletion_cooling_off,
        ));
        let api = AuthApi::new(
            Flows {
                logins,
                tokens,
                users,
                profiles,
                lifecycle: lifecycle.clone(),
                wechat_calls: wechat_calls.clone(),
                webhooks: webhooks.clone(),
            },
            config.callers,
            audit,
            metrics.clone(),
        );
        Ok(Self {
            listener,
            grpc_addr,
            metrics_addr,
            readiness,
            api,
            store,
            metrics,
            revocations,
            sessions,
            wechat_calls,
            lifecycle,
            audit_writer,
            webhooks,
            replica: upkeep::Replica {
                id: wxauth_proto::wire::new_request_id(),
                quota: quota_shared,
            },
            purge_interval: config.purge_interval,
            retention,
            revocation_heartbeat: config.revocation_heartbeat,
            app_token_check: config.app_token_check,
            reflection: config.reflection,
            max_concurrent_calls: config.max_concurrent_calls,
            tls,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Serves the auth API, gRPC health and server reflection (v1 and v1alpha, for grpcurl
    /// 1.8) until `shutdown` completes; then every health name turns NOT_SERVING and the
    /// calls in flight get the shutdown grace to finish. The database pool is closed last.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let follower = tokio::spawn(revocation::follow(
            self.store.clone(),
            self.revocations.clone(),
            self.revocation_heartbeat,
        ));
        let purger = tokio::spawn(upkeep::purge_expired(
            self.store.clone(),
            self.sessions.clone(),
            self.lifecycle.clone(),
            self.purge_interval,
            PURGE_BATCH,
            self.retention,
            self.metrics.clone(),
        ));
        let deliveries = tokio::spawn(self.webhooks.clone().deliver());
        let phone_sealer = tokio::spawn(upkeep::seal_phones(
            self.store.clone(),
            self.purge_interval,
            PURGE_BATCH,
        ));
        let (flush_audit, audit_stop) = oneshot::channel::<()>();
        let mut audit_writer = tokio::spawn(self.audit_writer.run(async {
            // A send or a dropped sender: either way, time to flush.
            let _ = audit_stop.await;
        }));
        let token_refresher = tokio::spawn(upkeep::refresh_app_tokens(
            self.wechat_calls.clone(),
            self.app_token_check,
        ));
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = upkeep::Health::new(reporter, self.readiness.clone());
        health.set(ServingStatus::Serving).await;
        let health_reporting = tokio::spawn(upkeep::report_health(
            self.store.clone(),
            health.clone(),
            self.metrics.clone(),
            self.revocations.clone(),
            self.replica.clone(),
        ));

        // Reflection (v1 and v1alpha, for grpcurl 1.8), unless it is turned off.
        let (reflection_v1, reflection_v1alpha) = if self.reflection {
            (
                Some(
                    reflection_builder()
                        // google.rpc.ErrorInfo, so grpcurl can show the reason of an error.
                        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                        .build_v1()?,
                ),
                Some(
                    reflection_builder()
                        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                        .build_v1alpha()?,
                ),
            )
        } else {
            (None, None)
        };

        let stopping = async {
            shutdown.await;
            health_reporting.abort();
            info!("shutting down: refusing new calls, finishing those in flight");
            health.set(ServingStatus::NotServing).await;
        };
        let (stop, deadline) = wxauth_process::signal::with_grace(stopping, self.shutdown_grace);
        let router = Server::builder()
            // A ceiling for calls whose caller sent no grpc-timeout (a shorter one is honoured).
            .timeout(MAX_CALL)
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .http2_max_header_list_size(Some(MAX_HEADER_BYTES))
            .add_service(health_service)
            .add_optional_service(reflection_v1)
            .add_optional_service(reflection_v1alpha)
            .add_service(transport::limits::limited(
                self.api,
                self.max_concurrent_calls,
                self.metrics.clone(),
            ));
        let mut reloader = None;
        let serving: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match &self.tls {
                Some(tls) => {
                    reloader = Some(tokio::spawn(tls.clone().reload()));
                    Box::pin(router.serve_with_incoming_shutdown(tls.incoming(self.listener), stop))
                }
                None => Box::pin(router.serve_with_incoming_shutdown(
                    // Replies are small writes: without TCP_NODELAY each can wait 40 ms for an ACK.
                    TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                    stop,
                )),
            };
        let served = tokio::select! {
            served = serving => served.map_err(ServeError::from),
            () = deadline => Ok(()),
        };
        follower.abort();
        purger.abort();
        deliveries.abort();
        phone_sealer.abort();
        token_refresher.abort();
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        // The audit events still queued are written before the pool closes, within a bound.
        let _ = flush_audit.send(());
        if tokio::time::timeout(AUDIT_FLUSH, &mut audit_writer)
            .await
            .is_err()
        {
            warn!(
                "the audit tallies were not written within {AUDIT_FLUSH:?}; their counts go with the process"
            );
            audit_writer.abort();
        }
        // The others take this replica's share of the quotas at once, not after 5 seconds.
        let gone = self.store.replica_gone(&self.replica.id);
        if !matches!(tokio::time::timeout(REPLICA_GONE, gone).await, Ok(Ok(()))) {
            warn!("could not tell the other replicas this one stops; they notice within 5 s");
        }
        self.store.close();
        served
    }
}

/// Reflection over every descriptor a caller may meet: the API and health.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wxauth_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
