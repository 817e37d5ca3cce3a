//! Webhooks: the events of the outbox delivered to each subscription, signed per the
//! Standard Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`
//! v1, HMAC-SHA256 with a `whsec_` secret), so a receiver verifies them with that
//! specification's published libraries.
//!
//! Every replica delivers: each claims due events in the database (one claimant per event),
//! posts them, and records the outcome. A failure is tried again with exponential backoff
//! and jitter ([`next_attempt`]) until the retry window passes; then the event is dead until
//! an operator replays it. Per user and subscription only the oldest pending event is
//! claimed, so a receiver sees each user's events in order. Delivery is at least once: a
//! receiver deduplicates by `webhook-id`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use secrecy::{ExposeSecret as _, SecretSlice};
use tokio::{task::JoinSet, time::Instant};
use tracing::{info, warn};

use crate::{
    clock::SharedClock,
    domain::{
        Reach,
        events::{EventKind, Retry, RetryPolicy, Subscriber, Subscribers, next_attempt},
    },
    error::AuthError,
    metrics::Metrics,
    store::{Claimed, PgStore, Settled, StoreError},
};

/// Events claimed per round.
const BATCH: i64 = 32;
/// How much longer than the request timeout a claim holds, before another replica may take
/// the event (this one presumed gone).
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often the backlog is measured for the metrics.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// One subscription: an app's events of some kinds, posted to a URL.
#[derive(Clone)]
pub struct Subscription {
    /// Its name, unique; events name it.
    pub name: String,
    /// The app whose users' events it takes.
    pub appid: String,
    /// Where events are posted.
    pub url: reqwest::Url,
    /// The signing key (the base64 of a `whsec_` secret, decoded).
    pub key: SecretSlice<u8>,
    /// The kinds it takes.
    pub kinds: Vec<EventKind>,
    /// Whether payloads carry full phone numbers.
    pub pii: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's host only: its path or query may hold a credential of the receiver.
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("appid", &self.appid)
            .field("host", &self.url.host_str())
            .field("kinds", &self.kinds)
            .field("pii", &self.pii)
            .finish_non_exhaustive()
    }
}

/// The webhook settings, parsed.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The subscriptions (none: nothing is written or delivered).
    pub subscriptions: Vec<Subscription>,
    /// How failures are tried again.
    pub retry: RetryPolicy,
    /// How long delivered and dead events are kept, seconds.
    pub retention_secs: i64,
    /// How often each replica looks for due events when there were none.
    pub poll: Duration,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
}

impl WebhookSettings {
    /// What the store writes events for.
    pub fn subscribers(&self) -> Subscribers {
        Subscribers::new(
            self.subscriptions
                .iter()
                .map(|sub| Subscriber {
                    name: sub.name.clone(),
                    appid: sub.appid.clone(),
                    kinds: sub.kinds.clone(),
                    pii: sub.pii,
                })
                .collect(),
        )
    }
}

