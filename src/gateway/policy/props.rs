//! Property tests of `safe_next`: whatever a login link carries, the browser is sent to a
//! path of the gateway's own origin, outside its own endpoints.

use proptest::prelude::*;
use url::Url;

use super::{safe_next, MAX_NEXT};
use crate::path::NormalPath;

/// Cases per property; the seed is random on every run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 6_000,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// Pieces of ordinary paths, and now and then of open redirects (SPEC §6 class 1).
fn piece() -> impl Strategy<Value = String> {
    let benign = prop::sample::select(vec![
        "/",
        "/",
        "/",
        "a",
        "e.com",
        "@",
        ":",
        "%2F",
        "%2f",
        "%5C",
        "%09",
        "?",
        "#",
        "=",
        "&",
        "?next=//e.com",
        ".",
        "..",
        "%2e",
        "_auth",
        "_AUTH",
        "%5Fauth",
        "x=1",
        "https:",
        "~",
    ]);
    let hostile = prop::sample::select(vec![
        "//", "\\", "\t", "\r", "\n", " ", "\u{0}", "\u{7f}", "\"", "é", "\u{3002}", "\u{ff0f}",
        "\u{2215}", "\u{85}",
    ]);
    prop_oneof![
        30 => benign.prop_map(str::to_owned),
        1 => hostile.prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
        1 => (2000usize..2100).prop_map(|n| "a".repeat(n)),
    ]
}

/// How a `next` starts: mostly a path, else what open redirects start with.
fn start() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/",
        "/",
        "/",
        "/",
        "/",
        "/",
        "/",
        "/_auth",
        "//",
        "/\\",
        "\\/",
        "/\t/",
        "/%09/",
        "%2F%2F",
        "https:",
        "https://",
        "javascript:",
        "data:",
        "",
        " /",
        "\u{0}/",
        "\u{ff0f}",
    ])
}

fn next() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (start(), prop::collection::vec(piece(), 0..8))
            .prop_map(|(s, p)| s.to_owned() + &p.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn next_is_a_same_origin_path_or_root(next in next()) {
        let out = safe_next(&next, "/_auth");
        prop_assert!(out == "/" || out == next, "{:?} became {:?}", next, out);
        let bytes = out.as_bytes();
        prop_assert!(bytes.len() <= MAX_NEXT, "{} bytes kept", bytes.len());
        prop_assert_eq!(bytes.first(), Some(&b'/'));
        prop_assert!(bytes.get(1) != Some(&b'/'), "{:?} kept", out);
        prop_assert!(!out.contains('\\') && !out.chars().any(char::is_control), "{:?}", out);
        // What a browser makes of it (the URL standard: `\` is `/`, tabs and newlines
        // vanish): a path on this origin, not a scheme or another host.
        let base = Url::parse("https://app.example.com/login").unwrap();
        let to = base.join(&out);
        prop_assert!(to.is_ok(), "{:?} does not resolve", out);
        let to = to.unwrap();
        prop_assert_eq!(to.origin(), base.origin(), "{:?} leaves the origin", out);
        // Not the gateway's own endpoints (no loops), as the browser resolves the target and
        // as the gateway then normalises it (`/%5Fauth` is `/_auth` to it).
        let own = |p: &str| p == "/_auth" || p.starts_with("/_auth/");
        prop_assert!(!own(to.path()), "{:?} loops", out);
        let served = NormalPath::parse(to.path());
        prop_assert!(!served.is_ok_and(|p| own(p.as_str())), "{:?} loops", out);
    }
}
