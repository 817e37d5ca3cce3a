//! Speaks WeChat's mini-program server API and nothing else: the `jscode2session` exchange,
//! the app's access_token, the phone number by code, checksession and session_key reset, the
//! content check of what users type, and
//! the `encryptedData` crypto. No gRPC and no SQL live here, so this crate can be tested
//! and reused on its own.
//!
//! The HTTP client (reqwest) is the `client` feature: without it the crate is the values,
//! their rules and the crypto, which the gateway checks its input with.
//!
//! Secrets (`AppSecret`, `SessionKey`) are `secrecy` types: they have no `Display`, their
//! `Debug` is redacted, and they never appear in an error this crate returns.

mod access_token;
#[cfg(feature = "client")]
mod client;
pub mod crypto;
mod errcode;
mod phone;
mod session_key;
mod types;

pub use access_token::{AccessToken, StableToken};
#[cfg(feature = "client")]
pub use client::{
    BuildError, Code2Session, ContentCheck, Scene, Suggest, WeChatClient, WeChatError,
};
pub use errcode::Errcode;
pub use phone::PhoneCode;
pub use session_key::session_signature;
pub use types::{AppId, AppSecret, InvalidValue, JsCode, SessionKey};
