//! OAuth scopes: what a client may ask for, and what a token is granted. What a login asked
//! for is kept with its token family, so a refresh grants what the login did, never more; a
//! login that asked for nothing gets every scope and no ID token (`/v1/login`, the seed).

use std::fmt;

/// A scope this deployment grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// OpenID Connect: an ID token beside the access token.
    OpenId,
    /// The profile claims (nickname, avatar) at the userinfo endpoint.
    Profile,
    /// The phone number at the userinfo endpoint.
    Phone,
}

impl Scope {
    /// Every scope, in the order they are written.
    pub const ALL: [Self; 3] = [Self::OpenId, Self::Profile, Self::Phone];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenId => "openid",
            Self::Profile => "profile",
            Self::Phone => "phone",
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

/// A scope was asked for that this deployment does not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {0:?} is not one this service grants; the scopes are openid, profile and phone")]
pub struct UnknownScope(pub String);

impl Scopes {
    /// What a login grants when the client asks for nothing in particular: everything.
    pub fn default_grant() -> Self {
        Self(Scope::ALL.to_vec())
    }

    /// The scopes of a space-separated request (RFC 6749 3.3); `None` when it is empty.
    pub fn parse(raw: &str) -> Result<Option<Self>, UnknownScope> {
        let mut scopes = Vec::new();
        for name in raw.split(' ').filter(|name| !name.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|scope| scope.name() == name)
                .ok_or_else(|| UnknownScope(name.chars().take(64).collect()))?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes.sort_unstable();
        Ok((!scopes.is_empty()).then_some(Self(scopes)))
    }

    /// The scopes of a stored grant; one stored by a newer release with scopes this one does
    /// not know keeps those it knows.
    pub fn stored(raw: Option<&str>) -> Self {
        match raw {
            None => Self::default_grant(),
            Some(raw) => Self(
                raw.split(' ')
                    .filter_map(|name| Scope::ALL.into_iter().find(|scope| scope.name() == name))
                    .collect(),
            ),
        }
    }

    /// Whether every scope of `self` is in `granted`.
    pub fn within(&self, granted: &Self) -> bool {
        self.0.iter().all(|scope| granted.0.contains(scope))
    }

    /// Whether `scope` is in the set.
    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|scope| scope.name()).collect();
        f.write_str(&names.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_in_any_order_once_and_unknown_ones_are_named() {
        assert_eq!(Scopes::parse("").unwrap(), None);
        assert_eq!(Scopes::parse("  ").unwrap(), None);
        let parsed = Scopes::parse("phone openid phone").unwrap().unwrap();
        assert_eq!(parsed.to_string(), "openid phone");
        assert_eq!(
            Scopes::parse("openid email"),
            Err(UnknownScope("email".into()))
        );
        assert!(parsed.within(&Scopes::default_grant()));
        assert!(!Scopes::default_grant().within(&parsed));
    }

    #[test]
    fn a_stored_grant_keeps_the_scopes_this_release_knows() {
        assert_eq!(
            Scopes::stored(Some("openid future-scope")).to_string(),
            "openid"
        );
        assert_eq!(Scopes::stored(None), Scopes::default_grant());
    }
}
