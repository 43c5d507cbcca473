//! The HTTP/1.1 client codec of the proxy's hot path: a bodiless request's head written
//! straight into a connection's buffer, and the response head read back with `httparse`,
//! framed exactly as RFC 9112 §6.3 says (or refused: a proxy that guesses a body's length
//! can hand one user's bytes to another).

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri, Version};

use crate::maps::{Kept, Line};

/// The most header lines a response head may have (hyper's client default).
pub const MAX_HEADERS: usize = 100;
/// The largest response head read before giving up (each 1xx head counts on its own).
pub const MAX_HEAD: usize = 64 * 1024;

/// Why a request could not be written or a response head not be read: all are 502s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("the request target is not origin-form")]
    Target,
    #[error("the response head is over {MAX_HEAD} bytes")]
    TooLarge,
    #[error("the response head has over {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("the response head is malformed: {0}")]
    Malformed(httparse::Error),
    #[error("the response head has a bad status or header")]
    Invalid,
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    Switching,
    #[error("an HTTP/1.0 response with Transfer-Encoding")]
    TransferEncodingInHttp10,
    #[error("the response's Content-Length is not one plain decimal number")]
    ContentLength,
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all: HEAD, 204, 304, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A response head and what it means for the connection.
#[derive(Debug)]
pub struct Parsed {
    pub response: Response<()>,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body has ended.
    pub reuse: bool,
}

/// Headers the caller sets on a request as its head is written: its own lines come right
/// after the request line, and the map's headers of the same names are left out. A request
/// hyper writes gets them in its map instead ([`set_in`](SetHeaders::set_in)).
pub trait SetHeaders {
    /// Whether the map's header `name` is one of this set's (and so left out).
    fn replaces(&self, name: &HeaderName) -> bool;
    /// Appends this set's header lines, `name: value\r\n` each.
    fn write_h1(&self, out: &mut Vec<u8>);
    /// Sets them in `map`, replacing any value of the same names.
    fn set_in(&self, map: &mut HeaderMap);
}

/// No header set: the map as it is.
impl SetHeaders for () {
    fn replaces(&self, _: &HeaderName) -> bool {
        false
    }
    fn write_h1(&self, _: &mut Vec<u8>) {}
    fn set_in(&self, _: &mut HeaderMap) {}
}

