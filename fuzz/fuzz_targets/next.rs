//! `next` after login (SPEC §6 class 1): whatever comes in, what the gateway redirects to
//! is a path on its own origin, as a browser (the WHATWG URL parser) resolves it, and is
//! never one of the gateway's own endpoints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::{safe_next, NormalPath, MAX_NEXT};
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(next) = std::str::from_utf8(data) else {
        return;
    };
    let got = safe_next(next, "/_auth");
    assert!(got == "/" || got == next, "{next:?} -> {got:?}");
    assert!(got.len() <= MAX_NEXT);
    assert!(
        got.starts_with('/') && !got.starts_with("//") && !got.starts_with("/\\"),
        "{next:?}"
    );
    assert!(got.bytes().all(|b| (0x21..0x7f).contains(&b)), "{next:?}");
    assert!(http::HeaderValue::from_str(&got).is_ok(), "{next:?}");
    let base = Url::parse("https://app.example.com/x/y").expect("base");
    let joined = base.join(&got).expect("a kept next is a relative URL");
    assert_eq!(joined.origin(), base.origin(), "{next:?} -> {joined}");
    // Where the browser lands, as the gateway then reads it: not under `/_auth`.
    for path in [joined.path(), got.split(['?', '#']).next().unwrap_or("")] {
        if let Ok(p) = NormalPath::parse(path) {
            assert_ne!(
                p.segments().next(),
                Some("_auth"),
                "{next:?} lands on the gateway's own {}",
                p.as_str()
            );
        }
    }
});
