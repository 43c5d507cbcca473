//! The express lane's request parser: hyper's own `httparse` settings, and a request taken only
//! when nothing in its head needs hyper (no body, no upgrade, no close); anything else declines.

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Uri, Version};
use std::mem::MaybeUninit;

use crate::body::RequestBody;

/// hyper's header limit (`DEFAULT_MAX_HEADERS`): more is a 431 from hyper, so a decline here.
pub(super) const MAX_HEADERS: usize = 100;

/// hyper answers 414 above this request-target length (`MAX_URI_LEN`).
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// What the bytes read so far hold.
#[derive(Debug)]
pub(super) enum Parsed<H = Head> {
    /// Not a whole head yet, and nothing wrong so far.
    Partial,
    /// hyper must see these bytes: a request the lane does not take, or an error hyper answers.
    Decline,
    /// A whole head the lane takes; `len` bytes of the buffer are the head.
    Ready(H),
}

/// Where a taken head's parts lie in the buffer, and how long the head is.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) len: usize,
    method: Method,
    target: (u32, u32),
    /// (name start, name end, value start, value end) of each header, in order: the
    /// thread's list, lent for the parse (`maps::take_lines`).
    lines: Vec<crate::maps::Line>,
}

/// Whether a head being read is worth parsing again: on the first look, and then only once the
/// bytes read since could end it (`util::may_end_head`; a review finding: the lane parsed
/// after every read, and a head dribbled in one-byte TLS records cost its length squared).
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// How much of the buffer has been looked at.
    seen: usize,
}

impl Scan {
    pub(super) fn worth_parsing(&mut self, buf: &[u8]) -> bool {
        let first = self.seen == 0;
        // The end may straddle what was seen and what is new.
        let from = self.seen.saturating_sub(3).min(buf.len());
        self.seen = buf.len();
        first || crate::util::may_end_head(&buf[from..])
    }
}

/// Parses `buf` with hyper's server settings and checks the lane may take the request.
#[cfg(test)]
pub(super) fn parse(buf: &[u8]) -> Parsed {
    let mut head = Head::new(Vec::new());
    match parse_into(buf, &mut head) {
        Parsed::Ready(()) => Parsed::Ready(head),
        Parsed::Partial => Parsed::Partial,
        Parsed::Decline => Parsed::Decline,
    }
}

/// [`parse`], the head's positions written into `head`: the lane's path keeps them in one
/// frame (a [`Head`] returned by value was copied on every return). `head.lines` is empty.
fn parse_into(buf: &[u8], head: &mut Head) -> Parsed<()> {
    if u32::try_from(buf.len()).is_err() {
        return Parsed::Decline;
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    // hyper's server uses `ParserConfig::default()`: no leniency of any kind.
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Decline,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Decline;
    };
    let method = match method {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return Parsed::Decline,
    };
    // Origin-form only: absolute-form, authority-form and `*` go to hyper.
    if !path.starts_with('/') || path.len() > MAX_URI_LEN {
        return Parsed::Decline;
    }
    let base = buf.as_ptr() as usize;
    // Offsets fit in `u32`: heads are at most `limits.max_header_bytes` (1 MiB), and a longer
    // buffer is declined above.
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    head.len = len;
    head.method = method;
    head.target = at(path.as_bytes());
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        // hyper: a name of 64 KiB or more is a 431.
        if name.len() >= 1 << 16 {
            return Parsed::Decline;
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if !takes_header(name, h.value) {
            return Parsed::Decline;
        }
        let (ns, ne) = at(name);
        let (vs, ve) = at(h.value);
        head.lines.push((ns, ne, vs, ve));
    }
    if hosts != 1 {
        return Parsed::Decline;
    }
    Parsed::Ready(())
}

/// Whether a header (other than `Host`) leaves the request to the lane. A body, an upgrade, an
/// expectation, trailers asked for, or a connection option other than `keep-alive` is hyper's.
fn takes_header(name: &[u8], value: &[u8]) -> bool {
    const HYPERS: [&[u8]; 6] = [
        b"content-length",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"http2-settings",
        b"te",
    ];
    if HYPERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return false;
    }
    if name.eq_ignore_ascii_case(b"connection") {
        return value
            .split(|&b| b == b',')
            .all(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"));
    }
    true
}

impl Head {
    fn new(lines: Vec<crate::maps::Line>) -> Head {
        Head {
            len: 0,
            method: Method::GET,
            target: (0, 0),
            lines,
        }
    }

    /// The request, its header values sharing `head`'s bytes (the first `len` of the buffer).
    /// `None` (decline) where hyper's own conversion would differ or fail.
    pub(super) fn request(&self, head: &Bytes) -> Option<Request<RequestBody>> {
        let span = |(start, end): (u32, u32)| start as usize..end as usize;
        let uri = Uri::from_maybe_shared(head.slice(span(self.target))).ok()?;
        if uri.scheme().is_some() || uri.authority().is_some() {
            return None;
        }
        // The names this thread's last request came with are reused (`maps`).
        let headers = crate::maps::take(crate::maps::Kind::Request)
            .fill(head, &self.lines, 0)
            .ok()?;
        let mut req = Request::new(RequestBody::Empty);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Some(req)
    }
}

/// Splits a taken head off the front of `buf` and builds its request; the head's bytes come
/// back too (a replay through hyper needs them, and so does a late decline: `None`).
pub(super) fn take(buf: &mut BytesMut, head: &Head) -> (Option<Request<RequestBody>>, Bytes) {
    let bytes = buf.split_to(head.len).freeze();
    (head.request(&bytes), bytes)
}

/// What a look at the bytes read so far decided.
// Returned once per request; boxing the request would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Read {
    /// Not a whole head yet, and not too long so far.
    Partial,
    /// hyper's: a request the lane does not take, an error hyper answers, or a head longer
    /// than `max_head` (431).
    Decline,
    /// A whole head, split off the buffer: its request (`None`: a late decline) and bytes.
    Taken(Option<Request<RequestBody>>, Bytes),
}

/// Parses `buf` and, if it holds a whole head the lane takes, takes it. One frame does both:
/// a [`Head`] returned through the lane's futures was copied three times a request.
pub(super) fn read(buf: &mut BytesMut, max_head: usize) -> Read {
    let mut head = Head::new(crate::maps::take_lines());
    let read = match parse_into(buf, &mut head) {
        Parsed::Ready(()) if head.len <= max_head => {
            let (req, bytes) = take(buf, &head);
            Read::Taken(req, bytes)
        }
        Parsed::Partial if buf.len() < max_head => Read::Partial,
        _ => Read::Decline,
    };
    crate::maps::give_lines(head.lines);
    read
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
