//! The listener that keeps a replica's revocation cache in step with the database.
//!
//! A `LISTEN` connection can go silent without closing (a failover, a NAT timeout, a proxy
//! that stops forwarding): nothing arrives, and nothing says so. So the replica sends itself
//! a heartbeat through the database every interval, on a channel of its own that the same
//! connection listens to, and the moment one is not back within two intervals the cache is
//! marked stale (validation asks the database) before anything else is tried. Every minute
//! the recent revocations are also read again, in case one slipped between. Heartbeats and
//! reloads go through a connection of the listener's own, never the pool: a pool kept busy by
//! logins must not make a healthy listener look dead, which would send every validation to
//! that busy pool.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{info, warn};
use wxauth_proto::wire::new_request_id;

use super::Revocations;
use crate::store::{Notice, PgStore, StoreError};

/// How often the recent revocations are read again while the listener is live.
const RELOAD_EVERY: Duration = Duration::from_secs(60);
/// How long to wait before listening again after a failure, so an outage is not hammered.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a listening spell ended.
enum Ended {
    /// The connection closed.
    Lost,
    /// A heartbeat did not come back in time.
    Silent,
    /// The database failed.
    Failed(StoreError),
}

/// Keeps `revocations` in step with the database for as long as the process runs: listens,
/// loads what was revoked recently (so nothing falls in between), checks the listener with a
/// heartbeat every `heartbeat`, and starts over after any failure.
pub async fn follow(store: PgStore, revocations: Arc<Revocations>, heartbeat: Duration) {
    let window_secs = i64::try_from(revocations.window.as_secs()).unwrap_or(i64::MAX);
    let channel = format!("wxauth_heartbeat_{}", new_request_id());
    loop {
        let ended = listen(&store, &revocations, window_secs, heartbeat, &channel).await;
        revocations.set_live(false);
        match ended {
            Ended::Lost => warn!(
                "revocation listener lost its connection; validating against the database until it is back"
            ),
            Ended::Silent => warn!(
                "revocation listener missed its heartbeat; validating against the database until it is back"
            ),
            Ended::Failed(err) => warn!(
                error = %err,
                "revocation listener failed; validating against the database until it is back"
            ),
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

async fn listen(
    store: &PgStore,
    revocations: &Arc<Revocations>,
    window_secs: i64,
    heartbeat: Duration,
    channel: &str,
) -> Ended {
    let mut feed = match store.listen_revocations(channel).await {
        Ok(feed) => feed,
        Err(err) => return Ended::Failed(err),
    };
    let link = store.own_connection();
    // The feed is read by a task of its own, so waiting on it beside a timer never drops a
    // notice half-read. The task records each revocation the moment it is heard: the watcher
    // below may be waiting on the database (a heartbeat, a reload), and a revocation must not
    // wait with it. Heartbeats and the end of the feed go to the watcher.
    let (heard, mut received) = mpsc::unbounded_channel();
    let cache = Arc::clone(revocations);
    let reader = tokio::spawn(async move {
        loop {
            let next = match feed.next().await {
                Ok(Some(Notice::Revoked(family_id))) => {
                    cache.insert(family_id);
                    continue;
                }
                Ok(Some(Notice::Heartbeat(payload))) => Ok(Some(payload)),
                Ok(None) => Ok(None),
                Err(err) => Err(err),
            };
            let end = !matches!(next, Ok(Some(_)));
            if heard.send(next).is_err() || end {
                break;
            }
        }
    });
    let ended = watch(
        &link,
        revocations,
        window_secs,
        heartbeat,
        channel,
        &mut received,
    )
    .await;
    reader.abort();
    ended
}

async fn watch(
    link: &PgStore,
    revocations: &Revocations,
    window_secs: i64,
    heartbeat: Duration,
    channel: &str,
    received: &mut mpsc::UnboundedReceiver<Result<Option<String>, StoreError>>,
) -> Ended {
    // Each statement of the watcher is bounded by two heartbeats: on a connection silenced
    // without closing it would wait for the kernel to give up (many minutes), and the
    // missed heartbeat would never be noticed meanwhile.
    let bound = 2 * heartbeat;
    match bounded(bound, link.recently_revoked(window_secs)).await {
        Ok(recent) => revocations.reload(recent),
        Err(ended) => return ended,
    }
    revocations.set_live(true);
    info!("revocation listener connected");
    let mut beats = 0u64;
    let mut awaited: Option<(String, Instant)> = None;
    let mut next_beat = Instant::now();
    let mut next_reload = Instant::now() + RELOAD_EVERY;
    loop {
        let wake = [
            Some(next_beat),
            Some(next_reload),
            awaited.as_ref().map(|(_, due)| *due),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_beat);
        tokio::select! {
            beat = received.recv() => match beat {
                Some(Ok(Some(payload))) => {
                    if awaited.as_ref().is_some_and(|(expected, _)| *expected == payload) {
                        awaited = None;
                    }
                }
                Some(Ok(None)) | None => return Ended::Lost,
                Some(Err(err)) => return Ended::Failed(err),
            },
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if awaited.as_ref().is_some_and(|(_, due)| now >= *due) {
                    // Stale from this instant, before any reconnection is tried.
                    revocations.set_live(false);
                    return Ended::Silent;
                }
                if now >= next_reload {
                    match bounded(bound, link.recently_revoked(window_secs)).await {
                        Ok(recent) => revocations.reload(recent),
                        Err(ended) => {
                            revocations.set_live(false);
                            return ended;
                        }
                    }
                    next_reload = now + RELOAD_EVERY;
                }
                if now >= next_beat && awaited.is_none() {
                    beats += 1;
                    let payload = beats.to_string();
                    if let Err(ended) = bounded(bound, link.notify(channel, &payload)).await {
                        revocations.set_live(false);
                        return ended;
                    }
                    awaited = Some((payload, now + 2 * heartbeat));
                    next_beat = now + heartbeat;
                } else if now >= next_beat {
                    next_beat = now + heartbeat;
                }
            }
        }
    }
}

/// `work`, unless it takes longer than `bound`: then the database is as good as silent.
async fn bounded<T>(
    bound: Duration,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Ended> {
    match tokio::time::timeout(bound, work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(err)) => Err(Ended::Failed(err)),
        Err(_) => Err(Ended::Silent),
    }
}
