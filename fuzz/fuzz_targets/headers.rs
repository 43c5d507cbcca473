//! Request header hygiene (SPEC §6 classes 3 and 6), in the order the gateway applies it
//! before forwarding: a header it keeps is never reserved in any spelling, never hop-by-hop
//! nor named in `Connection`, never one of its cookies; its own identity and forwarding
//! headers are there exactly once whatever `Connection` lists; everything else passes as sent.
#![no_main]

mod common;

use http::header::{self, HeaderValue};
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{
    is_reserved, set_forwarded, strip_hop_by_hop, strip_own_cookies, strip_reserved, Reserved,
    COOKIE_PREFIX, RESERVED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_USER_INFO,
};

const HOP_BY_HOP: [&str; 10] = [
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

/// Names SPEC §6 lists by name (classes 3 and 6), in the spelling the rule compares.
const SPEC_NAMES: [&str; 16] = [
    "x-user-info",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "remote-user",
    "forwarded",
];

/// The reserved rule written again from the table: lower case, `_` read as `-`.
fn reserved_model(name: &str) -> bool {
    let name = common::spelled(name);
    SPEC_NAMES.contains(&name.as_str())
        || name.starts_with("x-auth-request-")
        || RESERVED.iter().any(|&(want, how)| match how {
            Reserved::Name => name == want,
            Reserved::Prefix => name.starts_with(want),
        })
}

fuzz_target!(|data: &[u8]| {
    let sent = common::headers(data);
    let named: Vec<String> = sent
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .map(str::to_ascii_lowercase)
        .collect();
    for name in sent.keys() {
        assert_eq!(is_reserved(name), reserved_model(name.as_str()), "{name}");
    }

    let ours = HeaderValue::from_static(r#"{"provider":"github","sub":"github:1"}"#);
    let mut h = sent.clone();
    strip_hop_by_hop(&mut h);
    strip_reserved(&mut h);
    strip_own_cookies(&mut h);
    set_forwarded(&mut h, [192, 0, 2, 7].into(), sent.get(header::HOST));
    h.insert(X_USER_INFO.clone(), ours.clone());

    let own = [
        &X_USER_INFO,
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
    ];
    for name in h.keys() {
        if own.contains(&name) {
            continue;
        }
        let n = name.as_str();
        assert!(
            !reserved_model(n) && !is_reserved(name),
            "kept reserved {n}"
        );
        assert!(!HOP_BY_HOP.contains(&n), "kept hop-by-hop {n}");
        assert!(
            !named.iter().any(|t| t == n),
            "kept {n}, named in Connection"
        );
    }
    let one = |name, want: &str| {
        let all: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(all, [want], "{name:?} in {h:?}");
    };
    one(&X_USER_INFO, ours.to_str().unwrap_or_default());
    one(&X_FORWARDED_FOR, "192.0.2.7");
    one(&X_FORWARDED_PROTO, "https");
    match sent.get(header::HOST) {
        Some(host) => assert_eq!(
            h.get_all(&X_FORWARDED_HOST).iter().collect::<Vec<_>>(),
            [host]
        ),
        None => assert!(!h.contains_key(&X_FORWARDED_HOST)),
    }
    // None of the gateway's cookies goes upstream; nothing else is lost on the way.
    for v in h.get_all(header::COOKIE) {
        for pair in v.as_bytes().split(|&b| b == b';') {
            assert!(
                !pair.trim_ascii().starts_with(COOKIE_PREFIX.as_bytes()),
                "forwarded {:?}",
                String::from_utf8_lossy(pair)
            );
        }
    }
    for (name, value) in &sent {
        let n = name.as_str();
        let dropped = reserved_model(n)
            || HOP_BY_HOP.contains(&n)
            || named.iter().any(|t| t == n)
            || own.contains(&name)
            || name == header::COOKIE;
        if !dropped {
            assert!(
                h.get_all(name).iter().any(|v| v == value),
                "lost {n}: {value:?}"
            );
        }
    }
});
