//! Header hygiene between client and upstream.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1), and every header the `Connection` header names, are
//!   removed in both directions. Only a WebSocket handshake (RFC 6455 §4) is marked as an
//!   upgrade again: any other `Upgrade` (`h2c`, …) would open a tunnel that carries requests
//!   past the route policy, so it is forwarded as a plain request.
//! - Identity and forwarding headers are ours alone: every header of [`RESERVED`] a client
//!   sends, in any spelling (case, `_` for `-`), is removed on every route, before the gateway
//!   sets its own. Our headers are set last, so `Connection: X-User-Info` cannot remove them.
//! - The `Host` of a request is checked in `hosts.rs`.
//! - Values of an upstream's response that go out over HTTP/2 get storage of their own.

use std::io::Write as _;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Version};
use sha1::{Digest, Sha1};

use crate::util::{connection_tokens, is_hop_by_hop};

pub static X_USER_INFO: HeaderName = HeaderName::from_static("x-user-info");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// How a [`RESERVED`] entry matches a header name.
#[derive(Clone, Copy, PartialEq)]
pub enum Reserved {
    /// This name exactly.
    Name,
    /// Every name that starts with this.
    Prefix,
}

/// Request headers that only the gateway may set: identity headers that backends trust for
/// who the user is, and forwarding headers that they trust for the client's address, scheme,
/// host or path. Compared in lower case with `_` read as `-`. The README lists this table.
pub const RESERVED: [(&str, Reserved); 29] = [
    // Who the user is: ours (`X-User-Info`), and what other gateways and servers send.
    ("x-user", Reserved::Prefix),
    ("x-auth-request-", Reserved::Prefix), // oauth2-proxy
    ("remote-", Reserved::Prefix),         // Authelia, Apache: Remote-User, -Email, -Groups
    ("x-remote-user", Reserved::Name),
    ("x-pomerium-", Reserved::Prefix),
    ("x-vouch-", Reserved::Prefix),
    ("cf-access-", Reserved::Prefix),            // Cloudflare Access
    ("x-goog-authenticated-", Reserved::Prefix), // Google IAP
    ("oidc-", Reserved::Prefix), // mod_auth_openidc: OIDC_CLAIM_*, OIDC_access_token
    ("gap-auth", Reserved::Name),
    ("x-webauth-", Reserved::Prefix), // Grafana's auth proxy
    // Where the request came from and what it asked for.
    ("x-forwarded-", Reserved::Prefix),
    ("forwarded", Reserved::Name),
    ("x-real-ip", Reserved::Name),
    ("x-client-ip", Reserved::Name),
    ("client-ip", Reserved::Name),
    ("true-client-ip", Reserved::Name),
    ("cf-connecting-ip", Reserved::Name),
    ("x-cluster-client-ip", Reserved::Name),
    ("fastly-client-ip", Reserved::Name),
    ("proxy-client-ip", Reserved::Name),
    ("wl-proxy-client-ip", Reserved::Name),
    ("x-original-url", Reserved::Name),
    ("x-original-uri", Reserved::Name),
    ("x-rewrite-url", Reserved::Name),
    ("x-original-host", Reserved::Name),
    ("x-host", Reserved::Name),
    ("x-envoy-", Reserved::Prefix),
    ("x-proxyuser-ip", Reserved::Name),
];

/// The `Sec-WebSocket-Key` of a well-formed WebSocket opening handshake (RFC 6455 §4.1, §4.2.1):
/// HTTP/1.1 `GET`, `Connection: upgrade`, `Upgrade: websocket` and nothing else,
/// `Sec-WebSocket-Version: 13`, a key of 16 bytes in base64. `None` for anything else,
/// including every other upgrade.
pub fn websocket_key<B>(req: &Request<B>) -> Option<HeaderValue> {
    let h = req.headers();
    if req.version() != Version::HTTP_11
        || req.method() != Method::GET
        || !connection_tokens(h).any(|t| t.eq_ignore_ascii_case("upgrade"))
    {
        return None;
    }
    let mut upgrades = h.get_all(header::UPGRADE).iter();
    let only_websocket = upgrades
        .next()
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"))
        && upgrades.next().is_none();
    let version_13 = h.get_all(&SEC_WEBSOCKET_VERSION).iter().count() == 1
        && h.get(&SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes().trim_ascii() == b"13");
    let key = h.get(&SEC_WEBSOCKET_KEY)?;
    let key_ok = h.get_all(&SEC_WEBSOCKET_KEY).iter().count() == 1
        && B64
            .decode(key.as_bytes().trim_ascii())
            .is_ok_and(|k| k.len() == 16);
    (only_websocket && version_13 && key_ok).then(|| key.clone())
}

/// The `Sec-WebSocket-Accept` an upstream must answer to `key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &HeaderValue) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes().trim_ascii());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    B64.encode(sha.finalize())
}

