//! The gateway's own cookies never reach an upstream: they are cut from the `Cookie` header.

use http::header::{self, HeaderMap, HeaderValue};

use super::COOKIE_PREFIX;

/// Removes the gateway's own cookies from the `Cookie` header sent upstream.
///
/// Works on bytes: a `Cookie` header may carry non-UTF-8 bytes (any site on the same host can
/// set such a cookie), and skipping such a header as unreadable would forward our session
/// cookie along with it.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let prefix = COOKIE_PREFIX.as_bytes();
    // A plain substring test first: most requests to most routes carry none of ours.
    let has_ours = headers.get_all(header::COOKIE).iter().any(|v| {
        // The first-byte test keeps this from comparing at every position.
        v.as_bytes()
            .windows(prefix.len())
            .any(|w| w[0] == prefix[0] && w == prefix)
    });
    if !has_ours {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value
            .as_bytes()
            .split(|&b| b == b';')
            .map(<[u8]>::trim_ascii)
        {
            if pair.is_empty() || pair.starts_with(prefix) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&kept) {
            headers.insert(header::COOKIE, v);
        }
    }
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
