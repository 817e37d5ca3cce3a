//! A quota on each app's calls to WeChat, per replica: a token bucket (governor) that keeps a
//! burst of logins, or a bug in a client, from spending WeChat's per-app limits. A call over
//! it is refused before WeChat is called, and before a login code is claimed, so the same
//! code can be sent again once the quota allows.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};
use wxauth_wechat::AppId;

use crate::{error::AuthError, metrics::Metrics};

/// The quota of every app: `per_second` calls, `burst` at once. `None` turns it off.
#[derive(Debug)]
pub struct WeChatQuota {
    limiter: Option<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
    metrics: Arc<Metrics>,
}

impl WeChatQuota {
    /// A quota of `per_second` calls per app (with bursts of `burst`); 0 turns it off.
    pub fn new(per_second: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter, metrics }
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
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(AuthError::QuotaExceeded {
                    retry_after_secs: wait.max(Duration::from_secs(1)).as_secs(),
                })
            }
        }
    }
}
