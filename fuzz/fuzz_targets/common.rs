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
