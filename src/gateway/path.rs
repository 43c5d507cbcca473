//! Request path normalisation: decoded, checked and resolved once, so that the route table and
//! the upstream see exactly the same path (SPEC §4).
//!
//! Rules, failing closed with 400:
//! - the target must be origin-form (start with `/`); `*` and authority-form are refused;
//! - percent escapes must be two hex digits, and must not encode `/`, `\` or NUL (an encoded
//!   separator would let the upstream split the path where the gateway did not);
//! - a raw `\` is refused (some servers treat it as `/`);
//! - the decoded path must be UTF-8 without control characters;
//! - dot segments are removed as RFC 3986 §5.2.4 says, and empty segments (`//`) are merged.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::RequestError;

/// Characters re-escaped when the path is forwarded: those RFC 3986 §3.3 does not allow in a
/// path segment, plus `%` itself, so the upstream decodes back to exactly our path.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A decoded, normalised request path: starts with `/`, no dot or empty segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath(String);

impl NormalPath {
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        if !raw.starts_with('/') {
            return Err(RequestError::BadPath("The request path must start with /."));
        }
        let decoded = String::from_utf8(decode(raw.as_bytes())?)
            .map_err(|_| RequestError::BadPath("The request path is not valid UTF-8."))?;
        if decoded.chars().any(char::is_control) {
            return Err(RequestError::BadPath(
                "The request path contains control characters.",
            ));
        }
        Ok(NormalPath(resolve(&decoded)))
    }

    /// The decoded path, as the route table sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments after the leading `/` (none for `/`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/').filter(|s| !s.is_empty())
    }

    /// The path re-escaped for the request line sent upstream.
    pub fn encoded(&self) -> String {
        utf8_percent_encode(&self.0, PATH_ESCAPE).to_string()
    }
}

fn decode(raw: &[u8]) -> Result<Vec<u8>, RequestError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    raw.get(i + 1).copied().and_then(hex),
                    raw.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(RequestError::BadPath(
                        "The request path has a malformed percent escape.",
                    ));
                };
                let byte = (hi * 16 + lo) as u8;
                if matches!(byte, b'/' | b'\\' | 0) {
                    return Err(RequestError::BadPath(
                        "The request path encodes a slash, backslash or NUL.",
                    ));
                }
                out.push(byte);
                i += 3;
            }
            b'\\' => {
                return Err(RequestError::BadPath(
                    "The request path contains a backslash.",
                ))
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Removes dot segments (RFC 3986 §5.2.4; `..` above the root stays at the root) and merges
/// empty segments. A trailing `/` (or trailing dot segment) is kept as a trailing `/`.
fn resolve(decoded: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in decoded[1..].split('/') {
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, RequestError> {
        NormalPath::parse(raw).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn resolves_dot_and_empty_segments() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/public/../private", "/private"),
            ("/%2e%2e/private", "/private"),
            ("/%2E./private", "/private"),
            ("/./private", "/private"),
            ("//private", "/private"),
            ("/a//b///c", "/a/b/c"),
            ("/../../etc", "/etc"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/caf%C3%A9", "/café"),
            ("/a%20b", "/a b"),
            ("/private;x", "/private;x"),
        ] {
            assert_eq!(norm(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn rejects_what_could_split_differently_upstream() {
        for raw in [
            "/private%2F",
            "/private%2fx",
            "/a%5Cb",
            "/a%5cb",
            "/a\\b",
            "/a%00",
            "/a%",
            "/a%4",
            "/a%zz",
            "/a%C3",
            "/a%FF",
            "/a%09b",
            "/a%0d%0ab",
            "*",
            "example.com:443",
        ] {
            assert!(norm(raw).is_err(), "{raw} should be rejected");
        }
    }

    #[test]
    fn re_encodes_so_the_upstream_decodes_the_same_path() {
        let p = NormalPath::parse("/a%20b/%3F/caf%C3%A9/%25/x%23y").unwrap();
        assert_eq!(p.as_str(), "/a b/?/café/%/x#y");
        assert_eq!(p.encoded(), "/a%20b/%3F/caf%C3%A9/%25/x%23y");
        assert_eq!(NormalPath::parse(&p.encoded()).unwrap(), p);
    }

    #[test]
    fn segments_skip_the_root() {
        let p = NormalPath::parse("/chat/room/").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["chat", "room"]);
        assert_eq!(NormalPath::parse("/").unwrap().segments().count(), 0);
    }
}
