//! Who a request is and who sent it: its id (the caller's `x-request-id` when it is sane, a
//! new one otherwise) and the client's address, as [`observe`](crate::observe) learns them
//! for every request. The id goes into the span of every log line of the request, to the
//! auth-service as gRPC metadata, into the response header, and into failure envelopes.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    num::NonZeroU8,
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use wxauth_proto::wire::new_request_id;

/// The id of the request being served, and where it came from.
#[derive(Debug, Clone)]
pub struct RequestId {
    /// The id.
    pub id: String,
    /// The client's address, for the auth-service's audit trail.
    pub client: Option<IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId {
                id: new_request_id(),
                client: None,
            }))
    }
}

/// Where the gateway learns a client's address (for the audit trail and the login quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    /// The connection's peer: nothing stands in front of the gateway.
    Peer,
    /// `x-forwarded-for`, to which each of `proxies` proxies in front of the gateway appends
    /// the address it was reached from. The client is the address that many places from the
    /// right: whatever stands left of it was sent by the client itself, and believing it
    /// would let anyone pick their own quota bucket and their own address in the audit trail.
    Forwarded {
        /// How many proxies append to the header (1 for one ingress).
        proxies: NonZeroU8,
    },
}

/// Who the client of a request is: see [`ClientAddress`]. The peer when the forwarded
/// address is missing (fewer hops than proxies) or not an address.
pub(crate) fn client_address(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    how: ClientAddress,
) -> Option<IpAddr> {
    let ClientAddress::Forwarded { proxies } = how else {
        return peer;
    };
    // Header lines in order, each a comma-separated list; counted from the right.
    let mut remaining = proxies.get();
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return peer;
        };
        for hop in line.rsplit(',') {
            remaining -= 1;
            if remaining == 0 {
                return hop_address(hop.trim()).or(peer);
            }
        }
    }
    peer
}

/// An address as proxies write it: bare, or with a port (`203.0.113.7:41234`, `[2001:db8::1]:443`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(lines: &[&str], proxies: u8) -> Option<IpAddr> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        let how = ClientAddress::Forwarded {
            proxies: NonZeroU8::new(proxies).unwrap(),
        };
        client_address(&headers, Some(PEER.parse().unwrap()), how)
    }

    const PEER: &str = "10.0.0.9";

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn without_a_proxy_the_header_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        let peer = ip(PEER);
        assert_eq!(client_address(&headers, peer, ClientAddress::Peer), peer);
    }

    #[test]
    fn the_client_is_the_hop_the_nearest_trusted_proxy_saw() {
        // One proxy appended the address it saw; what the client sent stands left of it.
        assert_eq!(forwarded(&["203.0.113.7"], 1), ip("203.0.113.7"));
        assert_eq!(
            forwarded(&["198.51.100.66, 203.0.113.7"], 1),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded(&["198.51.100.66", "203.0.113.7"], 1),
            ip("203.0.113.7")
        );
        // Two proxies (a CDN, then an ingress that appends the CDN's address).
        assert_eq!(
            forwarded(&["198.51.100.66, 203.0.113.7, 10.0.0.1"], 2),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded(&["198.51.100.66, 203.0.113.7", "10.0.0.1"], 2),
            ip("203.0.113.7")
        );
        // Ports, and IPv6, as some proxies write them.
        assert_eq!(forwarded(&["203.0.113.7:41234"], 1), ip("203.0.113.7"));
        assert_eq!(forwarded(&["[2001:db8::7]:443"], 1), ip("2001:db8::7"));
        assert_eq!(forwarded(&["2001:db8::7"], 1), ip("2001:db8::7"));
    }

    #[test]
    fn a_missing_or_malformed_hop_falls_back_to_the_peer() {
        assert_eq!(forwarded(&[], 1), ip(PEER));
        assert_eq!(forwarded(&["203.0.113.7"], 2), ip(PEER));
        assert_eq!(forwarded(&["not an address"], 1), ip(PEER));
        assert_eq!(forwarded(&["203.0.113.7, "], 1), ip(PEER));
    }
}
