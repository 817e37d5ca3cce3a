//! App tokens: each app's WeChat access_token (not to be confused with the access tokens
//! wxauth issues), owned by the service: fetched with WeChat's `stable_token`,
//! kept sealed in Postgres, refreshed ahead of expiry by one replica at a time (an advisory
//! lock per app; the others find the fresh token when they get the lock and do not fetch),
//! and read from the database by every call, so a token one replica replaced is never used
//! again by another. `jscode2session` never depends on it.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;
use tracing::{info, warn};
use wxauth_wechat::{AccessToken, AppId, AppSecret, Errcode, WeChatClient, WeChatError};

use crate::{
    apps::Apps,
    error::AuthError,
    metrics::Metrics,
    quotas::WeChatQuota,
    secrets::Keyring,
    store::{PgStore, StoreError, app_tokens::StoredToken},
};

/// A token with less than this left is refreshed. Below WeChat's five-minute overlap, so
/// `stable_token` answers with the next token instead of the same one again.
pub const REFRESH_AHEAD_SECS: i64 = 240;

/// The associated data a token is sealed with: it binds the sealed value to its app.
fn seal_context(appid: &str) -> Vec<u8> {
    [b"wxauth.access_token\0".as_slice(), appid.as_bytes()].concat()
}

/// A token ready to use, with the digest that names it in compare-and-expire.
struct Current {
    token: AccessToken,
    digest: Vec<u8>,
}

/// The access-token service.
#[derive(Debug)]
pub struct AppTokens {
    apps: Arc<Apps>,
    wechat: WeChatClient,
    store: PgStore,
    keyring: Arc<Keyring>,
    metrics: Arc<Metrics>,
    quota: Arc<WeChatQuota>,
    /// Each app's turn to refresh on this replica.
    turns: HashMap<AppId, Turn>,
}

/// One app's turn to refresh on this replica (see [`AppTokens::refresh`]).
#[derive(Debug, Default)]
struct Turn {
    /// Refreshes finished, so that a call can tell one finished while it waited.
    finished: AtomicU64,
    /// Held while a refresh is under way; how the last one ended.
    last: Mutex<LastRefresh>,
}

/// How an app's last refresh on this replica ended.
#[derive(Debug, Default, Clone, Copy)]
enum LastRefresh {
    /// A token was stored or found (or the refresh failed short of WeChat).
    #[default]
    Done,
    /// WeChat gave no token.
    WeChatFailed {
        /// WeChat's answer, when it was an errcode.
        errcode: Option<Errcode>,
    },
}

impl AppTokens {
    /// The service.
    pub fn new(
        apps: Arc<Apps>,
        wechat: WeChatClient,
        store: PgStore,
        keyring: Arc<Keyring>,
        metrics: Arc<Metrics>,
        quota: Arc<WeChatQuota>,
    ) -> Self {
        let turns = apps
            .appids()
            .map(|appid| (appid.clone(), Turn::default()))
            .collect();
        Self {
            apps,
            wechat,
            store,
            keyring,
            metrics,
            quota,
            turns,
        }
    }

    /// Makes a WeChat call `api` with the app's token. When WeChat refuses the token
    /// (40001, 40014, 42001), the stored token is expired only if it is still the one that
    /// failed, a current one is fetched (or read, if another replica already did), and the
    /// call is made once more.
    pub async fn call<T, F, Fut>(
        &self,
        appid: &AppId,
        api: &'static str,
        work: F,
    ) -> Result<T, AuthError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, WeChatError>>,
    {
        let current = self.current(appid).await?;
        self.quota.take(appid)?;
        match self.timed(api, &work, current.token).await {
            Err(WeChatError::Api { errcode }) if errcode.rejects_access_token() => {
                let expired = self
                    .store
                    .expire_app_token(appid.as_str(), &current.digest)
                    .await?;
                warn!(%appid, api, %errcode, expired, "wechat refused the access_token; using a current one");
                let current = self.current(appid).await?;
                self.quota.take(appid)?;
                match self.timed(api, &work, current.token).await {
                    // Refused again, a token fetched or found current a moment ago: WeChat
                    // is not honouring the app's tokens just now (its side of a rotation,
                    // or an outage), which passes; the caller is asked to come back.
                    Err(WeChatError::Api { errcode }) if errcode.rejects_access_token() => {
                        warn!(%appid, api, %errcode, "wechat refused the access_token again");
                        Err(AuthError::WeChatApiUnavailable {
                            errcode: Some(errcode),
                            what: "it refused the app's access_token twice",
                        })
                    }
                    done => done.map_err(AuthError::from_app_token_call),
                }
            }
            done => done.map_err(AuthError::from_app_token_call),
        }
    }

    async fn timed<T, Fut: Future<Output = Result<T, WeChatError>>>(
        &self,
        api: &'static str,
        work: &impl Fn(AccessToken) -> Fut,
        token: AccessToken,
    ) -> Result<T, WeChatError> {
        let started = Instant::now();
        let done = work(token).await;
        self.metrics
            .wechat(api, done.as_ref().map(drop), started.elapsed());
        done
    }

