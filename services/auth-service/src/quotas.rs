//! A quota on each app's calls to WeChat, per replica: a token bucket (governor) that keeps a
//! burst of logins, or a bug in a client, from spending WeChat's per-app limits. A call over
//! it is refused before WeChat is called, and before a login code is claimed, so the same
//! code can be sent again once the quota allows.
//!
//! The buckets fill by the service's clock, like every other rule with time in it, so a test
//! moves the clock to see one fill.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

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

/// The quota of every app: `per_second` calls, `burst` at once. `None` turns it off.
#[derive(Debug)]
pub struct WeChatQuota {
    limiter: Option<Limiter>,
    clock: ServiceClock,
    metrics: Arc<Metrics>,
}

impl WeChatQuota {
    /// A quota of `per_second` calls per app (with bursts of `burst`), its buckets filling by
    /// `clock`; 0 turns it off.
    pub fn new(per_second: u32, burst: u32, clock: SharedClock, metrics: Arc<Metrics>) -> Self {
        let clock = ServiceClock(clock);
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::new(
                Quota::per_second(rate).allow_burst(burst),
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
        });
        Self {
            limiter,
            clock,
            metrics,
        }
    }

    /// Takes one call of `appid`'s quota, or says when to come back.
    pub fn take(&self, appid: &AppId) -> Result<(), AuthError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_key(&appid.as_str().to_owned()) {
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
}