/// Whether a 101 answers the WebSocket handshake whose key was `key`: `Upgrade: websocket`
/// and the matching `Sec-WebSocket-Accept`. Anything else would switch to a protocol the
/// client did not ask for, or to one the upstream did not understand.
pub fn websocket_accepted(response: &HeaderMap, key: &HeaderValue) -> bool {
    let upgrade_ok = response
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"));
    let accept_ok = response
        .get(&SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes().trim_ascii() == websocket_accept(key).as_bytes());
    upgrade_ok && accept_ok
}

/// Removes hop-by-hop headers, and those named in `Connection`. One pass over the names
/// present: only a header that is there gets looked up to be removed. A message has one or
/// two of them (a response's `Connection: keep-alive`), gathered on the stack; only one with
/// more than [`FEW`] takes a list.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut few: [Option<HeaderName>; FEW] = Default::default();
    let mut found = 0;
    {
        let connection = headers.get_all(header::CONNECTION);
        let doomed = |name: &HeaderName| {
            is_hop_by_hop(name)
                || connection
                    .iter()
                    .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                    .any(|t| {
                        t.trim_ascii()
                            .eq_ignore_ascii_case(name.as_str().as_bytes())
                    })
        };
        for name in headers.keys().filter(|name| doomed(name)) {
            if let Some(slot) = few.get_mut(found) {
                *slot = Some(name.clone());
            }
            found += 1;
        }
    }
    if found > FEW {
        let many: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                is_hop_by_hop(name)
                    || connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name.as_str()))
            })
            .cloned()
            .collect();
        for name in many {
            headers.remove(name);
        }
        return;
    }
    for name in few.into_iter().flatten() {
        headers.remove(name);
    }
}

/// How many hop-by-hop names [`strip_hop_by_hop`] gathers without allocating.
const FEW: usize = 8;

/// Marks a request or 101 response as a WebSocket upgrade again after stripping.
pub fn set_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Whether a client may not send this header (see [`RESERVED`]).
pub fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes(); // already lower case
                                         // Every reserved name starts with one of these: most headers are passed at the first byte.
    if !matches!(
        name.first(),
        Some(b'x' | b'f' | b'r' | b't' | b'c' | b'o' | b'g' | b'p' | b'w')
    ) {
        return false;
    }
    let same = |got: &[u8], want: &str| {
        got.iter()
            .zip(want.bytes())
            .all(|(&got, want)| got == want || (got == b'_' && want == b'-'))
    };
    RESERVED.iter().any(|&(want, how)| match how {
        Reserved::Name => name.len() == want.len() && same(name, want),
        Reserved::Prefix => name.len() >= want.len() && same(&name[..want.len()], want),
    })
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
    let mut text = [0u8; 48];
    if let Some(len) = format_ip(&mut text, peer) {
        if let Ok(v) = HeaderValue::from_bytes(&text[..len]) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// Writes `ip` as text into `out` (on the stack: `to_string` grows a String a few bytes at a
/// time) and says how long it is. An IPv4 address, every request's case behind most
/// front ends, is written octet by octet rather than through `fmt`.
fn format_ip(out: &mut [u8; 48], ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out[len] = b'.';
                    len += 1;
                }
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(octet).as_bytes();
                out[len..len + digits.len()].copy_from_slice(digits);
                len += digits.len();
            }
            Some(len)
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            write!(cursor, "{ip}").ok()?;
            usize::try_from(cursor.position()).ok()
        }
    }
}

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

