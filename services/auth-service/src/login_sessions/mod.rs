//! Login sessions: a `wx.login()` code traded with WeChat for the user's openid and
//! session_key, kept here (sealed) under a session id handed to the mini-program.
//!
//! The code is claimed in Postgres before WeChat sees it, so it is exchanged at most once
//! across all replicas, even when WeChat then fails or times out. The replica that made a
//! session remembers it until it is completed, so completing it usually reads nothing.

use std::{sync::Arc, time::Instant};

use tracing::{info, warn};
use wxauth_wechat::{AppId, JsCode, SessionKey, WeChatClient};

use crate::{
    apps::Apps,
    domain::{Bearer, CallContext, LoginSession, lifecycle, merge::AccountState},
    error::AuthError,
    metrics::Metrics,
    quotas::WeChatQuota,
    secrets::{self, Keyring, Sealed},
    store::{NewSession, PgStore},
};

/// Prefix of session ids handed to mini-programs.
pub const SESSION_PREFIX: &str = "wxs_";
/// How many sessions a replica remembers between their creation and completion.
const REMEMBERED: u64 = 10_000;

/// A new session for the mini-program. Its `Debug` leaves the id out.
pub struct CreatedSession {
    /// The id to hand out; only its digest is stored.
    pub session_id: String,
    /// Its digest, the key it is stored under.
    pub id_hash: Vec<u8>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Whether WeChat gave a unionid.
    pub has_unionid: bool,
}

impl std::fmt::Debug for CreatedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedSession")
            .field("expires_at", &self.expires_at)
            .field("has_unionid", &self.has_unionid)
            .finish_non_exhaustive()
    }
}

/// What an exchange brought: the user, and the session made for them.
#[derive(Debug)]
pub struct Exchanged {
    /// The user's openid.
    pub openid: String,
    /// The user's unionid, when the app is bound to an Open Platform account.
    pub unionid: Option<String>,
    /// The new session.
    pub session: CreatedSession,
    /// What the account rule needs, read as the session was stored.
    pub account: AccountState,
}

/// A live session, its session_key unsealed, ready to check what the client sent.
#[derive(Debug)]
pub struct OpenedSession {
    /// The session id's digest.
    pub id_hash: Vec<u8>,
    /// The user's openid.
    pub openid: String,
    /// The unionid WeChat gave with the code.
    pub unionid: Option<String>,
    /// The user's session_key.
    pub session_key: SessionKey,
    /// Whether it came from this replica's memory (the database may have dropped it since).
    pub remembered: bool,
    /// What the account rule needs, as read when the session was stored (only when
    /// remembered).
    pub account: Option<AccountState>,
}

/// The session service.
#[derive(Debug)]
pub struct LoginSessions {
    apps: Arc<Apps>,
    wechat: WeChatClient,
    store: PgStore,
    keyring: Arc<Keyring>,
    metrics: Arc<Metrics>,
    quota: Arc<WeChatQuota>,
    ttl_secs: i64,
    remembered: moka::sync::Cache<Vec<u8>, Arc<LoginSession>>,
}

/// The associated data a session_key is sealed with: it binds the sealed value to its row.
fn seal_context(id_hash: &[u8], appid: &str, openid: &str) -> Vec<u8> {
    [id_hash, appid.as_bytes(), &[0], openid.as_bytes()].concat()
}

/// The associated data of a user's latest session_key (`user_session_keys`).
fn user_seal_context(appid: &str, openid: &str) -> Vec<u8> {
    [
        b"wxauth.user_session_key\0".as_slice(),
        appid.as_bytes(),
        &[0],
        openid.as_bytes(),
    ]
    .concat()
}

