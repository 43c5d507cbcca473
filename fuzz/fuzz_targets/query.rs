//! The query-string parser (`next`, `state`, `assertion`, `provider` all come through it):
//! it reads what a plain `application/x-www-form-urlencoded` reading reads (WHATWG URL §5.1),
//! first value wins, and what it reads survives being written out and read back.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use oauthgate::fuzzing::Query;

/// The urlencoded parser written again: split on `&`, then at the first `=`, `+` is a space,
/// `%XX` a byte when both are hex digits, invalid UTF-8 replaced.
fn model(text: &str) -> Vec<(String, String)> {
    let decode =
        |s: &str| String::from_utf8_lossy(&common::percent_decode(s.as_bytes(), true)).into_owned();
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let q = Query::parse(text);
    let pairs = model(text);
    let written = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let again = Query::parse(&written);
    for key in
        pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(["next", "state", "assertion", "provider", ""])
    {
        let want = first(&pairs, key);
        assert_eq!(q.get(key), want, "{text:?}: {key:?}");
        assert_eq!(again.get(key), want, "{written:?}: {key:?}");
        match q.require(key) {
            Ok(v) => assert!(!v.is_empty() && Some(v) == want),
            Err(_) => assert!(want.is_none_or(str::is_empty)),
        }
    }
});
