//! Property tests of the request header filters: whatever names, spellings and
//! `Connection` lists a client sends, the upstream gets no reserved or hop-by-hop header but
//! the gateway's own, and those exactly as the gateway set them.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::{
    set_forwarded, strip_hop_by_hop, strip_reserved, Reserved, RESERVED, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PROTO, X_USER_INFO,
};

/// Cases per property; the seed is random on every run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 3_000,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// Hop-by-hop names (RFC 9110 §7.6.1 and the ones `headers.rs` adds), written out again.
pub(super) const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Names that are nobody's (some close to reserved ones): kept unless `Connection` names them.
const ORDINARY: [&str; 10] = [
    "accept",
    "user-agent",
    "x-request",
    "cookie",
    "x-secret",
    "origin",
    "x-use",
    "remote",
    "x-forwarded",
    "forwarded-for",
];

/// Whether a client may not send `name`, read from [`RESERVED`] by this file's own rule:
/// lower case, `_` as `-`, then the whole name or its start.
fn reserved(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    RESERVED.iter().any(|&(want, how)| match how {
        Reserved::Name => name == want,
        Reserved::Prefix => name.starts_with(want),
    })
}

/// `name` in some spelling: each letter's case and each `-` (as `_`) chosen by a bit.
fn spelled(name: &str, bits: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| match (c, (bits >> (i % 64)) & 1) {
            ('-', 1) => '_',
            (c, 1) => c.to_ascii_uppercase(),
            (c, _) => c,
        })
        .collect()
}

/// A header name: reserved (a prefix gets a tail), ours, hop-by-hop or ordinary, spelled
/// in any case and with `_` for `-`.
fn name() -> impl Strategy<Value = String> {
    let tails = prop::collection::vec(prop::sample::select(vec!['a', 'z', '-', '_']), 0..4);
    let reserved = (0..RESERVED.len(), tails).prop_map(|(i, t)| {
        let (n, how) = RESERVED[i];
        match how {
            Reserved::Name => n.to_owned(),
            Reserved::Prefix => format!("{n}{}", t.into_iter().collect::<String>()),
        }
    });
    let ours = prop::sample::select(vec![
        "x-user-info",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ])
    .prop_map(str::to_owned);
    let other = prop::sample::select(
        HOP_BY_HOP
            .iter()
            .chain(&ORDINARY)
            .copied()
            .collect::<Vec<_>>(),
    )
    .prop_map(str::to_owned);
    (
        prop_oneof![3 => reserved, 2 => ours, 3 => other],
        any::<u64>(),
    )
        .prop_map(|(n, bits)| spelled(&n, bits))
}

/// A client's header map: some names with values, and some `Connection` headers listing
/// names (in their own spellings), `close` or empty items.
fn request_headers() -> impl Strategy<Value = HeaderMap> {
    let token = prop_oneof![4 => name(), 1 => Just(String::new()), 1 => Just("close".to_owned())];
    let connection = prop::collection::vec(token, 0..5).prop_map(|t| t.join(" ,"));
    let value = prop::collection::vec(0x20u8..0x7f, 0..12);
    (
        prop::collection::vec((name(), value), 0..12),
        prop::collection::vec(connection, 0..3),
    )
        .prop_map(|(pairs, connections)| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_bytes(&v),
                ) {
                    h.append(n, v);
                }
            }
            for c in connections {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(http::header::CONNECTION, v);
                }
            }
            h
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn only_our_reserved_headers_reach_the_upstream(
        client in request_headers(),
        host in prop::option::of(prop::sample::select(vec!["app.example", "a.example:8443"])),
        peer in any::<IpAddr>(),
    ) {
        let host = host.map(HeaderValue::from_static);
        let named: Vec<String> = client
            .get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        let mut h = client.clone();
        strip_hop_by_hop(&mut h);
        strip_reserved(&mut h);
        set_forwarded(&mut h, peer, host.as_ref());
        let info = HeaderValue::from_static("{\"sub\":\"github:1\"}");
        h.insert(X_USER_INFO.clone(), info.clone());

        let ours = [&X_USER_INFO, &X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST];
        for name in h.keys() {
            let mine = ours.contains(&name);
            prop_assert!(mine || !reserved(name.as_str()), "{} passed", name);
            prop_assert!(mine || !HOP_BY_HOP.contains(&name.as_str()), "{} passed", name);
            prop_assert!(mine || !named.iter().any(|n| n == name.as_str()), "{} passed", name);
        }
        let all = |n: &HeaderName| h.get_all(n).iter().cloned().collect::<Vec<_>>();
        let peer = HeaderValue::from_str(&peer.to_string()).unwrap();
        prop_assert_eq!(all(&X_USER_INFO), vec![info]);
        prop_assert_eq!(all(&X_FORWARDED_FOR), vec![peer]);
        prop_assert_eq!(all(&X_FORWARDED_PROTO), vec![HeaderValue::from_static("https")]);
        prop_assert_eq!(all(&X_FORWARDED_HOST), host.into_iter().collect::<Vec<_>>());
        // Not "drop everything": what nobody reserved or named goes on as the client sent it.
        for name in client.keys() {
            let kept = !reserved(name.as_str())
                && !HOP_BY_HOP.contains(&name.as_str())
                && !named.iter().any(|n| n == name.as_str());
            if kept {
                prop_assert!(client.get_all(name).iter().eq(h.get_all(name).iter()), "{}", name);
            }
        }
    }
}
