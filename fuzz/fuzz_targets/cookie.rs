//! Sealed cookies (SPEC §4, §6 class 4): a sealed value opens to itself, under its own name and
//! key only; one changed byte, or any cookie the input makes up, never opens; a login in
//! flight opens only for the state it was started with.
#![no_main]

mod common;

use http::header::{self, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{CookieCodec, Trip, TRIPS};
use std::sync::OnceLock;
use std::time::Duration;

const NAMES: [&str; 3] = [
    "__Host-oauthgate-session",
    "__Host-oauthgate-login-abc",
    "a",
];

fn codec() -> &'static CookieCodec {
    static CODEC: OnceLock<CookieCodec> = OnceLock::new();
    CODEC.get_or_init(|| CookieCodec::derive(&[9; 32], "fuzz"))
}

/// A request carrying the cookies that `set` (Set-Cookie values) would store, after `before`.
fn request(before: &str, set: &[HeaderValue]) -> Option<HeaderMap> {
    let mut pairs = vec![before.to_owned()];
    for v in set {
        pairs.push(v.to_str().ok()?.split(';').next()?.to_owned());
    }
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_str(&pairs.join("; ")).ok()?,
    );
    Some(h)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let codec = codec();
    match mode % 3 {
        0 => {
            // Round trip, then one byte of the sealed value changed.
            // Three bytes choose the name, the byte to change and its new value.
            let [which, at, to, ..] = *rest else {
                return;
            };
            let value = String::from_utf8_lossy(&rest[3..]);
            let name = NAMES[usize::from(which) % NAMES.len()];
            let set = codec.seal(name, &value, Duration::from_secs(60));
            let h =
                request("other=1", std::slice::from_ref(&set)).expect("sealed cookies are ASCII");
            assert_eq!(codec.open(&h, name).as_deref(), Some(&*value));
            assert_eq!(CookieCodec::derive(&[9; 32], "other").open(&h, name), None);
            let pair = set.to_str().unwrap_or("").split(';').next().unwrap_or("");
            let sealed = &pair[name.len() + 1..];
            // The name is authenticated: the same value under another name does not open.
            for other in NAMES.iter().chain(&["zz"]).filter(|n| **n != name) {
                let moved = request(&format!("{other}={sealed}"), &[]).expect("ascii");
                assert_eq!(codec.open(&moved, other), None, "{name} -> {other}");
            }
            let mut bytes = format!("{name}={sealed}").into_bytes();
            let at = name.len() + 1 + usize::from(at) * 4 % sealed.len();
            if bytes[at] != to {
                bytes[at] = to;
                if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                    let mut changed = HeaderMap::new();
                    changed.insert(header::COOKIE, v);
                    assert_eq!(
                        codec.open(&changed, name),
                        None,
                        "{pair} -> {:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
        1 => {
            // Cookies made up by the input: none opens, under any of our names.
            let mut h = common::headers(rest);
            if let Ok(v) = HeaderValue::from_bytes(rest) {
                h.append(header::COOKIE, v);
            }
            for name in NAMES {
                assert_eq!(codec.open(&h, name), None, "{h:?}");
            }
            let state = "0123456789abcdefghij";
            assert_eq!(TRIPS.open(codec, &h, state), None);
        }
        _ => {
            // A login in flight: opens for its state only.
            let text = String::from_utf8_lossy(rest);
            let (state, next) = text.split_once('\n').unwrap_or((&text, "/"));
            let state = format!("{state:0<16}");
            let trip = Trip {
                return_to: next.to_owned(),
            };
            let Ok(set) = TRIPS.seal(codec, &HeaderMap::new(), &state, &trip) else {
                return;
            };
            let h = request("other=1", &set).expect("sealed cookies are ASCII");
            assert_eq!(TRIPS.open(codec, &h, &state), Some(trip));
            for other in [
                format!("{state}x"),
                state.chars().skip(1).collect::<String>(),
            ] {
                if other != state {
                    assert_eq!(
                        TRIPS.open(codec, &h, &other),
                        None,
                        "{state:?} vs {other:?}"
                    );
                }
            }
        }
    }
});
