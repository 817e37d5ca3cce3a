//! The signature of `checksession` and `resetusersessionkey` (asking WeChat whether a stored
//! session_key is still the user's current one, and replacing it). Both are signed with HMAC-SHA256 keyed by
//! the session_key's base64 TEXT (not its 16 decoded bytes) over an empty message.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::SessionKey;

/// `hex(HMAC-SHA256(key = session_key text, message))`, lowercase, as WeChat checks it.
pub fn session_signature(session_key: &SessionKey, message: &[u8]) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(session_key.expose_base64().as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tencent's worked examples (vectors.md): keyed by the 24 ASCII bytes of the text.
    #[test]
    fn the_signature_matches_tencents_worked_examples() {
        let key = SessionKey::new("o0q0otL8aEzpcZL/FT9WsQ==".into());
        assert_eq!(
            session_signature(&key, br#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
        assert_eq!(
            session_signature(&key, b""),
            "46e043c5525c2d817c44be603d30837a808a1d930d038f6fdc3e62a201fed128"
        );
    }
}
