//! What the auth-service is about, as plain types: the store maps rows into them and the
//! transport maps them out to messages, so a column or a field can change on one side
//! without reaching the other.

pub mod app_token;
pub mod audit;
pub mod bearer;
pub mod events;
pub mod lifecycle;
pub mod merge;
pub mod profile;
pub mod reach;
pub mod rotation;
pub mod scope;
pub mod session;
pub mod user;

pub use app_token::TokenStatus;
pub use audit::{AuditEvent, AuditFilter, AuditKind, CallContext, NewAuditEvent};
pub use bearer::{Bearer, InvalidBearer};
pub use profile::{
    FilledProfile, InvalidProfile, NicknameCheck, PLACEHOLDER_NICKNAME, Phone, Profile, UserUpdate,
};
pub use reach::{OutOfReach, Reach};
pub use session::LoginSession;
pub use user::User;
