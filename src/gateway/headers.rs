//! Header hygiene between client and upstream.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1), and every header the `Connection` header names, are
//!   removed in both directions; an `Upgrade` the client asked for is re-added on purpose.
//! - Identity headers are ours alone: every client-sent `X-User-*` header, in any spelling
//!   (case, `_` for `-`), and client-sent forwarding headers are removed on every route, before
//!   the gateway sets its own. Our headers are set last, so `Connection: X-User-Info` cannot
//!   remove them.
//! - Values of an upstream's response that go out over HTTP/2 get storage of their own.

use std::net::IpAddr;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_USER_INFO: HeaderName = HeaderName::from_static("x-user-info");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// RFC 9110 §7.6.1 (and `Proxy-Connection`, `Keep-Alive` from RFC 2068 practice; the proxy
/// credentials of RFC 9110 §11.7 belong to this hop only).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Forwarding headers only the gateway may set, compared after folding `_` to `-`.
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
];

/// The protocol a client asks to switch to (`Connection: upgrade` plus `Upgrade: P`).
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    connection_tokens(headers)
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers, and those named in `Connection`. One pass over the names
/// present: only a header that is there gets looked up to be removed.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<&str> = connection_tokens(headers).collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            HOP_BY_HOP.contains(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Marks a request or 101 response as an upgrade to `protocol` again after stripping.
pub fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Whether a client may not send this header: `X-User*` identity and forwarding headers,
/// in any case and with `_` for `-`.
pub fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes(); // already lower case
    let folded = |want: &str| {
        name.len() == want.len()
            && name
                .iter()
                .zip(want.bytes())
                .all(|(&got, want)| got == want || (got == b'_' && want == b'-'))
    };
    let prefix = b"x-user";
    let user = name.len() >= prefix.len()
        && name
            .iter()
            .zip(prefix)
            .all(|(&got, &want)| got == want || (got == b'_' && want == b'-'));
    user || FORWARDING.iter().any(|f| folded(f))
}

/// Removes every reserved header a client sent.
pub fn strip_reserved(headers: &mut HeaderMap) {
    let reserved: Vec<HeaderName> = headers.keys().filter(|n| is_reserved(n)).cloned().collect();
    for name in reserved {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` for the upstream. The gateway is the edge: what the
/// client claimed is replaced, not appended to.
pub fn set_forwarded(headers: &mut HeaderMap, peer: IpAddr, host: Option<&HeaderValue>) {
    if let Ok(v) = HeaderValue::from_str(&peer.to_string()) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// The tokens of every `Connection` header. Split as bytes, so that one non-UTF-8 token does
/// not hide the others.
/// Moves every value into one small allocation of their own. hyper's values are slices of its
/// read buffer, and an HTTP/2 connection's HPACK table keeps the values it indexes, and with
/// them that whole buffer (8 KiB or more), for as long as the connection lives.
pub fn detach_values(headers: &mut HeaderMap) {
    let mut all = BytesMut::with_capacity(headers.values().map(HeaderValue::len).sum());
    for v in headers.values() {
        all.extend_from_slice(v.as_bytes());
    }
    let mut all = all.freeze();
    for v in headers.values_mut() {
        let own = all.split_to(v.len());
        // Valid bytes stay valid; the fallback only keeps the old value.
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(own) {
            copy.set_sensitive(v.is_sensitive());
            *v = copy;
        }
    }
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn reserved_names_in_every_spelling() {
        for name in [
            "x-user-info",
            "X-User-Info",
            "X_User_Info",
            "x_user-email",
            "x-userinfo",
            "x-forwarded-for",
            "X_Forwarded_Host",
            "forwarded",
            "x-real-ip",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(is_reserved(&name), "{name}");
        }
        for name in [
            "x-use",
            "user-agent",
            "x-request-id",
            "x-forwarded",
            "accept",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!is_reserved(&name), "{name}");
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, x-user-info"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn our_headers_survive_a_connection_header_naming_them() {
        let mut h = map(&[
            ("connection", "X-User-Info, X-Forwarded-For"),
            ("x-user-info", "{}"),
        ]);
        strip_hop_by_hop(&mut h);
        strip_reserved(&mut h);
        set_forwarded(&mut h, "10.0.0.1".parse().unwrap(), None);
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1");
        assert!(!h.contains_key("x-user-info"));
    }

    #[test]
    fn detached_values_share_nothing_with_the_read_buffer() {
        let read_buf = bytes::Bytes::from_static(b"text/plain\x00nginx\x00\xe9t\xe9").slice(..);
        let mut h = HeaderMap::new();
        let slice =
            |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(read_buf.slice(r)).unwrap();
        h.insert(header::CONTENT_TYPE, slice(0..10));
        h.append(header::SERVER, slice(11..16));
        h.append(header::SERVER, slice(17..20));
        let mut secret = HeaderValue::from_static("s");
        secret.set_sensitive(true);
        h.insert(header::SET_COOKIE, secret);
        detach_values(&mut h);
        let within = read_buf.as_ptr_range();
        for v in h.values() {
            assert!(
                !within.contains(&v.as_bytes().as_ptr()),
                "{v:?} still in the buffer"
            );
        }
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        let servers: Vec<_> = h.get_all(header::SERVER).iter().collect();
        assert_eq!(
            servers,
            [
                &HeaderValue::from_static("nginx"),
                &HeaderValue::from_bytes(b"\xe9t\xe9").unwrap()
            ]
        );
        assert!(h[header::SET_COOKIE].is_sensitive());
    }

    #[test]
    fn connection_tokens_survive_a_non_utf8_neighbour() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-\xe9, X-Secret").unwrap(),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(requested_upgrade(&h).unwrap(), "websocket");
        assert!(requested_upgrade(&map(&[("upgrade", "websocket")])).is_none());
        assert!(requested_upgrade(&map(&[("connection", "upgrade")])).is_none());
    }
}
