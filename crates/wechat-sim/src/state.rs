//! The simulator's memory: apps, codes, live session_keys and queued faults.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::{crypto, platform::Platform};

/// How long a `wx.login()` code stays valid at WeChat.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// How many codes are minted between two sweeps of the expired ones.
const SWEEP_EVERY: usize = 4096;

/// WeChat's per-user limit on `jscode2session`: about 100 calls a minute.
pub(crate) const USER_CALLS_PER_MINUTE: usize = 100;

/// A mini-program the simulator knows, with its secret.
#[derive(Debug, Clone)]
pub struct App {
    /// The appid.
    pub appid: String,
    /// The app secret `jscode2session` must be called with.
    pub secret: String,
    /// The Open Platform account the app is bound to, if any: its users get a unionid.
    pub platform: Option<String>,
}

/// A minted code, as WeChat remembers it.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub(crate) appid: String,
    pub(crate) openid: String,
    pub(crate) unionid: Option<String>,
    pub(crate) minted: Instant,
    pub(crate) used: bool,
    /// WeChat flags some users as high risk; their logins are refused with 40226.
    pub(crate) high_risk: bool,
}

/// A queued fault for the next calls of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// The endpoint it is for: `jscode2session` (the default), `stable_token`,
    /// `getuserphonenumber`, `checksession`, `resetusersessionkey` or `msg_sec_check`.
    pub(crate) endpoint: String,
    /// Answer with this errcode instead of doing the exchange.
    pub(crate) errcode: Option<i64>,
    /// Wait this long before answering.
    pub(crate) delay: Duration,
    /// Answer with this instead: not WeChat's JSON at all, as a broken proxy, an outage page
    /// or a redirecting portal would.
    pub(crate) garbage: Option<Garbage>,
}

/// An answer that is not WeChat's.
#[derive(Debug, Clone)]
pub(crate) struct Garbage {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: String,
    /// A `location` header, for a redirect.
    pub(crate) location: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) apps: HashMap<String, String>,
    /// The Open Platform account of each bound app.
    pub(crate) platforms: HashMap<String, String>,
    pub(crate) codes: HashMap<String, Code>,
    /// Codes minted since expired ones were last dropped.
    pub(crate) mints_since_sweep: usize,
    /// The unionid of each user of an app bound to an Open Platform account.
    pub(crate) unionids: HashMap<(String, String), String>,
    /// One live session_key per (appid, openid), as WeChat keeps it.
    pub(crate) session_keys: HashMap<(String, String), String>,
    /// When each user last opened the mini-program (their latest exchange), for 61010.
    pub(crate) last_seen: HashMap<(String, String), Instant>,
    /// How many times `getuserphonenumber` was called (each success is paid for).
    pub(crate) phone_calls: u64,
    /// How many times `msg_sec_check` was called.
    pub(crate) content_checks: u64,
    /// When each user's recent exchanges happened, for 45011.
    pub(crate) recent_calls: HashMap<(String, String), VecDeque<Instant>>,
    pub(crate) faults: VecDeque<Fault>,
    /// How many times `jscode2session` was called, for tests that must prove a code was
    /// never exchanged twice.
    pub(crate) exchanges: u64,
    /// Access tokens and phone codes.
    pub(crate) platform: Platform,
}

/// The shared simulator state behind every route.
#[derive(Debug, Clone, Default)]
pub struct Sim {
    state: Arc<Mutex<State>>,
}

impl Sim {
    /// A simulator that knows these apps.
    pub fn new(apps: Vec<App>) -> Self {
        let sim = Self::default();
        {
            let mut state = sim.lock();
            for app in apps {
                if let Some(platform) = app.platform {
                    state.platforms.insert(app.appid.clone(), platform);
                }
                state.apps.insert(app.appid, app.secret);
            }
        }
        sim
    }

    /// How long the access_tokens it issues live (WeChat: 7200 s), so tests can see expiry.
    #[must_use]
    pub fn with_token_ttl(self, ttl: Duration) -> Self {
        self.lock().platform.token_ttl = ttl;
        self
    }

    /// Locks the state. A panic while holding the lock is a simulator bug; keep serving
    /// with whatever state is there rather than failing every later request.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Mints a new code for (appid, openid), as `wx.login()` does.
    pub(crate) fn mint_code(
        &mut self,
        appid: &str,
        openid: &str,
        unionid: Option<String>,
        high_risk: bool,
    ) -> String {
        self.mints_since_sweep += 1;
        if self.mints_since_sweep >= SWEEP_EVERY {
            // WeChat forgets expired codes; so does the simulator, so a long load test does
            // not grow it without bound. A forgotten code answers 40029, as an expired one.
            self.mints_since_sweep = 0;
            self.codes
                .retain(|_, code| code.minted.elapsed() <= CODE_TTL);
        }
        if let Some(unionid) = &unionid {
            self.unionids
                .insert((appid.to_owned(), openid.to_owned()), unionid.clone());
        }
        let code = hex::encode(crypto::random_bytes::<16>());
        self.codes.insert(
            code.clone(),
            Code {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                unionid,
                minted: Instant::now(),
                used: false,
                high_risk,
            },
        );
        code
    }

    /// Takes the next fault queued for `endpoint`, counting the call.
    pub(crate) fn take_fault(&mut self, endpoint: &str) -> Option<Fault> {
        let at = self
            .faults
            .iter()
            .position(|fault| fault.endpoint == endpoint)?;
        self.faults.remove(at)
    }

    /// A person's openid in `appid` and, when the app is bound to an Open Platform account,
    /// their unionid across its apps: stable, and different per app as WeChat's are.
    pub(crate) fn person(&self, appid: &str, person: &str) -> (String, Option<String>) {
        let id = |scope: &str| {
            use sha2::{Digest as _, Sha256};
            let digest = Sha256::digest(format!("{scope}\0{person}").as_bytes());
            hex::encode(&digest[..13])
        };
        let openid = format!("o{}", id(appid));
        let unionid = self
            .platforms
            .get(appid)
            .map(|platform| format!("u{}", id(platform)));
        (openid, unionid)
    }

    /// Counts a call against the user's per-minute limit; false when over it.
    pub(crate) fn within_rate_limit(&mut self, appid: &str, openid: &str) -> bool {
        let now = Instant::now();
        let calls = self
            .recent_calls
            .entry((appid.to_owned(), openid.to_owned()))
            .or_default();
        while calls
            .front()
            .is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60))
        {
            calls.pop_front();
        }
        calls.push_back(now);
        calls.len() <= USER_CALLS_PER_MINUTE
    }

    /// Gives the user a new session_key, as each login does at WeChat.
    pub(crate) fn rotate_session_key(&mut self, appid: &str, openid: &str) -> String {
        let key = crypto::new_session_key();
        self.session_keys
            .insert((appid.to_owned(), openid.to_owned()), key.clone());
        key
    }
}
