//! What the audit trail records: who did what, with what outcome, from where. Never a
//! secret: users by id (or a digest of their openid before they have one), callers by name.

/// The call an event happened in: who asked, from where, under which request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The caller's name (`gateway`, `ops`...), once its key was accepted.
    pub caller: Option<String>,
    /// The end client's address: the mini-program's as the gateway saw it, or the caller's.
    pub client_addr: Option<String>,
    /// The request id, to find the logs.
    pub request_id: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A login completed with encrypted data (`wxsmallusersave`, CompleteLogin).
    Login,
    /// A silent login completed (`/v1/login`, Login).
    SilentLogin,
    /// A login was refused (WeChat, the session, the data); the outcome says why.
    LoginRefused,
    /// A refresh token was traded for a new pair.
    Refresh,
    /// A refresh token was presented again within the grace period; the same successor
    /// was handed out.
    RefreshReplayed,
    /// A used refresh token was presented again: the family was revoked.
    RefreshReused,
    /// A session family ended by logout.
    Logout,
    /// Every session family of a user ended by an operator.
    Revoked,
    /// A call was refused for its caller key.
    CallerRefused,
    /// A phone number was bound with the code of the getPhoneNumber button.
    PhoneBound,
    /// An operator had WeChat replace a user's session_key.
    SessionKeyReset,
}

impl AuditKind {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::SilentLogin => "silent_login",
            Self::LoginRefused => "login_refused",
            Self::Refresh => "refresh",
            Self::RefreshReplayed => "refresh_replayed",
            Self::RefreshReused => "refresh_reused",
            Self::Logout => "logout",
            Self::Revoked => "revoked",
            Self::CallerRefused => "caller_refused",
            Self::PhoneBound => "phone_bound",
            Self::SessionKeyReset => "session_key_reset",
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// `ok`, or the error reason.
    pub outcome: String,
    /// The mini-program, when known.
    pub appid: Option<String>,
    /// The user, when known.
    pub user_id: Option<i64>,
    /// SHA-256 of appid, NUL, openid: the user before they have an id.
    pub openid_digest: Option<Vec<u8>>,
    /// The session family, when one is concerned.
    pub family_id: Option<i64>,
    /// The call.
    pub context: CallContext,
}

/// A recorded event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its number, increasing with time.
    pub id: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// What happened (an [`AuditKind`] name).
    pub kind: String,
    /// `ok`, or the error reason.
    pub outcome: String,
    /// The mini-program.
    pub appid: Option<String>,
    /// The user.
    pub user_id: Option<i64>,
    /// The session family.
    pub family_id: Option<i64>,
    /// Who asked.
    pub actor: Option<String>,
    /// From where.
    pub client_addr: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}
