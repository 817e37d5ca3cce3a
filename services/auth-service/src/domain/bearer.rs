//! A bearer secret as a caller presents it: a session id, a refresh or an access token.

/// The longest bearer accepted: session ids and refresh tokens are under 50 characters,
/// access tokens (JWTs) about 500.
pub const MAX_BEARER_LEN: usize = 4096;

/// Why a presented bearer was refused; names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBearer {
    /// Empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// Longer than any we issue.
    #[error("{0} is longer than {MAX_BEARER_LEN} characters")]
    TooLong(&'static str),
}

/// A presented bearer: present and of a sane length (what it is worth is checked later).
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Bearer {
    /// Parses the field `field`; the error names the field, never the value.
    pub fn parse(field: &'static str, raw: String) -> Result<Self, InvalidBearer> {
        if raw.is_empty() {
            return Err(InvalidBearer::Missing(field));
        }
        if raw.len() > MAX_BEARER_LEN {
            return Err(InvalidBearer::TooLong(field));
        }
        Ok(Self(raw))
    }

    /// The secret, to digest or verify; never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_is_present_bounded_and_never_printed() {
        assert_eq!(
            Bearer::parse("token", String::new())
                .unwrap_err()
                .to_string(),
            "token is required"
        );
        assert!(Bearer::parse("token", "x".repeat(MAX_BEARER_LEN + 1)).is_err());
        let bearer = Bearer::parse("token", "wxrt_secret".into()).unwrap();
        assert_eq!(bearer.expose(), "wxrt_secret");
        assert!(!format!("{bearer:?}").contains("secret"));
    }
}
