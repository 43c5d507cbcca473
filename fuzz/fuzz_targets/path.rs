//! Path normalisation and route choice (SPEC §6 classes 2 and 6): whatever normalises is
//! normal, is forwarded as exactly the path the route table saw, and carries nothing an
//! upstream could split or resolve differently.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{route, NormalPath};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = NormalPath::parse(raw) else {
        return;
    };
    let (decoded, encoded) = (p.as_str(), p.encoded());
    assert!(decoded.starts_with('/'), "{raw:?} -> {decoded:?}");
    // No empty segment but a final one, no dot segment, none that reads as one after `;`.
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            assert_eq!(i, segments.len() - 1, "{raw:?} -> {decoded:?}");
            continue;
        }
        let head = segment.split(';').next().unwrap_or("");
        assert!(
            !matches!(head, "" | "." | ".."),
            "{raw:?} -> {decoded:?}: segment {segment:?}"
        );
    }
    assert!(
        !decoded.contains(['\\', '\0']) && !decoded.chars().any(char::is_control),
        "{raw:?} -> {decoded:?}"
    );
    // The request line sent upstream: visible ASCII, no encoded separator or NUL.
    assert!(
        encoded.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "{raw:?} -> {encoded:?}"
    );
    let upper = encoded.to_ascii_uppercase();
    for bad in ["%2F", "%5C", "%00", "?", "#", "\\"] {
        assert!(!upper.contains(bad), "{raw:?} -> {encoded:?} has {bad}");
    }
    // The upstream decodes exactly the path the route table saw.
    let bytes: Vec<u8> = common::percent_decode(encoded.as_bytes(), false);
    assert_eq!(bytes, decoded.as_bytes(), "{raw:?} -> {encoded:?}");
    let line = http::uri::PathAndQuery::try_from(encoded).expect("forwardable");
    assert_eq!(line.path(), encoded, "{raw:?}");
    assert_eq!(line.query(), None, "{raw:?}");
    // Idempotence: normalising what is forwarded changes nothing, and routes the same.
    let again = NormalPath::parse(encoded).expect("a forwarded path normalises");
    assert_eq!(again, p, "{raw:?} -> {encoded:?}");
    assert_eq!(route(&again), route(&p), "{raw:?}");
});