    /// The stored token when it has time left, else a refreshed one.
    async fn current(&self, appid: &AppId) -> Result<Current, AuthError> {
        match self.store.app_token(appid.as_str()).await? {
            Some(stored) if stored.expires_in > REFRESH_AHEAD_SECS => self.open(appid, stored),
            _ => self.refresh(appid).await,
        }
    }

    /// Refreshes the app's token, one call at a time per app on this replica and under the
    /// database's lock across replicas, unless another call or replica did while this one
    /// waited. The calls waiting here hold no database connection: waiting for the
    /// database's lock instead, each on a connection of its own, a burst of them emptied the
    /// pool under the logins while WeChat was slow. When WeChat failed the refresh they
    /// waited for, they fail with it rather than ask WeChat again one after another.
    async fn refresh(&self, appid: &AppId) -> Result<Current, AuthError> {
        let secret = self.apps.secret(appid)?;
        let turn = self.turns.get(appid).ok_or(AuthError::UnknownApp)?;
        let seen = turn.finished.load(Ordering::Acquire);
        let mut last = turn.last.lock().await;
        if let LastRefresh::WeChatFailed { errcode } = *last
            && turn.finished.load(Ordering::Acquire) != seen
        {
            return Err(AuthError::WeChatApiUnavailable {
                errcode,
                what: "no access_token could be had",
            });
        }
        *last = LastRefresh::Done;
        let refreshed = self.refresh_locked(appid, secret, &mut last).await;
        turn.finished.fetch_add(1, Ordering::Release);
        refreshed
    }

    /// [`Self::refresh`] on this replica's turn: under the database's lock, unless the
    /// token another replica stored meanwhile will do.
    async fn refresh_locked(
        &self,
        appid: &AppId,
        secret: &AppSecret,
        last: &mut LastRefresh,
    ) -> Result<Current, AuthError> {
        let (lock, stored) = self.store.lock_app_token(appid.as_str()).await?;
        if let Some(stored) = stored.filter(|stored| stored.expires_in > REFRESH_AHEAD_SECS) {
            lock.release().await?;
            return self.open(appid, stored);
        }
        if let Err(over) = self.quota.take(appid) {
            lock.release().await?;
            return Err(over);
        }
        let started = Instant::now();
        let fetched = self.wechat.stable_token(appid, secret, false).await;
        self.metrics.wechat(
            "stable_token",
            fetched.as_ref().map(drop),
            started.elapsed(),
        );
        match fetched {
            Ok(fetched) => {
                let sealed = self
                    .keyring
                    .seal(
                        fetched.token.expose().as_bytes(),
                        &seal_context(appid.as_str()),
                    )
                    .map_err(AuthError::internal)?;
                let digest = Sha256::digest(fetched.token.expose().as_bytes()).to_vec();
                lock.stored(&sealed, &digest, fetched.expires_in).await?;
                self.metrics.app_token_refresh(appid.as_str(), true);
                info!(%appid, expires_in = fetched.expires_in, "access_token refreshed");
                Ok(Current {
                    token: fetched.token,
                    digest,
                })
            }
            Err(err) => {
                *last = LastRefresh::WeChatFailed {
                    errcode: match &err {
                        WeChatError::Api { errcode } => Some(*errcode),
                        _ => None,
                    },
                };
                lock.failed(&outcome(&err)).await?;
                self.metrics.app_token_refresh(appid.as_str(), false);
                warn!(%appid, error = %err, "access_token refresh failed");
                Err(AuthError::from_app_token_call(err))
            }
        }
    }

    fn open(&self, appid: &AppId, stored: StoredToken) -> Result<Current, AuthError> {
        let token = self
            .keyring
            .open(&stored.sealed, &seal_context(appid.as_str()))
            .map_err(AuthError::internal)?;
        let token = String::from_utf8(token).map_err(AuthError::internal)?;
        Ok(Current {
            token: AccessToken::new(token),
            digest: stored.digest,
        })
    }

    /// Refreshes every token that is about to expire (one replica per app does the
    /// fetch). Returns how many apps were looked at; failures are logged and recorded.
    pub async fn refresh_expiring(&self) -> Result<usize, StoreError> {
        let due = self.store.app_tokens_expiring(REFRESH_AHEAD_SECS).await?;
        for appid in &due {
            let Ok(appid) = AppId::parse("appid", appid) else {
                continue;
            };
            if self.apps.serves(&appid).is_err() {
                continue;
            }
            if let Err(err) = self.refresh(&appid).await {
                warn!(%appid, error = %err, "refreshing the access_token ahead of expiry failed");
            }
        }
        Ok(due.len())
    }
}

/// How a fetch ended, for operators: WeChat's errcode or the kind of failure.
fn outcome(err: &WeChatError) -> String {
    match err {
        WeChatError::Api { errcode } => format!("errcode {errcode}"),
        WeChatError::Timeout(_) => "timeout".into(),
        WeChatError::Unreachable(_) => "unreachable".into(),
        WeChatError::BadResponse(_) => "bad_response".into(),
    }
}
