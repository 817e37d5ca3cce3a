//! The login flows: what happens between the transport (which only translates) and the
//! ports (Postgres, WeChat). No tonic and no SQL here.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use tracing::{info, warn};
use wxauth_token::{Claims, TokenError};
use wxauth_wechat::{AppId, AppSecret, Code2Session, JsCode, SessionKey, WeChatClient, crypto};

use crate::{
    error::AuthError,
    metrics::Metrics,
    profile::UserUpdate,
    revocation::Revocations,
    secrets::{self, Keyring},
    store::{IssuedLogin, NewRefresh, NewSession, PgStore, RefreshOutcome, SessionRow, UserRow},
    tokens::TokenKeys,
    verified::VerifiedTokens,
};

/// Prefix of session ids handed to mini-programs.
pub const SESSION_PREFIX: &str = "wxs_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "wxrt_";
/// How many sessions a replica remembers between their creation and completion.
const SESSIONS_REMEMBERED: u64 = 10_000;
/// The longest id or token accepted: session ids and refresh tokens are under 50
/// characters, access tokens (JWTs) about 500.
const MAX_BEARER_LEN: usize = 4096;

/// What the encrypted data of a completed login is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// `wx.getUserInfo()`.
    UserInfo,
    /// Legacy `getPhoneNumber`.
    Phone,
}

/// Lifetimes and limits of the flows, from settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long a login session is accepted, in seconds.
    pub session_ttl_secs: i64,
    /// The oldest watermark accepted, in seconds; WeChat data older than this is a replay.
    pub watermark_max_age_secs: i64,
}

/// A token pair as handed out.
#[derive(Debug)]
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
    /// The opaque refresh token; only its digest is stored.
    pub refresh_token: String,
    /// Unix seconds.
    pub refresh_expires_at: i64,
}

/// A new session for the mini-program.
#[derive(Debug)]
pub struct CreatedSession {
    /// The id to hand out; only its digest is stored.
    pub session_id: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Whether WeChat gave a unionid.
    pub has_unionid: bool,
}

/// A finished login.
#[derive(Debug)]
pub struct CompletedLogin {
    /// The user as stored now.
    pub user: UserRow,
    /// The user's tokens.
    pub tokens: TokenPair,
}

/// A silent login: tokens, and a session for sending encrypted data later.
#[derive(Debug)]
pub struct SilentLogin {
    /// The user and tokens.
    pub login: CompletedLogin,
    /// The session.
    pub session: CreatedSession,
}

/// The input of [`Login::complete`], as the transport parsed it.
#[derive(Debug)]
pub struct CompleteRequest<'a> {
    /// The appid the client claims.
    pub appid: &'a str,
    /// The session id from `create_session`.
    pub session_id: &'a str,
    /// What was encrypted.
    pub kind: DataKind,
    /// base64 ciphertext.
    pub encrypted_data: &'a str,
    /// base64 iv.
    pub iv: &'a str,
    /// rawData and signature, when the client sent them.
    pub signed_raw_data: Option<(&'a str, &'a str)>,
}

/// What the login service is built from, wired once at start-up.
pub struct LoginDeps {
    /// The apps served, with their secrets.
    pub apps: HashMap<AppId, AppSecret>,
    /// WeChat.
    pub wechat: WeChatClient,
    /// Postgres.
    pub store: PgStore,
    /// The keys that seal session_keys.
    pub keyring: Keyring,
    /// The keys that sign access tokens, and token lifetimes.
    pub tokens: TokenKeys,
    /// The replica's revocation cache.
    pub revocations: Arc<Revocations>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Session and watermark rules.
    pub policy: Policy,
    /// How many verified access tokens ValidateToken remembers (0: none).
    pub verified_tokens: u64,
}

/// The login service: the flows over their ports.
#[derive(Clone)]
pub struct Login {
    apps: Arc<HashMap<AppId, AppSecret>>,
    wechat: WeChatClient,
    store: PgStore,
    keyring: Arc<Keyring>,
    tokens: Arc<TokenKeys>,
    revocations: Arc<Revocations>,
    metrics: Arc<Metrics>,
    policy: Policy,
    /// Sessions this replica created, by id digest, so completing one usually needs no
    /// read: the write that completes it checks in the database that it is still live.
    sessions: moka::sync::Cache<Vec<u8>, Arc<SessionRow>>,
    verified: Arc<VerifiedTokens>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn bearer<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::InvalidArgument(format!("{field} is required")));
    }
    if raw.len() > MAX_BEARER_LEN {
        return Err(AuthError::InvalidArgument(format!(
            "{field} is longer than {MAX_BEARER_LEN} characters"
        )));
    }
    Ok(raw)
}

