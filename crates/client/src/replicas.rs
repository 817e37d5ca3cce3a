//! Several replicas behind one channel. tonic's balancer keeps an endpoint whose
//! connection fails "ready" (its lazy reconnect reports the error on the call, not in
//! readiness), so it would keep picking a dead replica. Here a watcher decides which
//! replicas are in: every interval, and at once when a call was not answered, it probes each
//! candidate (a TCP connect) and adds or removes endpoints through tonic's discovery
//! channel. When none answers, all stay in, so calls fail fast instead of waiting.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint, channel::Change};

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
    /// The candidates now: a key, the address to probe, the endpoint.
    async fn candidates(&self) -> Vec<(String, Option<SocketAddr>, Endpoint)> {
        match self {
            Self::Urls(endpoints) => {
                let mut found = Vec::with_capacity(endpoints.len());
                for endpoint in endpoints {
                    let uri = endpoint.uri();
                    let port = uri.port_u16().unwrap_or(80);
                    let address = match uri.host() {
                        Some(host) => {
                            tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                                .await
                                .ok()
                                .and_then(|mut addresses| addresses.next())
                        }
                        None => None,
                    };
                    found.push((uri.to_string(), address, endpoint.clone()));
                }
                found
            }
            Self::Name {
                host,
                port,
                replica,
            } => match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addresses) => addresses
                    .filter_map(|address| {
                        replica(address)
                            .map(|endpoint| (address.to_string(), Some(address), endpoint))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
        }
    }
}

async fn answers(address: Option<SocketAddr>) -> bool {
    let Some(address) = address else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

/// A channel balanced over the replicas of `source`, looked at every `every` and whenever a
/// call was not answered. Runs until the channel is dropped.
pub(crate) fn balanced(source: Source, every: Duration) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(64);
    tokio::spawn(async move {
        let mut inside: HashSet<String> = HashSet::new();
        loop {
            let candidates = source.candidates().await;
            let mut probes = tokio::task::JoinSet::new();
            for (key, address, _) in &candidates {
                let (key, address) = (key.clone(), *address);
                probes.spawn(async move { (key, answers(address).await) });
            }
            let answering: HashSet<String> = probes
                .join_all()
                .await
                .into_iter()
                .filter_map(|(key, up)| up.then_some(key))
                .collect();
            let mut endpoints: HashMap<String, Endpoint> = candidates
                .into_iter()
                .map(|(key, _, endpoint)| (key, endpoint))
                .collect();
            let keep: HashSet<String> = if answering.is_empty() {
                endpoints.keys().cloned().collect()
            } else {
                answering
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
