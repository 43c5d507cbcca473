//! Request paths, for both roles: normalisation (decoded, checked and resolved once, so that
//! the route table and the upstream see exactly the same path; SPEC §4, §6 classes 2 and 6)
//! and matching on whole segments.
//!
//! Rules, failing closed with 400:
//! - the target must be origin-form (start with `/`); `*` and authority-form are refused;
//! - percent escapes must be two hex digits, and must not encode `/`, `\` or NUL (an encoded
//!   separator would let the upstream split the path where the gateway did not);
//! - a raw `\` is refused (some servers treat it as `/`);
//! - the decoded path must be UTF-8 without control characters;
//! - a segment whose part before its first `;` is empty, `.` or `..` (`/;/x`, `/x/.;/y`,
//!   `/x/..;/y`, `%2e%2e%3b`) is refused: servlet containers (Tomcat, Jetty, Spring) drop the
//!   `;parameters` first and then resolve the dot segment, so `/public/..;/admin` is
//!   `/admin` to them while it would be under `/public` here;
//! - dot segments are removed as RFC 3986 §5.2.4 says, and empty segments (`//`) are merged;
//!   a `..` that would remove an empty segment where RFC 3986 keeps them (`/admin/x//..`) is
//!   refused, since merging first (nginx, Tomcat) and resolving first give different paths,
//!   and a backend behind `/_auth/check` may read the path the other way. Refused even where
//!   a later `..` makes the two agree again (`/a//../..`); allowed where no named segment
//!   comes before it (`//../x` is `/x` either way).
//!
//! The forwarded path is the normalised one, re-escaped; a `;` is forwarded as it arrived
//! (`%3B` stays `%3B`, a raw `;` stays raw), since servlet containers give them different
//! meanings (a raw one starts path parameters, an escaped one is a literal character).

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

/// A decoded, normalised request path: starts with `/`, no dot or empty segments, no segment
/// that reads as a dot segment once its `;parameters` are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    decoded: String,
    /// The path as forwarded, when it differs from `decoded` (most paths need no escaping).
    encoded: Option<String>,
}

impl NormalPath {
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        if !raw.starts_with('/') {
            return Err(RequestError::BadPath("The request path must start with /."));
        }
        if is_plain(raw.as_bytes()) {
            // Nothing to decode, resolve or escape: the common case, one copy.
            return Ok(NormalPath {
                decoded: raw.to_owned(),
                encoded: None,
            });
        }
        let (bytes, escaped_semis) = decode(raw.as_bytes())?;
        let text = String::from_utf8(bytes)
            .map_err(|_| RequestError::BadPath("The request path is not valid UTF-8."))?;
        if text.chars().any(char::is_control) {
            return Err(RequestError::BadPath(
                "The request path contains control characters.",
            ));
        }
        resolve(&text, &escaped_semis)
    }

    /// The decoded path, as the route table sees it.
    pub fn as_str(&self) -> &str {
        &self.decoded
    }

    /// The segments after the leading `/` (none for `/`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.decoded[1..].split('/').filter(|s| !s.is_empty())
    }

    /// The path re-escaped for the request line sent upstream.
    pub fn encoded(&self) -> &str {
        self.encoded.as_deref().unwrap_or(&self.decoded)
    }
}

/// Whether `raw` is already normal and needs no escaping: printable ASCII other than `%`, `\`,
/// `;` and the characters [`PATH_ESCAPE`] escapes, and no empty or dot segment (a final `/`
/// aside). `;` is left to the slow path, which checks the segments that carry one.
fn is_plain(raw: &[u8]) -> bool {
    let chars_ok = raw.iter().all(|&b| {
        (0x21..0x7f).contains(&b)
            && !matches!(
                b,
                b'%' | b'\\'
                    | b';'
                    | b'"'
                    | b'#'
                    | b'<'
                    | b'>'
                    | b'?'
                    | b'['
                    | b']'
                    | b'^'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
            )
    });
    if !chars_ok {
        return false;
    }
    let mut segments = raw[1..].split(|&b| b == b'/').peekable();
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        if s == b"." || s == b".." || (s.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// Percent-decodes `raw`; also returns the offsets (in the decoded bytes) of each `;` that
/// arrived escaped, so that it can be forwarded escaped.
fn decode(raw: &[u8]) -> Result<(Vec<u8>, Vec<usize>), RequestError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut escaped_semis = Vec::new();
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
                if byte == b';' {
                    escaped_semis.push(out.len());
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
    Ok((out, escaped_semis))
}

/// Removes dot segments (RFC 3986 §5.2.4; `..` above the root stays at the root), merges empty
/// segments and refuses segments that read as dot or empty ones once `;parameters` are
/// dropped. A trailing `/` (or trailing dot segment) is kept as a trailing `/`. Builds the
/// forwarded form beside the decoded one.
fn resolve(text: &str, escaped_semis: &[usize]) -> Result<NormalPath, RequestError> {
    let mut decoded = String::with_capacity(text.len());
    let mut encoded = String::with_capacity(text.len() + 8);
    // Where each kept segment starts in `decoded` and `encoded`, for `..` to go back to.
    let mut starts: Vec<(usize, usize)> = Vec::new();
    // The segments RFC 3986 §5.2.4 keeps, which include empty ones (true): a `..` that
    // removes an empty segment there removes a named one here.
    let mut rfc: Vec<bool> = Vec::new();
    let mut trailing = false;
    let mut offset = 1; // of the current segment in `text`
    for segment in text[1..].split('/') {
        let at = offset;
        offset += segment.len() + 1;
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" => {
                rfc.push(true);
                continue;
            }
            "." => continue,
            ".." => {
                if rfc.pop() == Some(true) && !starts.is_empty() {
                    return Err(RequestError::BadPath(
                        "The request path has a `..` right after an empty segment (`//..`), which servers resolve differently.",
                    ));
                }
                if let Some((d, e)) = starts.pop() {
                    decoded.truncate(d);
                    encoded.truncate(e);
                }
                continue;
            }
            _ => {}
        }
        if matches!(segment.split(';').next(), Some("" | "." | "..")) {
            return Err(RequestError::BadPath(
                "The request path has a segment that servers read as a dot or empty segment.",
            ));
        }
        starts.push((decoded.len(), encoded.len()));
        rfc.push(false);
        decoded.push('/');
        decoded.push_str(segment);
        encoded.push('/');
        encode_segment(segment, at, escaped_semis, &mut encoded);
    }
    if starts.is_empty() || trailing {
        decoded.push('/');
        encoded.push('/');
    }
    let encoded = (encoded != decoded).then_some(encoded);
    Ok(NormalPath { decoded, encoded })
}

