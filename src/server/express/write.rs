//! The express lane's response head, byte for byte what hyper's HTTP/1.1 server writes for the
//! same response (`proto::h1::role::Server::encode`), and the body framing it chose.
//!
//! Only responses whose encoding is plain are written here: a 1xx, a version other than
//! HTTP/1.1, a custom reason phrase, `Transfer-Encoding`, `Trailer`, `Connection` or more than
//! one `Content-Length` is left to hyper (the caller replays the request through it), where
//! hyper's rules for them live.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};

use crate::context::X_REQUEST_ID;
use http::{Extensions, StatusCode, Version};

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Exactly this many bytes (0: the body is not polled at all, as hyper).
    Length(u64),
    /// `transfer-encoding: chunked`, ended by `0\r\n\r\n`; trailers are dropped.
    Chunked,
}

/// The body as hyper's dispatcher sees it before the head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyLen {
    /// `is_end_stream()` already: hyper's `None`.
    None,
    /// An exact `size_hint`.
    Known(u64),
    Unknown,
}

/// The parts of a response the head is made of.
pub(super) struct Parts<'a> {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: &'a HeaderMap,
    pub(super) extensions: &'a Extensions,
    /// The request's `X-Request-Id`, written after the map's headers in place of any the
    /// map has: the head of the map with it set last.
    pub(super) request_id: Option<&'a HeaderValue>,
}

/// Appends the response head to `out` and returns the body's framing; `None` (nothing
/// appended) for a response hyper must write. `closing`: the connection closes after this
/// response (the server is stopping), which hyper announces with `connection: close`.
pub(super) fn head(
    out: &mut Vec<u8>,
    is_head: bool,
    res: &Parts<'_>,
    body: BodyLen,
    closing: bool,
) -> Option<Framing> {
    let status = res.status;
    if status.is_informational()
        || res.version != Version::HTTP_11
        || res.extensions.get::<hyper::ext::ReasonPhrase>().is_some()
    {
        return None;
    }
    // A `Transfer-Encoding`, `Trailer` or `Connection` header, or a second length, is
    // hyper's to write: found in the one pass that writes the headers (four lookups were a
    // fifth of this function), and everything appended is taken back.
    let start = out.len();
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper's rules: no body for HEAD, 204, 304; no length for 204, 304.
    let bodiless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let can_body = !is_head && !bodiless;
    let mut framing = Framing::Length(0);
    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut had_length = false;
    for (name, value) in res.headers {
        if res.request_id.is_some() && name == X_REQUEST_ID {
            continue;
        }
        let hypers = name == header::TRANSFER_ENCODING
            || name == header::TRAILER
            || name == header::CONNECTION
            || (name == header::CONTENT_LENGTH && std::mem::replace(&mut had_length, true));
        if hypers {
            out.truncate(start);
            return None;
        }
        if name == header::CONTENT_LENGTH {
            match body {
                BodyLen::Known(n) => framing = Framing::Length(n),
                BodyLen::Unknown => match digits(value.as_bytes()) {
                    Some(n) => framing = Framing::Length(n),
                    None => {
                        // hyper refuses to write it: its error path, not ours.
                        out.truncate(start);
                        return None;
                    }
                },
                // No body: hyper keeps the header on a HEAD response only.
                BodyLen::None if !is_head => continue,
                BodyLen::None => {}
            }
            wrote_len = true;
        } else if name == header::DATE {
            wrote_date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(id) = res.request_id {
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper adds it to the headers once keep-alive is off: after all the others.
    if closing {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !wrote_len {
        framing = match body {
            BodyLen::Unknown if can_body => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodyLen::Unknown => Framing::Length(0),
            BodyLen::None | BodyLen::Known(0) => {
                if !is_head && !bodiless {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            BodyLen::Known(n) => {
                if !bodiless {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(if bodiless { 0 } else { n })
            }
        };
    }
    if !can_body {
        framing = Framing::Length(0);
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        extend_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(framing)
}

/// hyper's `Content-Length` value parser: ASCII digits only, at least one, no overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The size line of a chunk, as hyper writes it (upper-case hex).
pub(super) fn chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The formatted date and the second it is for: formatted once a second per worker, as
    /// hyper's own cache does, with no lock.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn extend_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != second {
            let text = httpdate::fmt_http_date(now);
            if let Ok(bytes) = <[u8; 29]>::try_from(text.as_bytes()) {
                *date = (second, bytes);
            }
        }
        out.extend_from_slice(&date.1);
    });
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
