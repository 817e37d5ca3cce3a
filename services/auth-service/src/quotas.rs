//! A quota on each app's calls to WeChat, for the whole deployment: WeChat counts its limits
//! per app, whatever the number of replicas. Each replica holds a token bucket (governor) of
//! its share: the deployment's rate and burst divided by the replicas alive, which it learns
//! from the heartbeat every replica writes each second (see `upkeep::report_health`), so no
//! call waits for the database. A call over it is refused before WeChat is called, and
//! before a login code is claimed, so the same code can be sent again once the quota allows.
//!
//! A share is rounded down (at least one call a second), so the replicas together stay under
//! the limit; while the count of replicas changes (a replica starting or stopping), the
//! buckets are replaced and may let one more burst through.
//!
//! The buckets fill by the service's clock, like every other rule with time in it, so a test
//! moves the clock to see one fill.

use std::{
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use governor::{
    Quota, RateLimiter, clock::Clock as GovernorClock, middleware::NoOpMiddleware, nanos::Nanos,
    state::keyed::DefaultKeyedStateStore,
};
use wxauth_wechat::AppId;

use crate::{clock::SharedClock, error::AuthError, metrics::Metrics};

/// The service's clock, as the rate limiter reads time.
#[derive(Debug, Clone)]
struct ServiceClock(SharedClock);

impl GovernorClock for ServiceClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Duration::from_micros(
            u64::try_from(self.0.timestamp().micros()).unwrap_or(0),
        ))
    }
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, ServiceClock, NoOpMiddleware<Nanos>>;

/// This replica's buckets, for a count of replicas.
#[derive(Debug)]
struct Share {
    replicas: u32,
    limiter: Limiter,
}

/// The quota of every app: `per_second` calls, `burst` at once, across the deployment.
#[derive(Debug)]
pub struct WeChatQuota {
    /// The deployment's rate and burst; `None`: no quota.
    limit: Option<(NonZeroU32, NonZeroU32)>,
    share: RwLock<Option<Share>>,
    clock: ServiceClock,
    metrics: Arc<Metrics>,
}

/// `total` divided among `replicas`, rounded down, at least 1.
fn share_of(total: NonZeroU32, replicas: u32) -> NonZeroU32 {
    NonZeroU32::new(total.get() / replicas.max(1)).unwrap_or(NonZeroU32::MIN)
}

impl WeChatQuota {
    /// A quota of `per_second` calls per app across the deployment (with bursts of `burst`),
    /// its buckets filling by `clock`; 0 turns it off. Until [`Self::set_replicas`] says
    /// otherwise, this replica counts itself alone.
    pub fn new(per_second: u32, burst: u32, clock: SharedClock, metrics: Arc<Metrics>) -> Self {
        let limit =
            NonZeroU32::new(per_second).map(|rate| (rate, NonZeroU32::new(burst).unwrap_or(rate)));
        let quota = Self {
            limit,
            share: RwLock::new(None),
            clock: ServiceClock(clock),
            metrics,
        };
        quota.set_replicas(1);
        quota
    }

    /// Divides the quota among `replicas` (the replicas alive, this one included).
    pub fn set_replicas(&self, replicas: u32) {
        let Some((rate, burst)) = self.limit else {
            return;
        };
        let replicas = replicas.max(1);
        let mut share = self
            .share
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if share
            .as_ref()
            .is_some_and(|share| share.replicas == replicas)
        {
            return;
        }
        *share = Some(Share {
            replicas,
            limiter: RateLimiter::new(
                Quota::per_second(share_of(rate, replicas)).allow_burst(share_of(burst, replicas)),
                DefaultKeyedStateStore::default(),
                self.clock.clone(),
            ),
        });
    }

    /// Takes one call of `appid`'s quota, or says when to come back.
    pub fn take(&self, appid: &AppId) -> Result<(), AuthError> {
        let share = self
            .share
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(share) = share.as_ref() else {
            return Ok(());
        };
        match share.limiter.check_key(&appid.as_str().to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.metrics.wechat_quota_refused(appid.as_str());
                let wait = not_until.wait_time_from(self.clock.now());
                Err(AuthError::QuotaExceeded {
                    retry_after_secs: wait.max(Duration::from_secs(1)).as_secs(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_bucket_fills_by_the_services_clock() {
        let clock = ManualClock::new();
        let (metrics, _) = Metrics::new();
        let quota = WeChatQuota::new(1, 2, Arc::new(clock.clone()), Arc::new(metrics));
        let app = AppId::parse("appid", "wx4f4bc4dec97d474b").unwrap();
        assert!(
            quota.take(&app).is_ok() && quota.take(&app).is_ok(),
            "the burst"
        );
        assert!(matches!(
            quota.take(&app),
            Err(AuthError::QuotaExceeded {
                retry_after_secs: 1
            })
        ));
        clock.advance(1);
        assert!(quota.take(&app).is_ok(), "a second later, one more");
        assert!(quota.take(&app).is_err());
    }

    #[test]
    fn replicas_share_the_quota_rounded_down_never_to_nothing() {
        let clock = ManualClock::new();
        let (metrics, _) = Metrics::new();
        let quota = WeChatQuota::new(10, 10, Arc::new(clock.clone()), Arc::new(metrics));
        let app = AppId::parse("appid", "wx4f4bc4dec97d474b").unwrap();
        let burst = |quota: &WeChatQuota| (0..20).filter(|_| quota.take(&app).is_ok()).count();
        quota.set_replicas(3);
        assert_eq!(burst(&quota), 3, "a third of 10, rounded down");
        clock.advance(1);
        assert_eq!(burst(&quota), 3, "and a third of the rate");
        quota.set_replicas(3);
        assert_eq!(burst(&quota), 0, "the same count keeps the buckets");
        quota.set_replicas(20);
        assert_eq!(burst(&quota), 1, "more replicas than calls: one each");
        quota.set_replicas(0);
        clock.advance(1);
        assert_eq!(burst(&quota), 10, "alone (or unknown): the whole quota");
        let off = WeChatQuota::new(0, 0, Arc::new(clock), Arc::new(Metrics::new().0));
        off.set_replicas(3);
        assert_eq!(burst(&off), 20, "0 is no quota");
    }
}