impl LoginSessions {
    /// The service; sessions live `ttl_secs`.
    pub fn new(
        apps: Arc<Apps>,
        wechat: WeChatClient,
        store: PgStore,
        keyring: Arc<Keyring>,
        metrics: Arc<Metrics>,
        quota: Arc<WeChatQuota>,
        ttl_secs: i64,
    ) -> Self {
        Self {
            apps,
            wechat,
            store,
            keyring,
            metrics,
            quota,
            ttl_secs,
            remembered: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED)
                .time_to_live(std::time::Duration::from_secs(
                    u64::try_from(ttl_secs).unwrap_or(0),
                ))
                .build(),
        }
    }

    /// Trades a code with WeChat (at most once per code, across replicas) and stores a new
    /// session for the user, replacing their older ones.
    pub async fn exchange(&self, appid: &AppId, code: &JsCode) -> Result<Exchanged, AuthError> {
        let secret = self.apps.secret(appid)?;
        // Before the code is claimed: refused here, the same code may be sent again.
        self.quota.take(appid)?;
        let code_hash = secrets::code_digest(appid.as_str(), code.as_str());
        if !self.store.claim_code(appid.as_str(), &code_hash).await? {
            info!(%appid, "code already submitted");
            return Err(AuthError::CodeAlreadyUsed);
        }
        let started = Instant::now();
        let exchanged = self.wechat.code2session(appid, secret, code).await;
        self.metrics.wechat(
            "jscode2session",
            exchanged.as_ref().map(drop),
            started.elapsed(),
        );
        let exchanged = exchanged.inspect_err(|err| {
            warn!(%appid, error = %err, "jscode2session failed");
        })?;

        let session_id = secrets::new_bearer(SESSION_PREFIX).map_err(AuthError::internal)?;
        let id_hash = secrets::digest(&session_id);
        let sealed_key = self
            .keyring
            .seal(
                exchanged.session_key.expose_base64().as_bytes(),
                &seal_context(&id_hash, appid.as_str(), &exchanged.openid),
            )
            .map_err(AuthError::internal)?;
        let user_key = self
            .keyring
            .seal(
                exchanged.session_key.expose_base64().as_bytes(),
                &user_seal_context(appid.as_str(), &exchanged.openid),
            )
            .map_err(AuthError::internal)?;
        let (expires_at, account, stored_at) = self
            .store
            .create_session(NewSession {
                id_hash: &id_hash,
                appid: appid.as_str(),
                openid: &exchanged.openid,
                unionid: exchanged.unionid.as_deref(),
                sealed_key: &sealed_key,
                user_key: &user_key,
                ttl_secs: self.ttl_secs,
            })
            .await?;
        if let Some(barred) = account
            .standing
            .as_ref()
            .and_then(|standing| lifecycle::barred(standing, stored_at))
        {
            info!(%appid, ?barred, "login refused: the user may not log in");
            return Err(AuthError::AccountSuspended);
        }
        let has_unionid = exchanged.unionid.is_some();
        self.remembered.insert(
            id_hash.clone(),
            Arc::new(LoginSession {
                appid: appid.as_str().to_owned(),
                openid: exchanged.openid.clone(),
                unionid: exchanged.unionid.clone(),
                sealed_key,
                account: Some(account.clone()),
            }),
        );
        info!(%appid, has_unionid, "session created");
        Ok(Exchanged {
            openid: exchanged.openid,
            unionid: exchanged.unionid,
            session: CreatedSession {
                session_id,
                id_hash,
                expires_at,
                has_unionid,
            },
            account,
        })
    }

    /// The live session `session_id` of `appid`, with its session_key: from this replica's
    /// memory, else from the database.
    pub async fn open(
        &self,
        appid: &AppId,
        session_id: &Bearer,
    ) -> Result<OpenedSession, AuthError> {
        let id_hash = secrets::digest(session_id.expose());
        let (session, remembered) = match self.remembered.get(&id_hash) {
            Some(session) => (session, true),
            None => (
                Arc::new(
                    self.store
                        .find_session(&id_hash)
                        .await?
                        .ok_or(AuthError::SessionNotFound)?,
                ),
                false,
            ),
        };
        if session.appid != appid.as_str() {
            return Err(AuthError::SessionNotFound);
        }
        let opened = self
            .keyring
            .open(
                &session.sealed_key,
                &seal_context(&id_hash, &session.appid, &session.openid),
            )
            .map_err(AuthError::internal)?;
        let session_key = SessionKey::new(String::from_utf8(opened).map_err(AuthError::internal)?);
        Ok(OpenedSession {
            id_hash,
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            session_key,
            remembered,
            account: session.account.clone(),
        })
    }

    /// Whether a session is still live in the database (it may have been replaced by a newer
    /// login on another replica since this one remembered it).
    pub async fn still_live(&self, id_hash: &[u8]) -> Result<bool, AuthError> {
        Ok(self.store.find_session(id_hash).await?.is_some())
    }

    /// Moves up to `batch` stored sessions sealed under an older key to the active one, so an
    /// old sealing key can be dropped once no session needs it. Returns how many moved.
    ///
    /// Only rows under a key this replica holds are read. A row under a key removed from
    /// the keyring (at once, after a leak) cannot be opened: if those were read too, a batch
    /// of them would come back at every pass, ahead of the rows that can move, and stall
    /// the rotation for as long as they live.
    pub async fn reseal(&self, batch: i64) -> Result<u64, AuthError> {
        let retired = self.keyring.retired_kids();
        if retired.is_empty() {
            return Ok(0);
        }
        let mut moved = 0;
        for stored in self.store.user_keys_sealed_under(&retired, batch).await? {
            let context = user_seal_context(&stored.appid, &stored.openid);
            let Some(sealed) = self.resealed(&stored.sealed, &context)? else {
                continue;
            };
            if self
                .store
                .reseal_user_key(&stored.appid, &stored.openid, &stored.sealed, &sealed)
                .await?
            {
                moved += 1;
            }
        }
        for (id_hash, session) in self.store.sessions_sealed_under(&retired, batch).await? {
            let context = seal_context(&id_hash, &session.appid, &session.openid);
            let Some(sealed) = self.resealed(&session.sealed_key, &context)? else {
                continue;
            };
            if self
                .store
                .reseal_session(&id_hash, &session.sealed_key.kid, &sealed)
                .await?
            {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// `sealed` opened and sealed again under the active key; `None` (logged) when it does
    /// not open, so one damaged row never stops a rotation.
    fn resealed(&self, sealed: &Sealed, context: &[u8]) -> Result<Option<Sealed>, AuthError> {
        let opened = match self.keyring.open(sealed, context) {
            Ok(opened) => opened,
            Err(err) => {
                warn!(error = %err, "a stored session_key cannot be re-sealed; it stays as it is");
                return Ok(None);
            }
        };
        self.keyring
            .seal(&opened, context)
            .map(Some)
            .map_err(AuthError::internal)
    }

    /// The latest session_key WeChat gave for (appid, openid), if one is kept, with its
    /// sealed form (a replacement names it).
    pub async fn latest_key(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Option<(SessionKey, Sealed)>, AuthError> {
        let Some(stored) = self.store.user_session_key(appid, openid).await? else {
            return Ok(None);
        };
        let opened = self
            .keyring
            .open(&stored.sealed, &user_seal_context(appid, openid))
            .map_err(AuthError::internal)?;
        let text = String::from_utf8(opened).map_err(AuthError::internal)?;
        Ok(Some((SessionKey::new(text), stored.sealed)))
    }

    /// Stores the key a reset gave in place of `old`, and ends the user's open login
    /// sessions (their key no longer works). False when the stored key changed meanwhile (a
    /// login in between): then the new one is WeChat's anyway.
    pub async fn replace_key(
        &self,
        appid: &str,
        openid: &str,
        old: &Sealed,
        new: &SessionKey,
        context: &CallContext,
    ) -> Result<bool, AuthError> {
        let sealed = self
            .keyring
            .seal(
                new.expose_base64().as_bytes(),
                &user_seal_context(appid, openid),
            )
            .map_err(AuthError::internal)?;
        Ok(self
            .store
            .replace_user_session_key(appid, openid, old, &sealed, context)
            .await?)
    }

    /// Forgets a remembered session (completed, or gone).
    pub fn forget(&self, id_hash: &[u8]) {
        self.remembered.invalidate(id_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_never_shows_in_debug_output() {
        let created = CreatedSession {
            session_id: "wxs_secret-id".into(),
            id_hash: vec![1],
            expires_at: 5,
            has_unionid: true,
        };
        let printed = format!("{created:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("expires_at"), "{printed}");
    }
}
