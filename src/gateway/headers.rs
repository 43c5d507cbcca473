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

use crate::util::{connection_tokens, is_hop_by_hop, tokens};

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
pub const RESERVED: [(&str, Reserved); 30] = [
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
    // The request's id: the gateway's own, or a trusted proxy's (read before this strip).
    // A spelling with `_` from a client would otherwise reach a backend that reads `_` as `-`
    // (CGI, WSGI) beside ours.
    ("x-request-id", Reserved::Name),
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
/// present: only a header that is there gets looked up to be removed. `Connection` is read
/// once, before that pass (reading it again for every name was a third of a proxied
/// response's header work). A message has one or two such headers and names (a response's
/// `Connection: keep-alive`), gathered on the stack; only one with more than [`FEW`]
/// allocates. The two usual messages skip even that (`usual_hop_by_hop`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    match usual_hop_by_hop(headers) {
        Some(Usual::Nothing) => return,
        Some(Usual::Connection) => {
            headers.remove(header::CONNECTION);
            return;
        }
        None => {}
    }
    let mut few: [Option<HeaderName>; FEW] = Default::default();
    let mut more: Vec<HeaderName> = Vec::new();
    {
        // `keep-alive` is left out of the list: it names a hop-by-hop header anyway.
        let mut listed: [&str; FEW] = [""; FEW];
        let mut listed_more: Vec<&str> = Vec::new();
        let mut count = 0;
        let connection = headers.get_all(header::CONNECTION);
        for token in tokens(&connection).filter(|t| !t.eq_ignore_ascii_case("keep-alive")) {
            match listed.get_mut(count) {
                Some(slot) => *slot = token,
                None => listed_more.push(token),
            }
            count += 1;
        }
        let listed = &listed[..count.min(FEW)];
        let named = |name: &str| {
            listed
                .iter()
                .chain(&listed_more)
                .any(|t| t.eq_ignore_ascii_case(name))
        };
        let doomed = headers
            .keys()
            .filter(|name| is_hop_by_hop(name.as_str()) || named(name.as_str()));
        for (at, name) in doomed.enumerate() {
            match few.get_mut(at) {
                Some(slot) => *slot = Some(name.clone()),
                None => more.push(name.clone()),
            }
        }
    }
    for name in few.into_iter().flatten().chain(more) {
        headers.remove(name);
    }
}

/// The two messages nearly every request and response are, which [`strip_hop_by_hop`]
/// answers without gathering names.
enum Usual {
    /// No hop-by-hop header at all (a benchmark's or an API client's request).
    Nothing,
    /// No hop-by-hop header but `Connection`, naming at most `keep-alive` (every response of
    /// a keep-alive upstream): `Keep-Alive` is not there, so `Connection` alone goes.
    Connection,
}

/// Which usual message `headers` is, from one pass over the names; `None`: any other.
fn usual_hop_by_hop(headers: &HeaderMap) -> Option<Usual> {
    let mut connection = false;
    for name in headers.keys() {
        if *name == header::CONNECTION {
            connection = true;
        } else if is_hop_by_hop(name.as_str()) {
            return None;
        }
    }
    if !connection {
        return Some(Usual::Nothing);
    }
    // Read as bytes, not through `tokens` (which checks each token is UTF-8: 150
    // instructions a response more). Any token but `keep-alive` or an empty one, UTF-8 or
    // not, takes the general path; the tests hold the two paths to the same model.
    let only_keep_alive = headers
        .get_all(header::CONNECTION)
        .iter()
        .all(|v| crate::util::only_keep_alive(v.as_bytes()));
    only_keep_alive.then_some(Usual::Connection)
}

/// How many hop-by-hop names [`strip_hop_by_hop`] gathers without allocating.
const FEW: usize = 8;

/// Marks a request or 101 response as a WebSocket upgrade again after stripping.
pub fn set_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// The entries of [`RESERVED`] by their first byte, a bit each: a name is compared with the
/// few that could match it (none for most), not with all of them.
const BY_FIRST_BYTE: [u32; 256] = {
    assert!(RESERVED.len() <= 32, "one bit per entry");
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < RESERVED.len() {
        table[RESERVED[i].0.as_bytes()[0] as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// Whether a client may not send this header (see [`RESERVED`]).
pub fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes(); // already lower case
    let same = |got: &[u8], want: &str| {
        got.iter()
            .zip(want.bytes())
            .all(|(&got, want)| got == want || (got == b'_' && want == b'-'))
    };
    // No entry starts with `-`, so a name's first byte must be an entry's own.
    let Some(&first) = name.first() else {
        return false;
    };
    let mut entries = BY_FIRST_BYTE[first as usize];
    while entries != 0 {
        let (want, how) = RESERVED[entries.trailing_zeros() as usize];
        entries &= entries - 1;
        let hit = match how {
            Reserved::Name => name.len() == want.len() && same(name, want),
            Reserved::Prefix => name.len() >= want.len() && same(&name[..want.len()], want),
        };
        if hit {
            return true;
        }
    }
    false
}

/// Removes every reserved header a client sent.
pub fn strip_reserved(headers: &mut HeaderMap) {
    // Nearly every request has none: one look, no list.
    if !headers.keys().any(is_reserved) {
        return;
    }
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
pub(super) fn format_ip(out: &mut [u8; 48], ip: IpAddr) -> Option<usize> {
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
mod tests;