/// Writes a bodiless request's head into `dst` (cleared first): the request line, `set`'s
/// lines, then the header map (less `set`'s names, and less any `Transfer-Encoding`, which
/// hyper removed from a request without body), with no `Content-Length` added. A target
/// that is not origin-form is refused.
pub fn encode_head<S: SetHeaders + ?Sized>(
    dst: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    set: &S,
) -> Result<(), HeadError> {
    dst.clear();
    // Origin-form only (RFC 9112 §3.2.1): anything else would let the target name another
    // host, or be read differently by the upstream.
    let target = match uri.path_and_query() {
        Some(pq) if uri.scheme().is_none() && pq.as_str().starts_with('/') => pq.as_str(),
        _ => return Err(HeadError::Target),
    };
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    set.write_h1(dst);
    for (name, value) in headers {
        if name == header::TRANSFER_ENCODING || set.replaces(name) {
            continue;
        }
        // No value holds CR, LF or NUL (a second header or request: smuggling): every
        // checked `HeaderValue` constructor refuses them, and the unchecked one is `unsafe`,
        // which this crate forbids (the unit tests hold `http` to it).
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    Ok(())
}

/// Reads the final response head from the front of `buf`, skipping informational (1xx)
/// heads, and takes it out of `buf`. `Ok(None)`: the head is not complete yet (read more).
/// Header values are slices of one frozen copy of the head: no copy per header. `map` is
/// filled (a kept one: its names are reused when the head has them, see `maps::fill`). A
/// `Connection: keep-alive` is read and left out.
pub fn parse_head(
    buf: &mut BytesMut,
    head_request: bool,
    map: &mut Kept,
) -> Result<Option<Parsed>, HeadError> {
    let mut lines = crate::maps::take_lines();
    let parsed = parse_head_with(buf, head_request, map, &mut lines);
    crate::maps::give_lines(lines);
    parsed
}

/// [`parse_head`], the head's line positions written into `lines` (the thread's list).
fn parse_head_with(
    buf: &mut BytesMut,
    head_request: bool,
    map: &mut Kept,
    lines: &mut Vec<Line>,
) -> Result<Option<Parsed>, HeadError> {
    loop {
        lines.clear();
        let (len, code, version, reason) = {
            // Uninitialised: httparse writes the lines it finds (no 3 KiB fill per parse).
            let mut headers = [MaybeUninit::<httparse::Header>::uninit(); MAX_HEADERS];
            let mut res = httparse::Response::new(&mut []);
            let config = httparse::ParserConfig::default();
            let len = match config.parse_response_with_uninit_headers(&mut res, buf, &mut headers) {
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                    return Err(HeadError::TooLarge)
                }
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                    return Err(HeadError::TooLarge)
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
                Err(e) => return Err(HeadError::Malformed(e)),
            };
            // Where httparse's slices lie in `buf` (they always do; were one not to, its
            // range would fail the check against the head below).
            let base = buf.as_ptr() as usize;
            let at = |s: &[u8]| {
                let start = (s.as_ptr() as usize).wrapping_sub(base);
                let start = u32::try_from(start).unwrap_or(u32::MAX);
                (start, start.saturating_add(s.len() as u32))
            };
            for h in res.headers.iter() {
                // A `Connection` that says only `keep-alive` is this connection's business,
                // read here and gone: it names no header but `Keep-Alive` (hop-by-hop
                // anyway), so the gateway's strip would remove just it. Any other goes on
                // to that strip, which removes it and the headers it names.
                if h.name.eq_ignore_ascii_case("connection")
                    && crate::util::only_keep_alive(h.value)
                {
                    continue;
                }
                let ((n0, n1), (v0, v1)) = (at(h.name.as_bytes()), at(h.value));
                lines.push((n0, n1, v0, v1));
            }
            let version = match res.version {
                Some(1) => Version::HTTP_11,
                _ => Version::HTTP_10,
            };
            let reason = res.reason.map(|r| at(r.as_bytes()));
            (len, res.code.unwrap_or(0), version, reason)
        };
        let status = StatusCode::from_u16(code).map_err(|_| HeadError::Invalid)?;
        match code {
            101 => return Err(HeadError::Switching),
            100..=199 => {
                buf.advance(len);
                continue;
            }
            _ => {}
        }
        let head = buf.split_to(len).freeze();
        // The names of this thread's last response are reused (`maps`).
        let mut headers = map.fill(&head, lines, 0).map_err(|_| HeadError::Invalid)?;
        let (framing, reuse) = framing(status, version, &headers, head_request)?;
        if matches!(framing, Framing::Chunked | Framing::Close)
            && headers.contains_key(header::TRANSFER_ENCODING)
        {
            // §6.3 item 3: Transfer-Encoding overrides Content-Length, which must not be
            // forwarded (our client would read the body by the wrong length).
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        if let Some((r0, r1)) = reason {
            range(&head, r0, r1)?;
            keep_reason(&mut response, &head, r0 as usize, r1 as usize);
        }
        return Ok(Some(Parsed {
            response,
            framing,
            reuse,
        }));
    }
}

/// `head[start..end]`, when that lies inside the head.
fn range(head: &Bytes, start: u32, end: u32) -> Result<&[u8], HeadError> {
    head.get(start as usize..end as usize)
        .ok_or(HeadError::Invalid)
}

/// A reason phrase that is not the status's usual one goes to the client as sent, as hyper
/// kept it (an extension only then: the usual case costs nothing).
fn keep_reason(response: &mut Response<()>, head: &Bytes, start: usize, end: usize) {
    let reason = &head[start..end];
    if Some(reason) != response.status().canonical_reason().map(str::as_bytes) {
        if let Ok(r) = hyper::ext::ReasonPhrase::try_from(head.slice(start..end)) {
            response.extensions_mut().insert(r);
        }
    }
}

/// What [`framing`] reads of a response's headers.
#[derive(Debug, PartialEq)]
struct FramingHeaders<'a> {
    /// A `Connection` value lists `close`.
    close: bool,
    /// The last `Transfer-Encoding` value.
    last_coding: Option<&'a HeaderValue>,
    /// A `Content-Length` is there.
    has_length: bool,
}

impl<'a> FramingHeaders<'a> {
    /// One pass over the headers for the three names (three lookups cost more than looking
    /// at every header of a response once).
    fn of(headers: &'a HeaderMap) -> Self {
        let mut seen = FramingHeaders {
            close: false,
            last_coding: None,
            has_length: false,
        };
        for (name, value) in headers {
            if *name == header::CONNECTION {
                seen.close |= has_token(value.as_bytes(), b"close");
            } else if *name == header::TRANSFER_ENCODING {
                seen.last_coding = Some(value);
            } else if *name == header::CONTENT_LENGTH {
                seen.has_length = true;
            }
        }
        seen
    }
}

/// The body's framing and whether the connection stays usable (RFC 9112 §6.3, §9.3).
pub fn framing(
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
    head_request: bool,
) -> Result<(Framing, bool), HeadError> {
    let FramingHeaders {
        close,
        last_coding,
        has_length,
    } = FramingHeaders::of(headers);
    let reuse = version == Version::HTTP_11 && !close;
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, reuse));
    }
    if let Some(last) = last_coding {
        if version == Version::HTTP_10 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        let final_coding = last
            .as_bytes()
            .rsplit(|&b| b == b',')
            .next()
            .unwrap_or_default();
        if !final_coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Ok((Framing::Close, false));
        }
        // With a Content-Length beside it, someone on the way may have read the other
        // framing (§6.3 item 3): the connection is not trusted with another request.
        return Ok((Framing::Chunked, reuse && !has_length));
    }
    if has_length {
        return match content_length(headers) {
            Some(0) => Ok((Framing::Empty, reuse)),
            Some(n) => Ok((Framing::Length(n), reuse)),
            None => Err(HeadError::ContentLength),
        };
    }
    Ok((Framing::Close, false))
}

/// The one length all `Content-Length` values (lines and list items) agree on; `None` when
/// they differ or one is not plain decimal digits (no sign, no space inside, no overflow).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for line in headers.get_all(header::CONTENT_LENGTH) {
        for item in line.as_bytes().split(|&b| b == b',') {
            let n = decimal(item.trim_ascii())?;
            if *length.get_or_insert(n) != n {
                return None;
            }
        }
    }
    length
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
