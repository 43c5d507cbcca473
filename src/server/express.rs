//! The HTTP/1.1 express lane: a plain GET or HEAD read, answered and written without hyper.
//!
//! hyper's server costs about as much CPU per request as the rest of a proxied request: its
//! dispatcher's poll loops, its buffers, its header-map building and a header-read timer per
//! request. Most requests a gateway sees are bodiless GETs on keep-alive connections, and
//! for those the lane reads the head with hyper's own parser settings, lends the request to
//! the same `AppState::answer` (`handle`, with the request id beside the response, not in its
//! map), and writes the response as hyper would, head and first body bytes in one TLS write.
//!
//! The lane only ever takes a request it is sure of (`parse`) and writes a response it is
//! sure of (`write`). Anything else is declined before it is answered: the bytes read go to a
//! hyper round as read-ahead (`h1.rs`), so hyper answers it exactly as before (400, 431, an
//! upload, an upgrade, the smuggling defences). A response whose encoding is not plain is
//! replayed through hyper: the request's bytes go to a round whose service returns the
//! response already made, so nothing is handled twice.

mod parse;
mod spare;
mod write;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use hyper::body::Body as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use crate::app::AppState;
use crate::body::RequestBody;
use crate::pages::Body as ResBody;
use crate::util::deadline_passed;
use parse::Read;
use write::{BodyLen, Framing};

/// What became of the connection's next request.
pub(super) enum Outcome {
    /// Answered; the connection goes on. Bytes read past the request are in `ahead`.
    Next,
    /// Nothing to read yet: wait for the client holding nothing.
    Quiet,
    /// Answered, or the client ended the connection: close it (close_notify), as hyper does.
    Close,
    /// The connection failed, or is dropped as hyper drops it (a header-read timeout, a body
    /// error): no more bytes.
    Gone,
    /// hyper serves the request whose bytes are in `ahead`.
    Decline,
    /// hyper writes this response to the request whose bytes begin `ahead`.
    Replay(Box<Response<ResBody>>),
}

/// What the lane needs from the connection and the server.
pub(super) struct Lane<'a> {
    pub(super) state: &'a ArcSwap<AppState>,
    pub(super) peer: SocketAddr,
    pub(super) sni: Option<&'a str>,
    /// `limits.max_header_bytes`: a longer head is hyper's (431).
    pub(super) max_head: usize,
    /// `limits.header_read_timeout`, from the first byte of a head.
    pub(super) header_read: Duration,
    /// When the client first sent bytes of this head, if before the lane could read them (a
    /// TLS record still incomplete).
    pub(super) begun: Option<Instant>,
}

/// Up to this much of a response is gathered before a write: one TLS record carries it.
const COALESCE: usize = 16 * 1024;

/// Reads, answers and writes one request, or declines it. `ahead` holds bytes already read
/// (and, after, those read past the request); `stopping` says whether the server is
/// shutting down, when a response has been made (then the connection closes after it).
pub(super) async fn serve(
    tls: &mut TlsStream<TcpStream>,
    ahead: &mut Bytes,
    timer: &mut Pin<Box<Sleep>>,
    lane: &Lane<'_>,
    stopping: impl Fn() -> bool,
) -> Outcome {
    let mut buf = spare::read_buf();
    buf.extend_from_slice(ahead);
    *ahead = Bytes::new();
    let (mut taken, head_bytes) = match read_head(tls, &mut buf, timer, lane).await {
        Ok(taken) => taken,
        Err(Some(outcome)) => {
            spare::give_read(buf);
            return outcome;
        }
        Err(None) => {
            *ahead = buf.freeze();
            return Outcome::Decline;
        }
    };
    // Lent from where it was read (one place in this future, not two).
    let Some(req) = taken.as_mut() else {
        *ahead = join(head_bytes, &buf);
        return Outcome::Decline;
    };
    let is_head = req.method() == Method::HEAD;
    // The state current now serves this request to its end: one arc-swap load, no lock.
    // The request id is written with the head (no map insert): see `write::Parts`.
    let (res, request_id) = super::threads::current_state(lane.state)
        .answer(req, lane.peer, lane.sni)
        .await;
    // Gone before the buffer it shares is given back (`spare::give_read` reclaims only a
    // buffer nothing else holds).
    drop(taken);
    let close = stopping();
    let (mut parts, body) = res.into_parts();
    let len = if body.is_end_stream() {
        BodyLen::None
    } else {
        body.size_hint()
            .exact()
            .map_or(BodyLen::Unknown, BodyLen::Known)
    };
    let mut out = spare::write_buf();
    let shape = write::Parts {
        status: parts.status,
        version: parts.version,
        headers: &parts.headers,
        extensions: &parts.extensions,
        request_id: Some(&request_id),
    };
    let Some(framing) = write::head(&mut out, is_head, &shape, len, close) else {
        *ahead = join(head_bytes, &buf);
        crate::app::set_request_id(&mut parts.headers, request_id);
        return Outcome::Replay(Box::new(Response::from_parts(parts, body)));
    };
    drop(head_bytes);
    // Written: the map serves the thread's next response (`maps`).
    crate::maps::give(crate::maps::Kind::Response, parts.headers);
    let sent = send(tls, &mut out, body, framing).await;
    spare::give_write(out);
    if sent.is_err() {
        return Outcome::Gone;
    }
    if close {
        return Outcome::Close;
    }
    if buf.is_empty() {
        spare::give_read(buf);
    } else {
        *ahead = buf.freeze();
    }
    Outcome::Next
}

