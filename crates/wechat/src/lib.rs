//! Speaks WeChat's mini-program server API and nothing else: the `jscode2session` exchange
//! and the `encryptedData` crypto. No gRPC and no SQL live here, so this crate can be tested
//! and reused on its own.
//!
//! Secrets (`AppSecret`, `SessionKey`) are `secrecy` types: they have no `Display`, their
//! `Debug` is redacted, and they never appear in an error this crate returns.

mod client;
pub mod crypto;
mod errcode;
mod types;

pub use client::{BuildError, Code2Session, WeChatClient, WeChatError};
pub use errcode::Errcode;
pub use types::{AppId, AppSecret, InvalidValue, JsCode, SessionKey};
