//! What the audit trail records: who did what, with what outcome, from where. Never a
//! secret: users by id (or a digest of their openid before they have one), callers by name.

/// The call an event happened in: who asked, from where, under which request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The caller's name (`gateway`, `ops`...), once its key was accepted.
    pub caller: Option<String>,
    /// The end client's address: the mini-program's as the gateway saw it, or the caller's.
    pub client_addr: Option<String>,
    /// The id this service gave the call, which its logs carry.
    pub request_id: String,
    /// The id the caller sent, when it sent an acceptable one. A client may write anything
    /// there, so it is kept apart from the service's own.
    pub client_request_id: Option<String>,
    /// What the caller may reach (not recorded: it decides what the call may do).
    pub reach: super::Reach,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The user filled in their nickname or avatar.
    ProfileUpdated,
    /// A refresh token was refused (unknown, expired, of a revoked or too old family).
    RefreshRefused,
    /// A phone number bind was refused (WeChat refused the code, a bad token...).
    PhoneBindRefused,
    /// An operator read a user's data (`outcome` names the RPC).
    AdminRead,
    /// An operator suspended a user (`outcome`: the reason).
    UserSuspended,
    /// An operator lifted a user's suspension.
    UserReinstated,
    /// A deletion was asked for and waits out the cooling-off.
    DeletionRequested,
    /// A user's data was erased: they are a tombstone now.
    UserDeleted,
    /// An operator undid a deletion during its cooling-off.
    UserRestored,
    /// A copy of a user's data was handed out (to the user, or to an operator).
    DataExported,
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
            Self::ProfileUpdated => "profile_updated",
            Self::RefreshRefused => "refresh_refused",
            Self::PhoneBindRefused => "phone_bind_refused",
            Self::AdminRead => "admin_read",
            Self::UserSuspended => "user_suspended",
            Self::UserReinstated => "user_reinstated",
            Self::DeletionRequested => "deletion_requested",
            Self::UserDeleted => "user_deleted",
            Self::UserRestored => "user_restored",
            Self::DataExported => "data_exported",
        }
    }

    /// Every kind, for the list a filter is checked against.
    pub const ALL: [Self; 21] = [
        Self::Login,
        Self::SilentLogin,
        Self::LoginRefused,
        Self::Refresh,
        Self::RefreshReplayed,
        Self::RefreshReused,
        Self::Logout,
        Self::Revoked,
        Self::CallerRefused,
        Self::PhoneBound,
        Self::SessionKeyReset,
        Self::ProfileUpdated,
        Self::RefreshRefused,
        Self::PhoneBindRefused,
        Self::AdminRead,
        Self::UserSuspended,
        Self::UserReinstated,
        Self::DeletionRequested,
        Self::UserDeleted,
        Self::UserRestored,
        Self::DataExported,
    ];

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
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
    /// The account, when one was read or changed as a whole.
    pub account_id: Option<i64>,
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
    /// The id the service gave the call (the first of them, for a row that stands for
    /// several).
    pub request_id: Option<String>,
    /// The id the caller sent.
    pub client_request_id: Option<String>,
    /// The account concerned as a whole.
    pub account_id: Option<i64>,
    /// How many events the row stands for: 1, or the refusals or reads of one minute that
    /// differ only in their time.
    pub count: i64,
}

/// Which events a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// One user's, or every event.
    pub user_id: Option<i64>,
    /// Only these kinds; every kind when empty.
    pub kinds: Vec<AuditKind>,
    /// Only events at or after this time.
    pub since: Option<crate::clock::Timestamp>,
    /// Only events before this time.
    pub until: Option<crate::clock::Timestamp>,
    /// Only events older than this one (paging).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
    /// Only events of these apps (a caller that reaches some apps only); every event when
    /// `None`.
    pub apps: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_parses_back() {
        let mut names: Vec<&str> = AuditKind::ALL.iter().map(|kind| kind.name()).collect();
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.name()), Some(kind));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditKind::ALL.len());
        assert_eq!(AuditKind::parse("nope"), None);
    }
}