/// Reads until `buf` holds a whole head the lane takes, and takes it off `buf`: its request
/// (`None`: declined after all) and bytes. `Err(None)`: declined, hyper gets `buf`;
/// `Err(Some(_))`: the connection is done with, or quiet.
async fn read_head(
    tls: &mut TlsStream<TcpStream>,
    buf: &mut BytesMut,
    timer: &mut Pin<Box<Sleep>>,
    lane: &Lane<'_>,
) -> Result<(Option<Request<RequestBody>>, Bytes), Option<Outcome>> {
    let mut deadline: Option<Instant> = None;
    let mut scan = parse::Scan::default();
    loop {
        if !buf.is_empty() {
            if scan.worth_parsing(buf) {
                match parse::read(buf, lane.max_head) {
                    Read::Taken(req, bytes) => return Ok((req, bytes)),
                    Read::Partial => {}
                    // Too long, or not ours: hyper answers (431, 400, …) or serves it.
                    Read::Decline => return Err(None),
                }
            } else if buf.len() >= lane.max_head {
                return Err(None);
            }
            // From when the client first sent something, even if that was only part of a TLS
            // record (a review finding: holding a record back restarted the head's time).
            deadline
                .get_or_insert_with(|| lane.begun.unwrap_or_else(Instant::now) + lane.header_read);
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(spare::SIZE);
        }
        let waiting = !buf.is_empty();
        let mut read = pin!(tls.read_buf(&mut *buf));
        let read = poll_fn(|cx| match read.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => match deadline {
                _ if !waiting => Poll::Ready(None),
                Some(at) if deadline_passed(timer, at, cx) => {
                    Poll::Ready(Some(Err(std::io::ErrorKind::TimedOut.into())))
                }
                _ => Poll::Pending,
            },
        })
        .await;
        match read {
            None => return Err(Some(Outcome::Quiet)),
            Some(Ok(0)) if buf.is_empty() => return Err(Some(Outcome::Close)),
            // The client ended mid-head: hyper's answer to that.
            Some(Ok(0)) => return Err(None),
            Some(Ok(_)) => {}
            Some(Err(_)) => return Err(Some(Outcome::Gone)),
        }
    }
}

/// Writes the head in `out` and the body framed as `framing`; the head and the first body
/// bytes go out in one write. `Err`: the connection must be dropped (a failed write, a
/// failed body or one shorter than its length, as hyper).
async fn send(
    tls: &mut TlsStream<TcpStream>,
    out: &mut Vec<u8>,
    body: ResBody,
    framing: Framing,
) -> Result<(), ()> {
    let mut left = match framing {
        // Not polled at all (HEAD, 204, 304, empty): hyper drops it too.
        Framing::Length(0) => return flush(tls, out).await,
        Framing::Length(n) => n,
        Framing::Chunked => u64::MAX,
    };
    let chunked = framing == Framing::Chunked;
    let mut body = pin!(body);
    loop {
        // Frames that are ready join the pending bytes; before waiting, those go out.
        let frame = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Err(())),
            polled => polled.map(Ok),
        })
        .await;
        let frame = match frame {
            Err(()) => {
                flush(tls, out).await?;
                out.clear();
                continue;
            }
            Ok(frame) => frame,
        };
        let mut data = match frame {
            None if chunked => {
                out.extend_from_slice(b"0\r\n\r\n");
                return flush(tls, out).await;
            }
            // Shorter than its length, or failed: hyper aborts the connection.
            None | Some(Err(_)) => return Err(()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers: dropped, as hyper does without `TE: trailers` (never taken).
                Err(_) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        if !chunked {
            // More than the length: the rest is cut, and the connection goes on (as hyper).
            let take = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
            data.truncate(take);
            left -= take as u64;
        } else {
            write::chunk_size(out, data.len());
        }
        if out.len() + data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            write_all(tls, out).await?;
            out.clear();
            write_all(tls, &data).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        } else if left == 0 {
            return flush(tls, out).await;
        }
        if out.len() >= COALESCE {
            write_all(tls, out).await?;
            out.clear();
        }
    }
}

async fn write_all(tls: &mut TlsStream<TcpStream>, bytes: &[u8]) -> Result<(), ()> {
    tls.write_all(bytes).await.map_err(drop)
}

/// Writes `bytes` and pushes them out to the socket.
async fn flush(tls: &mut TlsStream<TcpStream>, bytes: &[u8]) -> Result<(), ()> {
    write_all(tls, bytes).await?;
    tls.flush().await.map_err(drop)
}

/// The head's bytes back in front of the rest, for hyper.
fn join(head: Bytes, rest: &BytesMut) -> Bytes {
    let mut b = BytesMut::with_capacity(head.len() + rest.len());
    b.extend_from_slice(&head);
    b.extend_from_slice(rest);
    b.freeze()
}