/// Appends `segment` (found at byte `at` of the decoded path) escaped for the request line,
/// with each `;` that arrived escaped escaped again.
fn encode_segment(segment: &str, at: usize, escaped_semis: &[usize], out: &mut String) {
    let mut rest = segment;
    let mut pos = at;
    for &semi in escaped_semis
        .iter()
        .filter(|&&s| s >= at && s < at + segment.len())
    {
        let (before, after) = rest.split_at(semi - pos);
        out.extend(utf8_percent_encode(before, PATH_ESCAPE));
        out.push_str("%3B");
        rest = &after[1..];
        pos = semi + 1;
    }
    out.extend(utf8_percent_encode(rest, PATH_ESCAPE));
}
/// Whether `path` is `prefix` or below it, on whole segments (both already normalised), each
/// path segment read without its `;parameters`: `starts_with(segments(path),
/// segments(prefix))`, read as bytes (the iterators cost a proxied request three lookups'
/// worth, and every request asks two or three times).
pub fn under(path: &str, prefix: &str) -> bool {
    let (mut path, mut prefix) = (path.as_bytes(), prefix.as_bytes());
    while let Some(want) = next_segment(&mut prefix) {
        let Some(got) = next_segment(&mut path) else {
            return false;
        };
        let got = match got.iter().position(|&b| b == b';') {
            Some(at) => &got[..at],
            None => got,
        };
        if got != want {
            return false;
        }
    }
    true
}

/// The next non-empty segment of `rest` (between `/`s), taken off its front.
fn next_segment<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = rest.iter().position(|&b| b != b'/')?;
    let from = &rest[start..];
    let end = from.iter().position(|&b| b == b'/').unwrap_or(from.len());
    *rest = &from[end..];
    Some(&from[..end])
}

pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Whether `path` is under `prefix`, each path segment read without its `;parameters` (the
/// model [`under`] is held to).
#[cfg(test)]
pub fn starts_with<'a, 'b>(
    path: impl Iterator<Item = &'a str>,
    prefix: impl Iterator<Item = &'b str>,
) -> bool {
    starts_with_by(path, prefix, |got, want| without_params(got) == want)
}

/// Whether every segment of `prefix` is `same` as the path's segment at its place.
pub fn starts_with_by<'a, 'b>(
    mut path: impl Iterator<Item = &'a str>,
    prefix: impl Iterator<Item = &'b str>,
    same: impl Fn(&str, &str) -> bool,
) -> bool {
    prefix
        .into_iter()
        .all(|want| path.next().is_some_and(|got| same(got, want)))
}

/// A segment without its `;parameters`, as servlet containers read it.
pub fn without_params(segment: &str) -> &str {
    segment.split(';').next().unwrap_or("")
}

/// Equal ignoring case and trailing dots and spaces (which Windows file names and IIS drop).
/// Case is folded as Java's `equalsIgnoreCase` and .NET's ordinal-ignore-case do, through
/// upper case and back, so that `ı` and `ſ` meet the `i` and `s` such servers read them as;
/// lower case alone would leave them apart.
pub fn same_folded(got: &str, want: &str) -> bool {
    let got = got.trim_end_matches(['.', ' ']);
    let want = want.trim_end_matches(['.', ' ']);
    if got.is_ascii() && want.is_ascii() {
        return got.eq_ignore_ascii_case(want);
    }
    let fold = |s: &'_ str| {
        s.chars()
            // Java and .NET lower `İ` to a plain `i`; Rust adds a combining dot.
            .map(|c| if c == '\u{130}' { 'i' } else { c })
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect::<Vec<char>>()
    };
    fold(got) == fold(want)
}

