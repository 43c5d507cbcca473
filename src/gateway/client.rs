//! The client's address as `allow.networks` judges it: the TCP peer, or, when the peer is one
//! of `trusted_proxies`, the first hop of `X-Forwarded-For` (read from the right) that is not
//! a trusted proxy. Hops left of it were written by whoever that client is, so they are never
//! believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::headers::X_FORWARDED_FOR;

/// Hops of `X-Forwarded-For` read from the right at most: a chain of trusted proxies longer
/// than this is not a deployment, and the scan stays bounded.
const MAX_HOPS: usize = 32;

/// The address `allow.networks` is checked against; `None` when a trusted proxy sent a hop
/// that is not an address (then no network matches: fail closed).
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    let values: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let hops = values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(|&b| b == b','))
        .take(MAX_HOPS);
    for hop in hops {
        let hop = parse_hop(hop.trim_ascii())?;
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    Some(client)
}

/// One hop: an address, perhaps with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right() {
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        // A stranger's own X-Forwarded-For is never read.
        assert_eq!(
            client_addr(stranger, &with(&["10.9.9.9"]), &trusted),
            Some(ip("192.0.2.9"))
        );
        assert_eq!(
            client_addr(proxy, &with(&[]), &trusted),
            Some(ip("127.0.0.1"))
        );
        // The client wrote 10.9.9.9 itself; the proxies appended the real hops.
        assert_eq!(
            client_addr(
                proxy,
                &with(&["10.9.9.9, 198.51.100.7", "10.0.0.2"]),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_addr(proxy, &with(&["[2001:db8::1]:443 , 10.0.0.2:80"]), &trusted),
            Some(ip("2001:db8::1"))
        );
        // Only trusted hops: the leftmost is the client.
        assert_eq!(
            client_addr(proxy, &with(&["10.0.0.2"]), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_addr(proxy, &with(&["junk, 10.0.0.2"]), &trusted),
            None
        );
        // IPv4-mapped peers count as IPv4.
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:1".parse().unwrap();
        assert_eq!(
            client_addr(mapped, &with(&[]), &trusted),
            Some(ip("192.0.2.1"))
        );
    }
}
