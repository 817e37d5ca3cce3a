//! Who may call what. Each caller (the gateway, an internal service, an operator's tool)
//! presents its own key in the `x-wxauth-caller-key` metadata; the key grants scopes:
//!
//! | scope | RPCs |
//! | --- | --- |
//! | `login` | CreateSession, CompleteLogin, Login, RefreshToken, Logout, GetMe (the gateway) |
//! | `validate` | ValidateToken (internal services) |
//! | `admin` | GetUser, RevokeUserSessions, ListAuditEvents, the account lifecycle (operators) |
//! | `pii` | no RPC of its own: phone numbers in full instead of masked, and FindUsers by phone |
//!
//! GetJwks only needs a known key: the keys it returns are public. Keys are kept as SHA-256
//! digests and compared in constant time; none is ever logged.
//!
//! An entry may name the apps it serves (`ops:admin@wx1|wx2:key`): its calls then reach the
//! users of those apps only ([`Reach`]). An entry without apps reaches every app.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{domain::Reach, error::AuthError};

/// What a caller key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The mini-program-facing RPCs, for the gateway.
    Login,
    /// Token validation, for internal services.
    Validate,
    /// User lookup and revocation, for operators.
    Admin,
    /// Phone numbers in full.
    Pii,
}

impl Scope {
    /// The name used in settings and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Validate => "validate",
            Self::Admin => "admin",
            Self::Pii => "pii",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "login" => Some(Self::Login),
            "validate" => Some(Self::Validate),
            "admin" => Some(Self::Admin),
            "pii" => Some(Self::Pii),
            _ => None,
        }
    }
}

/// A caller whose key was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized<'a> {
    /// Its name in the settings.
    pub name: &'a str,
    /// Whether it calls on behalf of mini-programs (the `login` scope: the gateway), so the
    /// client address it passes along is taken.
    pub speaks_for_clients: bool,
    /// The apps it reaches, and whether it sees phone numbers in full.
    pub reach: Reach,
}

/// How a caller proves who it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// A key in the metadata, kept as its SHA-256.
    Key([u8; 32]),
    /// A client certificate (mutual TLS), by the SHA-256 of its DER.
    Certificate([u8; 32]),
}

/// The prefix of a caller entry's credential that names a certificate instead of a key.
const CERT_PREFIX: &str = "cert-sha256:";

struct Caller {
    name: String,
    scopes: Vec<Scope>,
    reach: Reach,
    credential: Credential,
}

/// Why `WXAUTH_CALLERS` cannot be used. Never holds a key: only caller names and rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallersError {
    /// An entry breaks a rule of the format.
    #[error("{0}")]
    Malformed(&'static str),
    /// Two entries name the same key or client certificate: whichever is found last would
    /// silently decide the scopes, and the other entry would be dead.
    #[error("callers {first} and {second} have the same {credential}: give each caller its own")]
    SameCredential {
        /// The entry listed first.
        first: String,
        /// The entry listed later.
        second: String,
        /// `key` or `client certificate`.
        credential: &'static str,
    },
}

/// The known callers.
pub struct Callers {
    callers: Vec<Caller>,
}

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for caller in &self.callers {
            let scopes: Vec<&str> = caller.scopes.iter().map(|scope| scope.name()).collect();
            match caller.reach.apps() {
                Some(apps) => list.entry(&format_args!(
                    "{}:{}@{}",
                    caller.name,
                    scopes.join("+"),
                    apps.join("|")
                )),
                None => list.entry(&format_args!("{}:{}", caller.name, scopes.join("+"))),
            };
        }
        list.finish()
    }
}