/// The associated data a session_key is sealed with: it binds the sealed value to its row.
fn seal_context(id_hash: &[u8], appid: &str, openid: &str) -> Vec<u8> {
    [id_hash, appid.as_bytes(), &[0], openid.as_bytes()].concat()
}

impl Login {
    /// Builds the service from its dependencies.
    pub fn new(deps: LoginDeps) -> Self {
        Self {
            apps: Arc::new(deps.apps),
            wechat: deps.wechat,
            store: deps.store,
            keyring: Arc::new(deps.keyring),
            tokens: Arc::new(deps.tokens),
            revocations: deps.revocations,
            metrics: deps.metrics,
            sessions: moka::sync::Cache::builder()
                .max_capacity(SESSIONS_REMEMBERED)
                .time_to_live(std::time::Duration::from_secs(
                    u64::try_from(deps.policy.session_ttl_secs).unwrap_or(0),
                ))
                .build(),
            policy: deps.policy,
            verified: Arc::new(VerifiedTokens::new(deps.verified_tokens)),
        }
    }

    /// The public keys that verify access tokens.
    pub fn jwks(&self) -> &wxauth_token::Jwks {
        self.tokens.jwks()
    }

    fn app(&self, raw_appid: &str) -> Result<(AppId, &AppSecret), AuthError> {
        let appid = AppId::parse("appid", raw_appid)?;
        let secret = self.apps.get(&appid).ok_or(AuthError::UnknownApp)?;
        Ok((appid, secret))
    }

    /// Exchanges a `wx.login()` code for a new session.
    ///
    /// The code is claimed in Postgres before WeChat sees it, so it is exchanged at most
    /// once across all replicas, even when WeChat then fails or times out.
    pub async fn create_session(
        &self,
        raw_appid: &str,
        raw_code: &str,
    ) -> Result<CreatedSession, AuthError> {
        let (_, _, session) = self.exchange(raw_appid, raw_code).await?;
        Ok(session)
    }

    /// The silent login: a code straight to a user and a token pair (plus a session for
    /// encrypted data sent later).
    pub async fn login(&self, raw_appid: &str, raw_code: &str) -> Result<SilentLogin, AuthError> {
        let (appid, exchanged, session) = self.exchange(raw_appid, raw_code).await?;
        let update = UserUpdate {
            unionid: exchanged.unionid.clone(),
            ..UserUpdate::default()
        };
        let session_hash = secrets::digest(&session.session_id);
        let login = self
            .issue_login(&session_hash, &appid, &exchanged.openid, &update)
            .await?;
        info!(%appid, user_id = login.user.user_id, "silent login completed");
        Ok(SilentLogin { login, session })
    }

    async fn exchange(
        &self,
        raw_appid: &str,
        raw_code: &str,
    ) -> Result<(AppId, Code2Session, CreatedSession), AuthError> {
        let (appid, secret) = self.app(raw_appid)?;
        let code = JsCode::parse("code", raw_code)?;
        let code_hash = secrets::code_digest(appid.as_str(), code.as_str());
        if !self
            .store
            .claim_code(appid.as_str(), &code_hash)
            .await
            .map_err(AuthError::from)?
        {
            info!(%appid, "code already submitted");
            return Err(AuthError::CodeAlreadyUsed);
        }
        let started = std::time::Instant::now();
        let exchanged = self.wechat.code2session(&appid, secret, &code).await;
        self.metrics
            .wechat(exchanged.as_ref().map(drop), started.elapsed());
        let exchanged = match exchanged {
            Ok(exchanged) => exchanged,
            Err(err) => {
                warn!(%appid, error = %err, "jscode2session failed");
                return Err(err.into());
            }
        };

        let session_id = secrets::new_bearer(SESSION_PREFIX).map_err(AuthError::internal)?;
        let id_hash = secrets::digest(&session_id);
        let sealed_key = self
            .keyring
            .seal(
                exchanged.session_key.expose_base64().as_bytes(),
                &seal_context(&id_hash, appid.as_str(), &exchanged.openid),
            )
            .map_err(AuthError::internal)?;
        let expires_at = self
            .store
            .create_session(NewSession {
                id_hash: &id_hash,
                appid: appid.as_str(),
                openid: &exchanged.openid,
                unionid: exchanged.unionid.as_deref(),
                sealed_key: &sealed_key,
                ttl_secs: self.policy.session_ttl_secs,
            })
            .await
            .map_err(AuthError::from)?;
        self.sessions.insert(
            id_hash,
            Arc::new(SessionRow {
                appid: appid.as_str().to_owned(),
                openid: exchanged.openid.clone(),
                unionid: exchanged.unionid.clone(),
                sealed_key,
            }),
        );
        info!(%appid, has_unionid = exchanged.unionid.is_some(), "session created");
        let session = CreatedSession {
            session_id,
            expires_at,
            has_unionid: exchanged.unionid.is_some(),
        };
        Ok((appid, exchanged, session))
    }