#[cfg(test)]
mod props;

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
        assert_eq!(NormalPath::parse(p.encoded()).unwrap(), p);
    }

    #[test]
    fn refuses_segments_that_servlet_containers_read_as_dot_segments() {
        for raw in [
            "/public/..;/admin/secret",
            "/public/..;x=1/admin/secret",
            "/public/.;/admin",
            "/public/.;x/../admin",
            "/;/admin/secret",
            "/;x/admin",
            "/public/%2e%2e%3b/admin/secret",
            "/public/%2e%2e;/admin",
            "/public/%2E;/admin",
            "/public/..%3Bx/admin",
            "/a/;",
        ] {
            assert!(norm(raw).is_err(), "{raw} should be rejected");
        }
        // `;` after a real name is a parameter, not a dot segment.
        for (raw, want) in [
            ("/a;b/c", "/a;b/c"),
            ("/a..;/c", "/a..;/c"),
            ("/.a;/c", "/.a;/c"),
            ("/x/...;/c", "/x/...;/c"),
        ] {
            assert_eq!(norm(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn a_dot_dot_after_an_empty_segment_is_refused_where_readings_differ() {
        // Merged first: `/admin/x/..` is `/admin/`... but resolved first (RFC 3986), `//..`
        // removes only the empty segment: `/admin/x/`. Refused where the two differ.
        for raw in [
            "/admin/x//..",
            "/admin/x//../..",
            "/a//../b",
            "/a/b//%2e%2e/c",
            "/a///../..",
            // The readings meet again after the second `..`, but the step is refused.
            "/a//../..",
            "/%20//../..",
        ] {
            assert!(norm(raw).is_err(), "{raw} should be rejected");
        }
        // Where both readings agree, nothing changes.
        for (raw, want) in [
            ("//../a", "/a"),
            ("/a/..//../b", "/b"),
            ("/a//b/../c", "/a/c"),
            ("//private", "/private"),
            ("/a//.", "/a/"),
        ] {
            assert_eq!(norm(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn semicolons_are_forwarded_as_they_arrived() {
        for (raw, decoded, encoded) in [
            ("/a;b", "/a;b", "/a;b"),
            ("/a%3Bb", "/a;b", "/a%3Bb"),
            ("/a%3bb;c/d%3B", "/a;b;c/d;", "/a%3Bb;c/d%3B"),
            ("/x/../a%3B%20;/", "/a; ;/", "/a%3B%20;/"),
            ("/caf%C3%A9%3B", "/café;", "/caf%C3%A9%3B"),
        ] {
            let p = NormalPath::parse(raw).unwrap();
            assert_eq!(p.as_str(), decoded, "{raw}");
            assert_eq!(p.encoded(), encoded, "{raw}");
        }
    }

    #[test]
    fn plain_paths_take_the_fast_path_unchanged() {
        for raw in ["/", "/a", "/a/b/", "/a-b_c~d/e.f", "/a..b/.c/"] {
            let p = NormalPath::parse(raw).unwrap();
            assert_eq!((p.as_str(), p.encoded()), (raw, raw));
            assert!(is_plain(raw.as_bytes()), "{raw}");
        }
        for raw in ["//a", "/a//b", "/./a", "/a/..", "/a/.", "/a;b", "/a%20"] {
            assert!(!is_plain(raw.as_bytes()), "{raw}");
        }
        // The fast path never takes a character that forwarding would escape.
        for b in 0u8..0x80 {
            let raw = format!("/a{}", b as char);
            let escaped = utf8_percent_encode(&raw, PATH_ESCAPE).to_string() != raw;
            if escaped || b == b';' {
                assert!(!is_plain(raw.as_bytes()), "{raw:?}");
            }
        }
    }

    #[test]
    fn under_is_segment_wise() {
        assert!(under("/_auth", "/_auth"));
        assert!(under("/_auth/x", "/_auth"));
        assert!(!under("/_authx", "/_auth"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn folding_ignores_case_and_trailing_dots_and_spaces() {
        assert!(same_folded("ADMIN. .", "admin"));
        assert!(same_folded("ÉTÉ", "été"));
        assert!(!same_folded("ete", "été"));
        // Dotless i, long s and the Kelvin sign fold to ASCII letters.
        assert!(same_folded("adm\u{131}n", "admin"));
        assert!(same_folded("\u{17f}ecret", "secret"));
        assert!(same_folded("\u{212a}ey", "key"));
        assert!(same_folded("adm\u{130}n", "admin"));
        assert!(!same_folded("admins", "admin"));
    }

    #[test]
    fn segments_skip_the_root() {
        let p = NormalPath::parse("/chat/room/").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["chat", "room"]);
        assert_eq!(NormalPath::parse("/").unwrap().segments().count(), 0);
    }
}
