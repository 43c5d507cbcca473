//! Property tests of the normaliser against a reference model written from RFC 3986 §5.2.4
//! and the rules of `path.rs`'s header, independently of its code: same accept/refuse
//! decision, same decoded and forwarded paths, and normal output stays normal.

use proptest::prelude::*;

use super::{segments, starts_with, under, NormalPath};

/// Cases per property: enough to meet every rule many times, small enough for a debug
/// `cargo test` in about a second. The seed is random on every run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 6_000,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// What the model says a raw path becomes: `(decoded, forwarded)`, or `None` for a 400.
fn model(raw: &str) -> Option<(String, String)> {
    let rest = raw.strip_prefix('/')?;
    // Percent-decoding, with a twin copy in which each `;` that arrived escaped is a
    // `\u{1}` instead, so that the forwarded form can escape it again.
    let (mut bytes, mut twin) = (vec![b'/'], vec![b'/']);
    let mut it = rest.bytes();
    while let Some(b) = it.next() {
        match b {
            b'%' => {
                let hi = (it.next()? as char).to_digit(16)?;
                let lo = (it.next()? as char).to_digit(16)?;
                let byte = (hi * 16 + lo) as u8;
                if matches!(byte, b'/' | b'\\' | 0) {
                    return None;
                }
                bytes.push(byte);
                twin.push(if byte == b';' { 1 } else { byte });
            }
            b'\\' => return None,
            b => {
                bytes.push(b);
                twin.push(b);
            }
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    if text.chars().any(char::is_control) {
        return None;
    }
    // `//` then `..`: merging first and resolving first disagree (the project refuses it),
    // or would but for a later `..` (`/a//../..`: refused all the same, see below).
    if merge_slashes(&remove_dot_segments(&text)) != remove_dot_segments(&merge_slashes(&text))
        || removes_empty_over_named(&text)
    {
        return None;
    }
    // A segment that servlet containers read as empty or dot once `;params` go.
    if text
        .split('/')
        .any(|s| s.contains(';') && matches!(s.split(';').next(), Some("" | "." | "..")))
    {
        return None;
    }
    let twin = String::from_utf8(twin).ok()?;
    let decoded = remove_dot_segments(&merge_slashes(&text));
    let twin = remove_dot_segments(&merge_slashes(&twin));
    // Same cuts in both: only `/` and `.` steer the algorithm, and `\u{1}` stands for `;`.
    assert_eq!(decoded.len(), twin.len(), "{raw:?}");
    let mut forwarded = String::new();
    for (c, t) in decoded.chars().zip(twin.chars()) {
        if t == '\u{1}' {
            forwarded.push_str("%3B");
        } else if c == '/' || is_pchar(c) {
            forwarded.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                forwarded.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Some((decoded, forwarded))
}

/// Whether a `..` removes, as RFC 3986 resolves, an empty segment with a named one before it:
/// merging slashes first would remove that named segment instead. The two readings may meet
/// again after more `..` (`/a//../..` is `/` both ways), but path.rs's rule is about the step,
/// not the end: a found case (`/%20//../..`) where the model only compared ends.
fn removes_empty_over_named(path: &str) -> bool {
    // Each segment RFC 3986 keeps: named (true) or empty (false).
    let mut kept: Vec<bool> = Vec::new();
    for segment in path[1..].split('/') {
        match segment {
            "." => {}
            ".." => {
                if kept.pop() == Some(false) && kept.contains(&true) {
                    return true;
                }
            }
            "" => kept.push(false),
            _ => kept.push(true),
        }
    }
    false
}

/// `//` is one `/` (the project's rule, applied before dot segments: `/a//../b` is `/b`).
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 §5.2.4, step by step on an input and an output buffer.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix("../").or(input.strip_prefix("./")) {
            input = r.to_owned(); // A
        } else if input.starts_with("/./") || input == "/." {
            input.replace_range(..2, ""); // B: "/./x" -> "/x", "/." -> "/"
            if input.is_empty() {
                input.push('/');
            }
        } else if input.starts_with("/../") || input == "/.." {
            input.replace_range(..3, ""); // C
            if input.is_empty() {
                input.push('/');
            }
            let cut = output.rfind('/').unwrap_or(0);
            output.truncate(cut);
        } else if input == "." || input == ".." {
            input.clear(); // D
        } else {
            // E: the first segment, with its leading `/`, up to the next `/`.
            let end = input[1..].find('/').map_or(input.len(), |i| i + 1);
            output.push_str(&input[..end]);
            input.replace_range(..end, "");
        }
    }
    if output.is_empty() {
        output.push('/');
    }
    output
}

/// RFC 3986 §3.3 `pchar` without `pct-encoded`: what may stay unescaped in a segment.
fn is_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// Pieces that meet the normaliser's rules: dots and `;` in every spelling, characters that
/// forwarding escapes, non-ASCII raw and encoded; now and then something it refuses (encoded
/// separators, bad escapes, controls), any byte as an escape, or any character.
fn piece() -> impl Strategy<Value = String> {
    let benign = prop::sample::select(vec![
        "/",
        "/",
        "/",
        "/",
        "//",
        ".",
        "..",
        ".",
        "..",
        ";",
        ";",
        "a",
        "b",
        "A",
        "x=1",
        "%2e",
        "%2E",
        "%2e%2e",
        "%3b",
        "%3B",
        "%20",
        " ",
        "%25",
        "%3F",
        "%23",
        "?",
        "#",
        "é",
        "%C3%A9",
        "%c3%a9",
        "ı",
        "ſ",
        "\u{212a}",
        "~",
        "%7E",
        "[",
        "]",
        "{",
        "|",
        "^",
        "`",
        "\"",
        "<",
        "@",
        ":",
        "'",
        "%e2%80%ae",
    ]);
    let hostile = prop::sample::select(vec![
        "%2f", "%2F", "%5c", "%5C", "%00", "\\", "%", "%4", "%zz", "%g0", "%09", "\t", "\u{7f}",
        "%7F", "%0d%0a", "\u{85}", "%C2%85", "%C3", "%FF", "%E2%80",
    ]);
    prop_oneof![
        40 => benign.prop_map(str::to_owned),
        1 => hostile.prop_map(str::to_owned),
        1 => any::<u8>().prop_map(|b| format!("%{b:02x}")),
        1 => any::<char>().prop_map(String::from),
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    let body = || prop::collection::vec(piece(), 0..14).prop_map(|p| p.concat());
    prop_oneof![
        12 => body().prop_map(|b| format!("/{b}")),
        1 => body(),
    ]
}

fn parse(raw: &str) -> Option<(String, String)> {
    NormalPath::parse(raw)
        .ok()
        .map(|p| (p.as_str().to_owned(), p.encoded().to_owned()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// `under` read as bytes is `under` by segment iterators, on any text at all.
    #[test]
    fn under_by_bytes_is_under_by_segments(
        path in "[/a;b.%é]{0,12}",
        prefix in "[/a;b.%é]{0,8}",
    ) {
        prop_assert_eq!(under(&path, &prefix), starts_with(segments(&path), segments(&prefix)));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_normaliser_agrees_with_the_model(raw in raw_path()) {
        prop_assert_eq!(parse(&raw), model(&raw), "raw {:?}", raw);
    }

    #[test]
    fn normal_paths_stay_normal(raw in raw_path()) {
        let Ok(p) = NormalPath::parse(&raw) else { return Ok(()) };
        // The forwarded form reads back as exactly this path (what the upstream decodes).
        let again = NormalPath::parse(p.encoded());
        prop_assert_eq!(again.as_ref().ok(), Some(&p), "raw {:?}", raw);
        // Normalising the decoded path changes nothing (when it has no `%` to decode again).
        if !p.as_str().contains('%') {
            prop_assert_eq!(parse(p.as_str()).map(|d| d.0), Some(p.as_str().to_owned()));
        }
        let segments: Vec<&str> = p.as_str()[1..].split('/').collect();
        for (i, s) in segments.iter().enumerate() {
            let bare = s.split(';').next().unwrap_or("");
            let last = i + 1 == segments.len();
            prop_assert!(
                !matches!(bare, "." | "..") && (!bare.is_empty() || (last && s.is_empty())),
                "segment {:?} of {:?} from {:?}", s, p.as_str(), raw
            );
        }
        let upper = p.encoded().to_ascii_uppercase();
        for bad in ["%2F", "%5C", "%00", "\\"] {
            prop_assert!(!upper.contains(bad), "{:?} forwarded as {:?}", raw, p.encoded());
        }
    }
}

#[test]
fn the_model_reads_the_examples_as_the_tests_do() {
    for (raw, want) in [
        ("/a/b/../c", Some("/a/c")),
        ("/a//../b", None),
        ("//../b", Some("/b")),
        ("/../../etc", Some("/etc")),
        ("/a/.", Some("/a/")),
        ("/%2e%2e/x", Some("/x")),
        ("/x/..;/y", None),
        ("/a%2Fb", None),
        ("a", None),
    ] {
        assert_eq!(model(raw).map(|m| m.0), want.map(str::to_owned), "{raw}");
    }
    assert_eq!(model("/a%3Bb;c/%20").unwrap().1, "/a%3Bb;c/%20");
}