    /// Stores the user and starts a session family with a token pair, if the login session
    /// is still live.
    async fn issue_login(
        &self,
        session_hash: &[u8],
        appid: &AppId,
        openid: &str,
        update: &UserUpdate,
    ) -> Result<CompletedLogin, AuthError> {
        let refresh_token = secrets::new_bearer(REFRESH_PREFIX).map_err(AuthError::internal)?;
        let issued = self
            .store
            .complete_login(
                session_hash,
                appid.as_str(),
                openid,
                update,
                NewRefresh {
                    hash: &secrets::digest(&refresh_token),
                    ttl_secs: self.tokens.refresh_ttl_secs,
                },
            )
            .await
            .map_err(AuthError::from)?
            .ok_or(AuthError::SessionNotFound)?;
        self.pair(issued, refresh_token)
    }

    fn pair(
        &self,
        issued: IssuedLogin,
        refresh_token: String,
    ) -> Result<CompletedLogin, AuthError> {
        let jti = hex::encode(secrets::random_bytes::<16>().map_err(AuthError::internal)?);
        let (access_token, access_expires_at) =
            self.tokens
                .issue(&issued.user, issued.family_id, jti, unix_now());
        Ok(CompletedLogin {
            user: issued.user,
            tokens: TokenPair {
                access_token,
                access_expires_at,
                refresh_token,
                refresh_expires_at: issued.refresh_expires_at,
            },
        })
    }

    /// Decrypts and verifies the client's data under its session, stores the user and
    /// issues a token.
    pub async fn complete(&self, req: CompleteRequest<'_>) -> Result<CompletedLogin, AuthError> {
        let (appid, _) = self.app(req.appid)?;
        let session_id = bearer("session_id", req.session_id)?;
        if req.encrypted_data.is_empty() {
            return Err(AuthError::InvalidArgument(
                "encryptedData is required".into(),
            ));
        }
        if req.iv.is_empty() {
            return Err(AuthError::InvalidArgument("iv is required".into()));
        }
        if req.kind == DataKind::Phone && req.signed_raw_data.is_some() {
            return Err(AuthError::InvalidArgument(
                "rawData and signature come with wx.getUserInfo(), not with a phone number: omit them".into(),
            ));
        }

        let id_hash = secrets::digest(session_id);
        let (session, cached) = match self.sessions.get(&id_hash) {
            Some(session) => (session, true),
            None => (
                Arc::new(
                    self.store
                        .find_session(&id_hash)
                        .await
                        .map_err(AuthError::from)?
                        .ok_or(AuthError::SessionNotFound)?,
                ),
                false,
            ),
        };
        if session.appid != appid.as_str() {
            return Err(AuthError::SessionNotFound);
        }
        match self.complete_in(&req, &appid, &id_hash, &session).await {
            // A remembered session may have been replaced by a newer login on another
            // replica since: its key no longer opens the data, and the answer must be "log in
            // again", as the database would have said.
            Err(AuthError::DecryptionFailed | AuthError::SignatureMismatch)
                if cached && !self.session_live(&id_hash).await? =>
            {
                self.sessions.invalidate(&id_hash);
                Err(AuthError::SessionNotFound)
            }
            Err(AuthError::SessionNotFound) => {
                self.sessions.invalidate(&id_hash);
                Err(AuthError::SessionNotFound)
            }
            Ok(completed) => {
                self.sessions.invalidate(&id_hash);
                info!(%appid, user_id = completed.user.user_id, kind = ?req.kind, "login completed");
                Ok(completed)
            }
            Err(err) => Err(err),
        }
    }

    async fn session_live(&self, id_hash: &[u8]) -> Result<bool, AuthError> {
        Ok(self
            .store
            .find_session(id_hash)
            .await
            .map_err(AuthError::from)?
            .is_some())
    }

    async fn complete_in(
        &self,
        req: &CompleteRequest<'_>,
        appid: &AppId,
        id_hash: &[u8],
        session: &SessionRow,
    ) -> Result<CompletedLogin, AuthError> {
        let opened = self
            .keyring
            .open(
                &session.sealed_key,
                &seal_context(id_hash, &session.appid, &session.openid),
            )
            .map_err(AuthError::internal)?;
        let session_key = SessionKey::new(String::from_utf8(opened).map_err(AuthError::internal)?);

        if let Some((raw_data, signature)) = req.signed_raw_data {
            crypto::verify_signature(&session_key, raw_data, signature)?;
        }
        let freshness = crypto::Freshness {
            now: unix_now(),
            max_age_secs: Some(self.policy.watermark_max_age_secs),
            max_future_secs: 300,
        };
        let update = match req.kind {
            DataKind::UserInfo => UserUpdate::from_user_info(
                crypto::decrypt_user_info(
                    &session_key,
                    req.encrypted_data,
                    req.iv,
                    appid,
                    &session.openid,
                    freshness,
                )?,
                session.unionid.clone(),
            ),
            DataKind::Phone => UserUpdate::from_phone(
                crypto::decrypt_phone(&session_key, req.encrypted_data, req.iv, appid, freshness)?,
                session.unionid.clone(),
            ),
        };
        self.issue_login(id_hash, appid, &session.openid, &update)
            .await
    }

