//! The gateway's own cookies never reach an upstream: they are cut from the `Cookie` header.

use std::sync::LazyLock;

use http::header::{self, HeaderMap, HeaderValue};
use memchr::memmem;

use super::COOKIE_PREFIX;

/// What goes upstream of a request's `Cookie` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnCookies {
    /// The request carries none of the gateway's cookies: its headers go as they came.
    Absent,
    /// The pairs left once the gateway's cookies are cut, in one header (`None`: nothing was
    /// left, and no `Cookie` goes).
    Cut(Option<HeaderValue>),
}

/// The gateway's own cookies cut from the request's `Cookie` headers (see [`OwnCookies`]).
/// The map is only read: the forwarded head leaves its `Cookie` out and writes this one
/// (`gateway::added`), so no map removal is paid on the hot path.
///
/// Works on bytes: a `Cookie` header may carry non-UTF-8 bytes (any site on the same host can
/// set such a cookie), and skipping such a header as unreadable would forward our session
/// cookie along with it.
pub fn own_cookies_cut(headers: &HeaderMap) -> OwnCookies {
    let prefix = COOKIE_PREFIX.as_bytes();
    // A plain substring search first (SIMD, the searcher built once): most requests to most
    // routes carry none of ours.
    static OURS: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(COOKIE_PREFIX));
    // One lookup, read twice.
    let cookies = headers.get_all(header::COOKIE);
    if !cookies.iter().any(|v| OURS.find(v.as_bytes()).is_some()) {
        return OwnCookies::Absent;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in &cookies {
        let value = value.as_bytes();
        // Split at each `;` found by memchr: a sealed session cookie is hundreds of bytes,
        // and every logged-in request comes here.
        let ends = memchr::memchr_iter(b';', value).chain(std::iter::once(value.len()));
        let mut start = 0;
        for end in ends {
            let pair = value[start..end].trim_ascii();
            start = end + 1;
            if pair.is_empty() || pair.starts_with(prefix) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    OwnCookies::Cut(
        (!kept.is_empty())
            .then(|| HeaderValue::from_bytes(&kept).ok())
            .flatten(),
    )
}

impl OwnCookies {
    /// Makes `headers` carry what goes upstream: the cut `Cookie` in place of the request's.
    pub fn set_in(&self, headers: &mut HeaderMap) {
        if let OwnCookies::Cut(kept) = self {
            headers.remove(header::COOKIE);
            if let Some(v) = kept {
                headers.insert(header::COOKIE, v.clone());
            }
        }
    }
}

/// Removes the gateway's own cookies from the `Cookie` header sent upstream (in the map:
/// [`own_cookies_cut`] set in it), for the fuzz target and the tests.
#[cfg(any(test, feature = "fuzzing"))]
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    own_cookies_cut(headers).set_in(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cookies_are_stripped_and_others_kept() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("app=1; __Host-oauthgate-session=abc"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-oauthgate-login-x=y; theme=dark"),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "app=1; theme=dark");
        let mut only = HeaderMap::new();
        only.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-oauthgate-session=abc"),
        );
        strip_own_cookies(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }

    #[test]
    fn own_cookies_are_stripped_from_a_header_that_is_not_utf8() {
        // Another app on the host set `x=é` in Latin-1: the header is not UTF-8.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"x=\xe9; __Host-oauthgate-session=abc; y=2").unwrap(),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h[header::COOKIE].as_bytes(), b"x=\xe9; y=2");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// What `strip_own_cookies` did when it split pair by pair, byte by byte.
    fn model(values: &[Vec<u8>]) -> Option<Vec<u8>> {
        let mut kept: Vec<u8> = Vec::new();
        for value in values {
            for pair in value.split(|&b| b == b';').map(<[u8]>::trim_ascii) {
                if pair.is_empty() || pair.starts_with(COOKIE_PREFIX.as_bytes()) {
                    continue;
                }
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
        }
        (!kept.is_empty()).then_some(kept)
    }

    const PIECES: [&[u8]; 10] = [
        b"__Host-oauthgate-session=abc",
        b"__Host-oauthgate-login-x=y",
        b"a=1",
        b";",
        b" ",
        b"\t",
        b"x__Host-oauthgate-s=1",
        b"\xe9",
        b"=",
        b"__Host-oauthgate-",
    ];

    proptest! {
        #[test]
        fn stripping_matches_the_pair_by_pair_model(
            headers in proptest::collection::vec(proptest::collection::vec(0usize..10, 0..12), 1..4),
        ) {
            let values: Vec<Vec<u8>> = headers.iter().map(|h| h.iter().flat_map(|&i| PIECES[i].iter().copied()).collect()).collect();
            let mut h = HeaderMap::new();
            for v in &values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(header::COOKIE, v);
                }
            }
            let sent: Vec<Vec<u8>> = h.get_all(header::COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect();
            let has_ours = sent.iter().any(|v| v.windows(COOKIE_PREFIX.len()).any(|w| w == COOKIE_PREFIX.as_bytes()));
            strip_own_cookies(&mut h);
            let got: Vec<Vec<u8>> = h.get_all(header::COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect();
            let want: Vec<Vec<u8>> = if has_ours { model(&sent).into_iter().collect() } else { sent };
            prop_assert_eq!(got, want);
        }
    }
}