#[cfg(test)]
mod props;

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
            "X-Forwarded-Prefix",
            "x_forwarded_uri",
            "x-forwarded-server",
            "x-forwarded-ssl",
            "x-forwarded-scheme",
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-port",
            "X-Original-URL",
            "x_rewrite_url",
            "x-original-uri",
            "X-Client-IP",
            "true_client_ip",
            "CF-Connecting-IP",
            "Remote-User",
            "remote_user",
            "X-Remote-User",
            "X-Auth-Request-User",
            "x_auth_request_email",
            "x-auth-request-access-token",
            "Remote-Email",
            "remote_groups",
            "X-Pomerium-Claim-Email",
            "X-Vouch-User",
            "Cf-Access-Authenticated-User-Email",
            "X-Goog-Authenticated-User-Email",
            "OIDC_CLAIM_email",
            "Gap-Auth",
            "X-WEBAUTH-USER",
            "Client-IP",
            "X-Cluster-Client-IP",
            "Fastly-Client-IP",
            "Proxy-Client-IP",
            "WL-Proxy-Client-IP",
            "X-Envoy-Original-Path",
            "X-Original-Host",
            "X-Host",
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
            "x-auth-request",
            "cookie",
            "referer",
            "te",
            "forwarded-for",
            "x-original",
            "origin",
            "pragma",
            "priority",
            "x-hostname",
            "remote",
            "client-hints",
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

    /// What `strip_hop_by_hop` must leave: every name that is hop-by-hop or that a
    /// `Connection` token names goes, all its values with it; every other name keeps its
    /// values in their order (the order between names is the map's business).
    fn hop_by_hop_model(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let named: Vec<String> = connection_tokens(h).map(str::to_ascii_lowercase).collect();
        by_name(h)
            .into_iter()
            .filter(|(n, _)| {
                !crate::util::HOP_BY_HOP.iter().any(|hop| hop == n.as_str()) && !named.contains(n)
            })
            .collect()
    }

    fn by_name(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0)); // stable: a name's values keep their order
        all
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]
        /// Few or many doomed names (the stack's slots and the list past them), repeated
        /// names, tokens in any case, several `Connection` headers.
        #[test]
        fn hop_by_hop_strip_matches_its_model(
            picks in proptest::collection::vec((0usize..25, 0usize..4), 0..40),
        ) {
            const NAMES: [&str; 25] = [
                "connection", "keep-alive", "proxy-connection", "te", "trailer", "proxy-authenticate",
                "transfer-encoding", "upgrade", "proxy-authorization", "http2-settings",
                "accept", "cookie", "host", "x-a", "x-b", "x-c", "x-d", "x-e", "x-f", "x-g",
                "x-h", "x-i", "x-j", "x-k", "x-l",
            ];
            const VALUES: [&str; 4] = ["close", "X-A, x-b,X-C , keep-alive", "x-d,x-e,x-f,x-g,x-h,x-i,x-j,x-k,x-l,Cookie", "1"];
            let mut h = HeaderMap::new();
            for (n, v) in picks {
                h.append(HeaderName::from_static(NAMES[n]), HeaderValue::from_static(VALUES[v]));
            }
            let want = hop_by_hop_model(&h);
            strip_hop_by_hop(&mut h);
            proptest::prop_assert_eq!(by_name(&h), want);
        }

        #[test]
        fn forwarded_for_is_the_address_as_rust_writes_it(v4: u32, v6: u128, four: bool) {
            let ip = if four {
                IpAddr::from(v4.to_be_bytes())
            } else {
                IpAddr::from(v6.to_be_bytes())
            };
            let mut text = [0u8; 48];
            let len = format_ip(&mut text, ip).unwrap();
            let want = ip.to_string();
            proptest::prop_assert_eq!(&text[..len], want.as_bytes());
        }
    }

    #[test]
    fn hop_by_hop_names_are_the_table() {
        for name in &crate::util::HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for other in [
            "host",
            "cookie",
            "connections",
            "te2",
            "x-te",
            "keep-alive-x",
            "trailers",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(other)), "{other}");
        }
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

    fn ws_request(pairs: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        *req.headers_mut() = map(pairs);
        req
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn only_a_well_formed_websocket_handshake_is_an_upgrade() {
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ];
        assert_eq!(websocket_key(&ws_request(&good)).unwrap(), KEY);
        let without = |skip: &str| -> Vec<(&str, &str)> {
            good.iter().filter(|(k, _)| *k != skip).copied().collect()
        };
        let with = |k: &'static str, v: &'static str| -> Vec<(&str, &str)> {
            let mut h = without(k);
            h.push((k, v));
            h
        };
        for bad in [
            without("connection"),
            without("upgrade"),
            without("sec-websocket-version"),
            without("sec-websocket-key"),
            with("upgrade", "h2c"),
            with("upgrade", "websocket, h2c"),
            with("upgrade", "foo"),
            with("sec-websocket-version", "8"),
            with("sec-websocket-key", "short"),
            with("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZXh4eA=="),
            with("connection", "keep-alive"),
        ] {
            assert!(websocket_key(&ws_request(&bad)).is_none(), "{bad:?}");
        }
        let mut post = ws_request(&good);
        *post.method_mut() = Method::POST;
        assert!(websocket_key(&post).is_none());
        let mut h10 = ws_request(&good);
        *h10.version_mut() = Version::HTTP_10;
        assert!(websocket_key(&h10).is_none());
    }

    #[test]
    fn a_101_must_carry_the_matching_accept() {
        let key = HeaderValue::from_static(KEY);
        // The example of RFC 6455 §1.3.
        assert_eq!(websocket_accept(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let ok = map(&[
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(websocket_accepted(&ok, &key));
        for bad in [
            map(&[("upgrade", "websocket"), ("sec-websocket-accept", "x")]),
            map(&[("upgrade", "websocket")]),
            map(&[
                ("upgrade", "h2c"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
        ] {
            assert!(!websocket_accepted(&bad, &key), "{bad:?}");
        }
    }
}