    /// Trades a refresh token for a new pair; a reused one revokes its family.
    pub async fn refresh(&self, raw_refresh: &str) -> Result<CompletedLogin, AuthError> {
        let presented = bearer("refresh_token", raw_refresh)?;
        let refresh_token = secrets::new_bearer(REFRESH_PREFIX).map_err(AuthError::internal)?;
        let outcome = self
            .store
            .rotate_refresh(
                &secrets::digest(presented),
                NewRefresh {
                    hash: &secrets::digest(&refresh_token),
                    ttl_secs: self.tokens.refresh_ttl_secs,
                },
            )
            .await
            .map_err(AuthError::from)?;
        match outcome {
            RefreshOutcome::Rotated(issued) => self.pair(*issued, refresh_token),
            RefreshOutcome::Reused { family_id } => {
                self.revocations.insert(family_id);
                warn!(
                    family_id,
                    "refresh token reused: the session family is revoked"
                );
                Err(AuthError::TokenInvalid)
            }
            RefreshOutcome::Invalid => Err(AuthError::TokenInvalid),
        }
    }

    /// Ends the session family of a valid access token or of a refresh token (the one to
    /// use once the access token has expired).
    pub async fn logout(&self, access_token: &str, refresh_token: &str) -> Result<(), AuthError> {
        let family_id = if !access_token.is_empty() {
            let claims = self.validate(access_token, "").await?;
            claims.sid.parse().map_err(|_| AuthError::TokenInvalid)?
        } else if !refresh_token.is_empty() {
            let token = bearer("refresh_token", refresh_token)?;
            self.store
                .family_of_refresh(&secrets::digest(token))
                .await
                .map_err(AuthError::from)?
                .ok_or(AuthError::TokenInvalid)?
        } else {
            return Err(AuthError::InvalidArgument(
                "give the access_token or the refresh_token of the session to end".into(),
            ));
        };
        self.store
            .revoke_family(family_id, "logout")
            .await
            .map_err(AuthError::from)?;
        self.revocations.insert(family_id);
        info!(family_id, "logged out");
        Ok(())
    }

    /// Ends every session family of a user.
    pub async fn revoke_user(&self, raw_user_id: &str) -> Result<u64, AuthError> {
        let user = self.get_user(raw_user_id).await?;
        let revoked = self
            .store
            .revoke_user(user.user_id, "revoked by an operator")
            .await
            .map_err(AuthError::from)?;
        info!(user_id = user.user_id, revoked, "user sessions revoked");
        Ok(revoked)
    }

    /// Who an access token belongs to: signature, expiry, audience and revocation. The
    /// database is asked only while the revocation cache is not connected.
    pub async fn validate(&self, raw_token: &str, appid: &str) -> Result<Arc<Claims>, AuthError> {
        let token = bearer("token", raw_token)?;
        let audience = (!appid.is_empty()).then_some(appid);
        let claims = self
            .verified
            .verify(self.tokens.verifier(), token, unix_now(), audience)
            .map_err(|err| match err {
                TokenError::Expired => AuthError::TokenExpired,
                _ => AuthError::TokenInvalid,
            })?;
        let family_id: i64 = claims.sid.parse().map_err(|_| AuthError::TokenInvalid)?;
        let revoked = match self.revocations.check(family_id) {
            Some(revoked) => revoked,
            None => self
                .store
                .is_family_revoked(family_id)
                .await
                .map_err(AuthError::from)?,
        };
        if revoked {
            return Err(AuthError::TokenInvalid);
        }
        Ok(claims)
    }

    /// The user of a valid access token.
    pub async fn me(&self, raw_token: &str) -> Result<UserRow, AuthError> {
        let claims = self.validate(raw_token, "").await?;
        self.get_user(&claims.sub).await
    }

    /// A user by the id [`Login::validate`] returned.
    pub async fn get_user(&self, raw_user_id: &str) -> Result<UserRow, AuthError> {
        let user_id: i64 = raw_user_id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                AuthError::InvalidArgument("user_id must be a positive decimal number".into())
            })?;
        self.store
            .get_user(user_id)
            .await
            .map_err(AuthError::from)?
            .ok_or(AuthError::UserNotFound)
    }
}