/// The events: delivery and replay.
#[derive(Debug, Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: PgStore,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    subscriptions: HashMap<String, Subscription>,
    names: Vec<String>,
    settings: WebhookSettings,
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook client")]
pub struct BuildError(#[source] reqwest::Error);

impl Webhooks {
    /// The deliveries of `settings`' subscriptions.
    pub fn new(
        settings: WebhookSettings,
        store: PgStore,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect would send the signed event where the subscription does not say.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxauth-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError)?;
        let subscriptions: HashMap<String, Subscription> = settings
            .subscriptions
            .iter()
            .map(|sub| (sub.name.clone(), sub.clone()))
            .collect();
        let mut names: Vec<String> = subscriptions.keys().cloned().collect();
        names.sort();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                metrics,
                http,
                subscriptions,
                names,
                settings,
            }),
        })
    }

    /// Sends dead events again, of `subscription` (every one in the caller's `reach` when
    /// empty), only `event_ids` when some are named; their retry window starts again.
    /// Returns how many.
    pub async fn replay(
        &self,
        reach: &Reach,
        subscription: &str,
        event_ids: &[i64],
    ) -> Result<u64, AuthError> {
        if event_ids.iter().any(|id| *id <= 0) {
            return Err(AuthError::InvalidArgument(
                "event_ids: event ids are positive".into(),
            ));
        }
        let subscriptions: Vec<String> = if subscription.is_empty() {
            self.inner
                .settings
                .subscriptions
                .iter()
                .filter(|sub| reach.app(&sub.appid).is_ok())
                .map(|sub| sub.name.clone())
                .collect()
        } else {
            let sub = self.inner.subscriptions.get(subscription).ok_or_else(|| {
                AuthError::InvalidArgument(format!(
                    "subscription: no webhook subscription is named {subscription:?} (WXAUTH_WEBHOOKS)"
                ))
            })?;
            reach.app(&sub.appid)?;
            vec![sub.name.clone()]
        };
        Ok(self
            .inner
            .store
            .replay_events(&subscriptions, event_ids)
            .await?)
    }

    /// Delivers due events until the task is dropped: a round at once while rounds come back
    /// full, otherwise one every poll interval.
    pub async fn deliver(self) {
        if self.inner.names.is_empty() {
            return;
        }
        info!(
            subscriptions = self.inner.names.len(),
            "delivering webhook events"
        );
        let mut measured: Option<Instant> = None;
        loop {
            let full = match self.round().await {
                Ok(claimed) => claimed >= BATCH as usize,
                Err(err) => {
                    warn!(error = %err, "claiming webhook events failed; retrying at the next poll");
                    false
                }
            };
            if measured.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                match self.inner.store.event_backlog().await {
                    Ok(backlog) => self.inner.metrics.webhook_backlog(backlog),
                    Err(err) => warn!(error = %err, "measuring the webhook backlog failed"),
                }
                measured = Some(Instant::now());
            }
            if !full {
                tokio::time::sleep(self.inner.settings.poll).await;
            }
        }
    }

    /// Claims due events and delivers them at once; returns how many it claimed.
    async fn round(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let lease = inner.settings.timeout + LEASE_MARGIN;
        let lease_until = inner.clock.timestamp().plus(lease);
        let claimed = inner
            .store
            .claim_events(&inner.names, lease_until, BATCH)
            .await?;
        let count = claimed.len();
        let mut attempts = JoinSet::new();
        for event in claimed {
            let webhooks = self.clone();
            attempts.spawn(async move { webhooks.attempt(event).await });
        }
        while let Some(done) = attempts.join_next().await {
            if let Ok(Err(err)) = done {
                warn!(error = %err, "recording a webhook delivery failed; the event is tried again when its claim lapses");
            }
        }
        Ok(count)
    }

    /// Posts one event and records how it went.
    async fn attempt(&self, event: Claimed) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(sub) = inner.subscriptions.get(&event.subscription) else {
            return Ok(());
        };
        let outcome = self.post(sub, &event).await;
        let now = inner.clock.timestamp();
        let (settled, label) = match &outcome {
            Ok(_) => (Settled::Delivered, "delivered"),
            Err(_) => match next_attempt(
                inner.settings.retry,
                u32::try_from(event.attempts).unwrap_or(u32::MAX),
                event.window_start,
                now,
                jitter(),
            ) {
                Retry::At(at) => (Settled::RetryAt(at), "retry"),
                Retry::Dead => (Settled::Dead, "dead"),
            },
        };
        let said = match outcome {
            Ok(status) | Err(status) => status,
        };
        if settled == Settled::Dead {
            warn!(
                subscription = %sub.name,
                event_id = event.event_id,
                attempts = event.attempts,
                last = %said,
                "a webhook event could not be delivered within its retry window: dead until replayed (ReplayEvents)"
            );
        }
        inner.metrics.webhook_delivery(&sub.name, label);
        inner
            .store
            .settle_event(event.event_id, settled, &said)
            .await
    }

    /// Posts `event` to `sub`, signed: `Ok` with the answer's status when the receiver took
    /// it, else `Err` with why not (never the URL, which may carry a credential).
    async fn post(&self, sub: &Subscription, event: &Claimed) -> Result<String, String> {
        let id = format!("evt_{}", event.event_id);
        let timestamp = self.inner.clock.now();
        let signer = standardwebhooks::Webhook::from_bytes(sub.key.expose_secret().to_vec())
            .map_err(|_| "the secret cannot sign".to_owned())?;
        let signature = signer
            .sign(&id, timestamp, event.payload.as_bytes())
            .map_err(|_| "the payload cannot be signed".to_owned())?;
        let response = self
            .inner
            .http
            .post(sub.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.payload.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                Ok(format!("HTTP {}", response.status().as_u16()))
            }
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(err) if err.is_timeout() => Err("no answer within the timeout".into()),
            Err(err) if err.is_connect() => Err("cannot connect".into()),
            Err(_) => Err("the request failed".into()),
        }
    }
}

/// A random number in 0..1, for the retry's jitter (0.5 if the OS has none to give).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}
