//! The routes, grouped by what they serve. Each handler only translates: it reads the
//! request (its bearer first, then its body), calls the auth-service once, and wraps the
//! answer in the envelope. The groups stand side by side and share nothing but what lies
//! below them (`body`, `bearer`, `input`, `views`, `state`).
//!
//! - [`seed`]: the two routes of the seed mini-program, unchanged;
//! - [`tokens`]: `/v1` login, refresh and logout;
//! - [`me`]: `/v1/me`: what a logged-in user reads and changes about themselves;
//! - [`ops`]: the public keys, health, the OpenAPI document and the fallbacks;
//! - [`oauth`]: the OAuth 2.0 token, introspection and revocation endpoints;
//! - [`openid`]: OpenID Connect discovery and userinfo.
//!
//! The OAuth and OpenID Connect routes answer errors in OAuth's shape, not the envelope: the
//! libraries that call them read `error`.

pub(crate) mod me;
pub(crate) mod oauth;
pub(crate) mod openid;
pub(crate) mod ops;
pub(crate) mod seed;
pub(crate) mod tokens;
