//! `/_auth/check`'s original URI (SPEC §6 class 6, forward-auth): one header, once; the path it
//! judges is the path the gateway would route had the same request target reached it
//! directly (origin-form or absolute-form, query and fragment not part of it).
#![no_main]

mod common;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{check_uri, check_uri_path, route, NormalPath};

/// The path of a request target read by hand: origin-form up to `?`/`#`; absolute-form
/// `scheme://authority` then the same (`/` when empty). `None` for anything else.
fn model_path(target: &str) -> Option<&str> {
    fn path_part(s: &str) -> &str {
        s.split(['?', '#']).next().unwrap_or("")
    }
    if target.starts_with('/') {
        return Some(path_part(target));
    }
    // Absolute-form with any scheme (RFC 3986 §3.1), as `http::Uri` reads it.
    let (scheme, rest) = target.split_once("://")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match path_part(&rest[at..]) {
        "" => Some("/"),
        path => Some(path),
    }
}

fuzz_target!(|data: &[u8]| {
    // Each line one original URI header: `X-Original-URI` (nginx) or, after a `>`,
    // `X-Forwarded-Uri` (Traefik, Caddy).
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = match line.strip_prefix(b">") {
            Some(v) => ("x-forwarded-uri", v),
            None => ("x-original-uri", line),
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(HeaderName::from_static(name), v);
        }
    }
    let count =
        h.get_all("x-original-uri").iter().count() + h.get_all("x-forwarded-uri").iter().count();
    let read = check_uri(&h);
    match count {
        0 => assert!(matches!(read, Ok(None))),
        1 => assert!(matches!(read, Ok(Some(_)))),
        _ => assert!(read.is_err(), "{count} original URIs accepted"),
    }
    let Some(value) = h.values().next() else {
        return;
    };
    let judged = check_uri_path(value);
    // What hyper hands the gateway for the same request target.
    let direct = http::Uri::try_from(value.as_bytes())
        .ok()
        .filter(|u| !u.path().is_empty() && u.path() != "*")
        .and_then(|u| NormalPath::parse(u.path()).ok());
    assert_eq!(judged, direct, "{value:?}");
    if let Some(p) = &judged {
        // Bytes after a `#` need not be UTF-8; they are no part of the path.
        let target = String::from_utf8_lossy(value.as_bytes());
        // `http::Uri` also takes odd forms (`://x//y`); those only have to agree with hyper.
        if let Some(model) = model_path(&target) {
            let by_hand = NormalPath::parse(model).expect("the same path normalises by hand");
            assert_eq!(&by_hand, p, "{target:?}");
            assert_eq!(route(&by_hand), route(p));
        }
    }
});
