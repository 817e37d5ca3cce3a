//! Several replicas behind one channel. tonic's balancer keeps an endpoint whose
//! connection fails "ready" (its lazy reconnect reports the error on the call, not in
//! readiness), so it would keep picking a dead replica. Here a watcher decides which
//! replicas are in: every interval, and at once when a call was not answered, it asks each
//! candidate's gRPC health, and adds or removes endpoints through tonic's discovery
//! channel. A replica is in while it says SERVING: one that cannot use its database (or is
//! shutting down) says NOT_SERVING and would fail every login, so it is left out while
//! others serve. When none serves, all stay in, so calls fail fast instead of waiting.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint, channel::Change};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use wxauth_proto::v1::auth_service_server::SERVICE_NAME;

/// How often fixed replicas are probed.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Wakes every watcher of this process: a call was not answered.
static RECHECK: Notify = Notify::const_new();

/// Asks every watcher to probe its replicas now.
pub(crate) fn suspect() {
    RECHECK.notify_waiters();
}

/// Where the replicas are.
pub(crate) enum Source {
    /// Fixed URLs, one endpoint each.
    Urls(Vec<Endpoint>),
    /// Every address a name resolves to, an endpoint built for each.
    Name {
        host: String,
        port: u16,
        replica: Box<dyn Fn(SocketAddr) -> Option<Endpoint> + Send + Sync>,
    },
}

impl Source {
    /// The candidates now: a key and the endpoint.
    async fn candidates(&self) -> Vec<(String, Endpoint)> {
        match self {
            Self::Urls(endpoints) => endpoints
                .iter()
                .map(|endpoint| (endpoint.uri().to_string(), endpoint.clone()))
                .collect(),
            Self::Name {
                host,
                port,
                replica,
            } => match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addresses) => addresses
                    .filter_map(|address| {
                        replica(address).map(|endpoint| (address.to_string(), endpoint))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
        }
    }
}

/// Whether the replica behind `probe` should take calls: it says SERVING for the
/// AuthService. A server without the health service is taken at its word that it answers.
async fn serving(probe: Channel) -> bool {
    let mut health = HealthClient::new(probe);
    let check = health.check(HealthCheckRequest {
        service: SERVICE_NAME.into(),
    });
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(answer)) => answer.into_inner().status == ServingStatus::Serving as i32,
        Ok(Err(status)) => status.code() == tonic::Code::Unimplemented,
        Err(_) => false,
    }
}

/// A channel balanced over the replicas of `source`, looked at every `every` and whenever a
/// call was not answered. Runs until the channel is dropped.
pub(crate) fn balanced(source: Source, every: Duration) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(64);
    tokio::spawn(async move {
        let mut inside: HashSet<String> = HashSet::new();
        // One connection per candidate for its health, kept between rounds.
        let mut probes_of: HashMap<String, Channel> = HashMap::new();
        loop {
            let candidates = source.candidates().await;
            probes_of.retain(|key, _| candidates.iter().any(|(candidate, _)| candidate == key));
            let mut probes = tokio::task::JoinSet::new();
            for (key, endpoint) in &candidates {
                let probe = probes_of
                    .entry(key.clone())
                    .or_insert_with(|| endpoint.connect_lazy())
                    .clone();
                let key = key.clone();
                probes.spawn(async move { (key, serving(probe).await) });
            }
            let in_service: HashSet<String> = probes
                .join_all()
                .await
                .into_iter()
                .filter_map(|(key, up)| up.then_some(key))
                .collect();
            let mut endpoints: HashMap<String, Endpoint> = candidates.into_iter().collect();
            let keep: HashSet<String> = if in_service.is_empty() {
                endpoints.keys().cloned().collect()
            } else {
                in_service
            };
            for gone in inside.difference(&keep) {
                if changes.send(Change::Remove(gone.clone())).await.is_err() {
                    return;
                }
            }
            for new in keep.difference(&inside) {
                if let Some(endpoint) = endpoints.remove(new)
                    && changes
                        .send(Change::Insert(new.clone(), endpoint))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            inside = keep;
            let _ = tokio::time::timeout(every, RECHECK.notified()).await;
        }
    });
    channel
}
