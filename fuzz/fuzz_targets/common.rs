//! Helpers shared by the fuzz targets: turning fuzz input into requests and header maps.
#![allow(dead_code)]

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The input's lines as `name: value` headers, in order; lines that are not a valid name and
/// value are skipped (hyper would have refused them before the gateway saw them).
pub fn headers(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// A header name as the reserved-header rule reads it: lower case, `_` as `-`.
pub fn spelled(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// `%XX` as the byte when both are hex digits, anything else as it is; with `plus_is_space`,
/// `+` is a space (form encoding). Written without the crate's code, as the targets' model.
pub fn percent_decode(s: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (
            s[i],
            s.get(i + 1).copied().and_then(hex),
            s.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_is_space => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    out
}
