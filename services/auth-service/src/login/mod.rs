//! The login flows: a code to a session, a session and WeChat's encrypted data to a user and
//! tokens, and the silent login that does both at once. No tonic and no SQL here.
//!
//! - [`complete`]: checking and decrypting what the client sent under its session.

pub mod complete;

use std::sync::Arc;

use tracing::info;
use wxauth_wechat::{AppId, JsCode};

use crate::{
    apps::Apps,
    clock::SharedClock,
    domain::{CallContext, UserUpdate, merge::AccountState, scope::Scopes},
    error::AuthError,
    login_sessions::{CreatedSession, LoginSessions},
    store::{Completion, LoginWrite, PgStore},
    tokens::{Issued, Tokens},
};
pub use complete::{CompleteRequest, DataKind, SignedRawData};

/// A silent login: tokens, and a session for sending encrypted data later.
#[derive(Debug)]
pub struct SilentLogin {
    /// The user and tokens.
    pub login: Issued,
    /// The session.
    pub session: CreatedSession,
}

/// The login service.
#[derive(Debug)]
pub struct Logins {
    apps: Arc<Apps>,
    sessions: Arc<LoginSessions>,
    tokens: Arc<Tokens>,
    store: PgStore,
    clock: SharedClock,
    /// The oldest watermark accepted, in seconds; WeChat data older than this is a replay.
    watermark_max_age_secs: i64,
}

impl Logins {
    /// The flows over their parts.
    pub fn new(
        apps: Arc<Apps>,
        sessions: Arc<LoginSessions>,
        tokens: Arc<Tokens>,
        store: PgStore,
        clock: SharedClock,
        watermark_max_age_secs: i64,
    ) -> Self {
        Self {
            apps,
            sessions,
            tokens,
            store,
            clock,
            watermark_max_age_secs,
        }
    }

    /// Exchanges a `wx.login()` code for a new session.
    pub async fn create_session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> Result<CreatedSession, AuthError> {
        Ok(self.sessions.exchange(appid, code).await?.session)
    }

    /// The silent login: a code straight to a user and a token pair (plus a session for
    /// encrypted data sent later).
    pub async fn silent(
        &self,
        appid: &AppId,
        code: &JsCode,
        asked: Option<&Scopes>,
        context: &CallContext,
    ) -> Result<SilentLogin, AuthError> {
        let exchanged = self.sessions.exchange(appid, code).await?;
        let login = self
            .issue(
                &exchanged.session.id_hash,
                Completion::KeepsSession,
                (appid, &exchanged.openid),
                &UserUpdate::unionid(exchanged.unionid),
                Some(exchanged.account),
                asked,
                context,
            )
            .await?;
        info!(%appid, user_id = login.user.id, "silent login completed");
        Ok(SilentLogin {
            login,
            session: exchanged.session,
        })
    }

    /// Decrypts and verifies the client's data under its session, stores the user and
    /// issues a token pair. The session is used up: it issues tokens once.
    pub async fn complete(
        &self,
        req: CompleteRequest,
        context: &CallContext,
    ) -> Result<Issued, AuthError> {
        self.apps.serves(&req.appid)?;
        let session = self.sessions.open(&req.appid, &req.session_id).await?;
        let checked = complete::check(
            &req,
            &session,
            self.clock.now(),
            self.watermark_max_age_secs,
        );
        let result = match checked {
            Ok(update) => {
                self.issue(
                    &session.id_hash,
                    Completion::UsesUpSession,
                    (&req.appid, &session.openid),
                    &update,
                    session.account.clone(),
                    None,
                    context,
                )
                .await
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(issued) => {
                self.sessions.forget(&session.id_hash);
                info!(appid = %req.appid, user_id = issued.user.id, kind = ?req.kind, "login completed");
                Ok(issued)
            }
            // A remembered session may have been replaced by a newer login on another
            // replica since: its key no longer opens the data, and the answer must be "log in
            // again", as the database would have said.
            Err(AuthError::DecryptionFailed | AuthError::SignatureMismatch)
                if session.remembered && !self.sessions.still_live(&session.id_hash).await? =>
            {
                self.sessions.forget(&session.id_hash);
                Err(AuthError::SessionNotFound)
            }
            Err(AuthError::SessionNotFound) => {
                self.sessions.forget(&session.id_hash);
                Err(AuthError::SessionNotFound)
            }
            Err(err) => Err(err),
        }
    }

    /// Stores the user and starts a session family with a token pair, if the login session
    /// is still live (a silent login needs none). `known`: the account facts read as the
    /// session was stored, when this replica has them; `asked`: the scopes the client asked
    /// for (`None`: the default grant).
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        session_hash: &[u8],
        completion: Completion,
        (appid, openid): (&AppId, &str),
        update: &UserUpdate,
        known: Option<AccountState>,
        asked: Option<&Scopes>,
        context: &CallContext,
    ) -> Result<Issued, AuthError> {
        let refresh = self.tokens.new_refresh(asked)?;
        let written = self
            .store
            .complete_login(
                session_hash,
                completion,
                appid.as_str(),
                openid,
                update,
                refresh.stored(),
                known,
                context,
            )
            .await?;
        match written {
            LoginWrite::Issued(issued) => self.tokens.pair(*issued, refresh, asked),
            LoginWrite::SessionGone => Err(AuthError::SessionNotFound),
            LoginWrite::Barred(barred) => {
                info!(%appid, ?barred, "login refused: the user may not log in");
                Err(AuthError::AccountSuspended)
            }
        }
    }
}