impl Callers {
    /// Parses `name:scope+scope:key` entries separated by commas. Keys must be at least 24
    /// characters (`head -c24 /dev/urandom | base64` makes one). The scopes may end with the
    /// apps the caller serves, `@appid|appid`. Instead of a key, an entry
    /// may name a client certificate, `cert-sha256:<64 hex digits>` (the SHA-256 of its DER:
    /// `openssl x509 -in client.pem -outform der | sha256sum`), when the server runs mutual
    /// TLS. The error names the rule and the callers, never a key.
    pub fn parse(raw: &str) -> Result<Self, CallersError> {
        let malformed = CallersError::Malformed;
        let mut callers: Vec<Caller> = Vec::new();
        for entry in raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(scopes), Some(key)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed("each entry must be name:scope+scope:key"));
            };
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(malformed(
                    "a caller name must be 1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
            let (scopes, apps) = match scopes.split_once('@') {
                Some((scopes, apps)) => (scopes, Some(apps)),
                None => (scopes, None),
            };
            let scopes = scopes
                .split('+')
                .map(Scope::parse)
                .collect::<Option<Vec<_>>>()
                .filter(|scopes| scopes.iter().any(|scope| *scope != Scope::Pii))
                .ok_or(malformed(
                    "scopes must be login, validate or admin (and pii), joined by '+'",
                ))?;
            let apps = apps
                .map(|apps| {
                    apps.split('|')
                        .map(|appid| {
                            wxauth_wechat::AppId::parse("appid", appid)
                                .map(|appid| appid.as_str().to_owned())
                                .map_err(|_| {
                                    malformed(
                                        "the apps after '@' must be appids (wx and 16 hex \
                                         digits), joined by '|'",
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            let reach = Reach {
                apps: apps.map(Into::into),
                pii: scopes.contains(&Scope::Pii),
            };
            let credential = match key.strip_prefix(CERT_PREFIX) {
                Some(fingerprint) => Credential::Certificate(
                    hex::decode(fingerprint)
                        .ok()
                        .and_then(|bytes| bytes.try_into().ok())
                        .ok_or(malformed("a cert-sha256: credential must be 64 hex digits"))?,
                ),
                None if key.len() < 24 || !key.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(malformed(
                        "a caller key must be at least 24 printable characters",
                    ));
                }
                None => Credential::Key(Sha256::digest(key.as_bytes()).into()),
            };
            if callers.iter().any(|caller| caller.name == name) {
                return Err(malformed("a caller name is listed twice"));
            }
            if let Some(first) = callers
                .iter()
                .find(|caller| caller.credential == credential)
            {
                return Err(CallersError::SameCredential {
                    first: first.name.clone(),
                    second: name.to_owned(),
                    credential: match credential {
                        Credential::Key(_) => "key",
                        Credential::Certificate(_) => "client certificate",
                    },
                });
            }
            callers.push(Caller {
                name: name.to_owned(),
                scopes,
                reach,
                credential,
            });
        }
        if callers.is_empty() {
            return Err(malformed("no caller is listed"));
        }
        Ok(Self { callers })
    }

    /// Each (caller, appid) an entry names, to check them against the apps served.
    pub fn apps_named(&self) -> impl Iterator<Item = (&str, &str)> {
        self.callers.iter().flat_map(|caller| {
            caller
                .reach
                .apps()
                .unwrap_or_default()
                .iter()
                .map(|appid| (caller.name.as_str(), appid.as_str()))
        })
    }

    /// The caller presenting `key` (metadata), else `certificate` (the DER of its mutual-TLS
    /// client certificate), if it may call `method`, which needs `scope` (`None`: any known
    /// caller).
    pub fn authorize(
        &self,
        key: Option<&str>,
        certificate: Option<&[u8]>,
        method: &'static str,
        scope: Option<Scope>,
    ) -> Result<Authorized<'_>, AuthError> {
        let presented = match (key, certificate) {
            (Some(key), _) => Credential::Key(Sha256::digest(key.as_bytes()).into()),
            (None, Some(der)) => Credential::Certificate(Sha256::digest(der).into()),
            (None, None) => return Err(AuthError::CallerUnauthenticated),
        };
        // Compare against every caller, so the time taken does not say which one matched.
        let mut found = None;
        for caller in &self.callers {
            let same = match (caller.credential, presented) {
                (Credential::Key(known), Credential::Key(given))
                | (Credential::Certificate(known), Credential::Certificate(given)) => {
                    bool::from(known.ct_eq(&given))
                }
                _ => false,
            };
            if same {
                found = Some(caller);
            }
        }
        let caller = found.ok_or(AuthError::CallerUnauthenticated)?;
        match scope {
            Some(needed) if !caller.scopes.contains(&needed) => Err(AuthError::CallerForbidden {
                method,
                scope: needed.name(),
            }),
            _ => Ok(Authorized {
                name: &caller.name,
                speaks_for_clients: caller.scopes.contains(&Scope::Login),
                reach: caller.reach.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = "gateway-key-0123456789abcdef";
    const OPS: &str = "operator-key-0123456789abcdef";

    fn callers() -> Callers {
        Callers::parse(&format!(
            "gateway:login:{GATEWAY}, ops:admin+validate:{OPS}"
        ))
        .unwrap()
    }

    #[test]
    fn keys_grant_their_scopes_and_nothing_else() {
        let callers = callers();
        assert_eq!(
            callers
                .authorize(Some(GATEWAY), None, "Login", Some(Scope::Login))
                .unwrap()
                .name,
            "gateway"
        );
        assert_eq!(
            callers
                .authorize(Some(OPS), None, "GetUser", Some(Scope::Admin))
                .unwrap()
                .name,
            "ops"
        );
        assert_eq!(
            callers
                .authorize(Some(GATEWAY), None, "GetJwks", None)
                .unwrap(),
            Authorized {
                name: "gateway",
                speaks_for_clients: true,
                reach: Reach::default(),
            }
        );
        assert!(matches!(
            callers.authorize(Some(GATEWAY), None, "GetUser", Some(Scope::Admin)),
            Err(AuthError::CallerForbidden { scope: "admin", .. })
        ));
        assert!(matches!(
            callers.authorize(None, None, "Login", Some(Scope::Login)),
            Err(AuthError::CallerUnauthenticated)
        ));
        assert!(matches!(
            callers.authorize(
                Some("gateway-key-0123456789abcdeX"),
                None,
                "Login",
                Some(Scope::Login)
            ),
            Err(AuthError::CallerUnauthenticated)
        ));
    }

    #[test]
    fn a_caller_may_be_known_by_its_client_certificate() {
        let der = b"the DER of a client certificate";
        let fingerprint = hex::encode(Sha256::digest(der));
        let callers = Callers::parse(&format!(
            "svc:validate:cert-sha256:{fingerprint},gateway:login:{GATEWAY}"
        ))
        .unwrap();
        let known = callers
            .authorize(None, Some(der), "ValidateToken", Some(Scope::Validate))
            .unwrap();
        assert_eq!(known.name, "svc");
        assert!(matches!(
            callers.authorize(None, Some(b"another certificate"), "ValidateToken", None),
            Err(AuthError::CallerUnauthenticated)
        ));
        // A key that happens to equal the fingerprint text is not the certificate.
        assert!(
            callers
                .authorize(
                    Some(&format!("cert-sha256:{fingerprint}")),
                    None,
                    "GetJwks",
                    None
                )
                .is_err()
        );
        assert!(Callers::parse("svc:validate:cert-sha256:abcd").is_err());
    }

    #[test]
    fn an_entry_may_name_its_apps_and_the_pii_scope() {
        let callers = Callers::parse(&format!(
            "gateway:login:{GATEWAY},ops:admin+pii@wx4f4bc4dec97d474b|wx0123456789abcdef:{OPS}"
        ))
        .unwrap();
        let ops = callers
            .authorize(Some(OPS), None, "GetUser", Some(Scope::Admin))
            .unwrap();
        assert!(ops.reach.pii);
        assert_eq!(ops.reach.app("wx0123456789abcdef"), Ok(()));
        assert!(ops.reach.app("wx00000000000000ba").is_err());
        let gateway = callers
            .authorize(Some(GATEWAY), None, "Login", Some(Scope::Login))
            .unwrap();
        assert_eq!(gateway.reach, Reach::default(), "no apps named: every app");
        assert!(
            format!("{callers:?}").contains("ops:admin+pii@wx4f4bc4dec97d474b|wx0123456789abcdef")
        );
        for raw in [
            format!("ops:admin@:{OPS}"),
            format!("ops:admin@wx1:{OPS}"),
            format!("ops:admin@wx4f4bc4dec97d474b|:{OPS}"),
            format!("ops:pii:{OPS}"),
        ] {
            assert!(Callers::parse(&raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_without_echoing_keys() {
        for raw in [
            "",
            "gateway:login",
            "gateway:fly:key-0123456789abcdef01234",
            "gateway:login:short",
            "a b:login:key-0123456789abcdef01234",
            "x:login:key-0123456789abcdef01234,x:admin:key-0123456789abcdef01235",
        ] {
            let err = Callers::parse(raw)
                .err()
                .unwrap_or_else(|| panic!("{raw:?} accepted"))
                .to_string();
            assert!(!err.contains("0123456789"), "{err}");
        }
        let printed = format!("{:?}", callers());
        assert!(
            printed.contains("ops:admin+validate") && !printed.contains(OPS),
            "{printed}"
        );
    }

    #[test]
    fn one_key_or_certificate_listed_under_two_callers_is_refused_naming_both() {
        let fingerprint = hex::encode(Sha256::digest(b"a certificate"));
        for (raw, credential) in [
            (
                format!("gateway:login:{GATEWAY},ops2:admin:{GATEWAY}"),
                "key",
            ),
            (
                format!("a:validate:cert-sha256:{fingerprint},b:admin:cert-sha256:{fingerprint}"),
                "client certificate",
            ),
        ] {
            let err = Callers::parse(&raw).expect_err("a shared credential is refused");
            assert_eq!(
                err,
                CallersError::SameCredential {
                    first: if credential == "key" { "gateway" } else { "a" }.into(),
                    second: if credential == "key" { "ops2" } else { "b" }.into(),
                    credential,
                }
            );
            let message = err.to_string();
            assert!(
                !message.contains("0123456789") && !message.contains(&fingerprint),
                "{message}"
            );
        }
        // The same key text as a key and as a fingerprint are different credentials.
        assert!(
            Callers::parse(&format!(
                "a:validate:cert-sha256:{fingerprint},b:admin:{GATEWAY}"
            ))
            .is_ok()
        );
    }
}
