//! Facts of the wire that every party must agree on, defined once: the metadata a caller
//! sends, and what a request id may look like.

use std::sync::{
    LazyLock,
    atomic::{AtomicU64, Ordering},
};

use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataMap},
    service::Interceptor,
};

/// The gRPC metadata key a caller puts its caller key in.
pub const CALLER_KEY_HEADER: &str = "x-wxauth-caller-key";

/// The HTTP header and gRPC metadata key that carries a request id from the gateway to the
/// auth-service (and back to the client).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The gRPC metadata key in which a login caller (the gateway) passes the end client's
/// address, for the audit trail. Taken only from callers with the `login` scope.
pub const CLIENT_ADDR_HEADER: &str = "x-wxauth-client-addr";

/// The longest request id taken from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a caller's request id may be used as it is: 1 to 64 letters, digits, `-`, `_`
/// or `.`, so it cannot inject text into a log line.
pub fn acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A new request id: a random prefix chosen once per process, then a counter. Unique without
/// a system call per request; a request id is a label for the logs, not a secret.
pub fn new_request_id() -> String {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_or_else(
            |_| u64::from(std::process::id()),
            |()| u64::from_le_bytes(bytes),
        ) & 0xffff_ffff_ffff
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:012x}{:08x}",
        *PREFIX,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff
    )
}

/// The access token of a request's one `authorization: Bearer <token>` header (the scheme
/// in any case, the token trimmed). `None` without one, for another scheme or an empty
/// token, and when the header comes more than once: two credentials are ambiguous (one of
/// them may have been added on the way), so neither is taken. The gateway and
/// `wxauth-client` both read tokens with this.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Several caller keys on one call.
#[derive(Debug, thiserror::Error)]
#[error("a call carries several {CALLER_KEY_HEADER} entries")]
pub struct SeveralCallerKeys;

/// The caller key a call presents: `Ok(None)` without one (or with one that is not text),
/// an error when it presents several, which the auth-service refuses rather than pick one.
pub fn caller_key(metadata: &MetadataMap) -> Result<Option<&str>, SeveralCallerKeys> {
    let mut keys = metadata.get_all(CALLER_KEY_HEADER).iter();
    match (keys.next(), keys.next()) {
        (None, _) => Ok(None),
        (Some(key), None) => Ok(key.to_str().ok()),
        (Some(_), Some(_)) => Err(SeveralCallerKeys),
    }
}

/// Puts a caller key on every call to the auth-service: the interceptor every client of it
/// uses (the gateway, `wxauth-client`, the tests).
#[derive(Clone, Debug)]
pub struct CallerKey(Option<AsciiMetadataValue>);

/// A caller key that cannot travel as metadata (it must be printable ASCII).
#[derive(Debug, thiserror::Error)]
#[error("a caller key must be printable ASCII")]
pub struct BadCallerKey;

impl CallerKey {
    /// Presents `key`, marked sensitive so it is never printed.
    pub fn new(key: &str) -> Result<Self, BadCallerKey> {
        let mut value: AsciiMetadataValue = key.parse().map_err(|_| BadCallerKey)?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    /// Presents no key at all (for tests of refusal).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Interceptor for CallerKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request
                .metadata_mut()
                .insert(CALLER_KEY_HEADER, key.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_acceptable() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(acceptable_request_id(&a), "{a}");
        for bad in ["", "a b", "x\ny", &"x".repeat(65), "é"] {
            assert!(!acceptable_request_id(bad), "{bad:?}");
        }
        assert!(acceptable_request_id("abc-DEF_1.2"));
    }

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_bearer_token_is_taken_from_exactly_one_authorization_header() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.def"])), Some("abc.def"));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Some("abc"));
        for refused in [
            &[][..],
            &["Basic dXNlcjpwYXNz"],
            &["Bearer"],
            &["Bearer    "],
            &["abc.def"],
            // Two credentials, whichever comes first, and even when they agree.
            &["Bearer abc.def", "Bearer other"],
            &["Bearer other", "Bearer abc.def"],
            &["Bearer abc.def", "Bearer abc.def"],
        ] {
            assert_eq!(bearer_token(&headers(refused)), None, "{refused:?}");
        }
        let mut opaque = http::HeaderMap::new();
        opaque.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer_token(&opaque), None);
    }

    #[test]
    fn several_caller_keys_are_refused_not_picked_from() {
        let mut metadata = MetadataMap::new();
        assert_eq!(caller_key(&metadata).unwrap(), None);
        metadata.insert(CALLER_KEY_HEADER, "k-one".parse().unwrap());
        assert_eq!(caller_key(&metadata).unwrap(), Some("k-one"));
        metadata.append(CALLER_KEY_HEADER, "k-two".parse().unwrap());
        assert!(caller_key(&metadata).is_err());
    }

    #[test]
    fn a_caller_key_is_sent_and_hidden_from_debug() {
        let mut key = CallerKey::new("k-0123456789abcdef01234567").unwrap();
        assert!(!format!("{key:?}").contains("0123456789"));
        let request = key.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get(CALLER_KEY_HEADER).unwrap(),
            "k-0123456789abcdef01234567"
        );
        assert!(CallerKey::new("key\nwith newline").is_err());
        let bare = CallerKey::none().call(Request::new(())).unwrap();
        assert!(bare.metadata().get(CALLER_KEY_HEADER).is_none());
    }
}
