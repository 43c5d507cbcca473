//! The hot path's own upstream connections: a bodiless request written in one write, its
//! response head read and framed by `h1`, its body read by [`Reader`] straight from the
//! connection's buffer, all polled by the request's own task (no task, channel or lock per
//! request). A connection is pooled again only when its response ended exactly at its
//! framing's end, with no byte read beyond it: anything else may be a desync, and the next
//! user of the connection would read a stranger's bytes as its response.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response};
use hyper::body::{Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;
use tracing::debug;

use super::chunked::{Chunked, Step};
use super::conn::Stream;
use super::h1::{self, Framing, Parsed, SetHeaders};
use super::{Pool, UpstreamBody};
use crate::body::RequestBody;
use crate::error::{BoxError, RequestError};
use crate::maps::{Kept, Kind};
use crate::util::deadline_passed;

/// How much room a read has at least (the buffer grows by this when it runs short).
const READ_ROOM: usize = 8 * 1024;

/// How much an upstream may send before its final response head, 1xx heads included (a
/// review finding: endless `103`s kept a thread busy until the response timeout).
const INFORMATIONAL: usize = 4 * h1::MAX_HEAD;

/// One connection of the hot path and its reused buffers.
pub(super) struct Wire {
    io: Stream,
    read: BytesMut,
    write: Vec<u8>,
    /// Bounds the wait for a response head, then a body's stalls: one timer per connection,
    /// re-armed only when it goes off before the current deadline (see `deadline_passed`).
    pub(super) timer: Pin<Box<Sleep>>,
}

/// Why an exchange gave no response head.
enum Failed {
    /// The connection failed before any byte of a response: a pooled one may have been
    /// closed by the upstream just as the request went out.
    Early(io::Error),
    Timeout,
    Other(RequestError),
}

impl Wire {
    pub(super) fn new(io: Stream, deadline: Instant) -> Box<Self> {
        Box::new(Wire {
            io,
            read: BytesMut::with_capacity(2 * READ_ROOM),
            write: Vec::with_capacity(1024),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }

    /// Whether an idle connection is still fit for a request: nothing may have arrived while
    /// it idled, neither its end nor bytes nobody asked for (a desync).
    pub(super) fn idle_fit(&mut self, cx: &mut Context<'_>) -> bool {
        self.read.reserve(READ_ROOM);
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read).is_pending()
    }

    /// Writes the head in `write` and reads the response head into `map`, by `deadline`.
    async fn exchange(
        &mut self,
        head_request: bool,
        deadline: Instant,
        map: &mut Kept,
    ) -> Result<Parsed, Failed> {
        let mut written = 0;
        let mut got_any = false;
        // How much of `read` was looked at for a head's end, and how much was read in all.
        let (mut seen, mut read) = (0usize, 0usize);
        poll_fn(|cx| {
            while written < self.write.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.write[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(Failed::Early(zero()))),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Failed::Early(e))),
                    Poll::Pending => return self.wait(deadline, cx),
                }
            }
            // A no-op on TCP; TLS may hold the last record until flushed.
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Failed::Early(e))),
                Poll::Pending => return self.wait(deadline, cx),
            }
            loop {
                // Parsed on the first look at bytes, then only once the new bytes may end a
                // head. Not before any: the usual first look is at an empty buffer, and a
                // parse there is a wasted call with a 1.6 KiB table to clear.
                let from = seen.saturating_sub(3).min(self.read.len());
                let worth = seen == 0 || crate::util::may_end_head(&self.read[from..]);
                let refused = if !self.read.is_empty() && worth {
                    match h1::parse_head(&mut self.read, head_request, map) {
                        Ok(Some(parsed)) => return Poll::Ready(Ok(parsed)),
                        Ok(None) => None,
                        Err(e) => Some(e),
                    }
                } else {
                    (self.read.len() > h1::MAX_HEAD).then_some(h1::HeadError::TooLarge)
                };
                // Informational heads are skipped, but not without end.
                let refused = refused.or((read > INFORMATIONAL).then_some(h1::HeadError::TooLarge));
                if let Some(e) = refused {
                    let e = RequestError::upstream("the response head was refused", e);
                    return Poll::Ready(Err(Failed::Other(e)));
                }
                seen = self.read.len();
                self.read.reserve(READ_ROOM);
                let e = match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
                    Poll::Ready(Ok(0)) => io::ErrorKind::UnexpectedEof.into(),
                    Poll::Ready(Ok(n)) => {
                        got_any = true;
                        read += n;
                        continue;
                    }
                    Poll::Ready(Err(e)) => e,
                    Poll::Pending => return self.wait(deadline, cx),
                };
                return Poll::Ready(Err(match got_any {
                    false => Failed::Early(e),
                    true => Failed::Other(RequestError::upstream(
                        "the connection ended inside the response head",
                        e,
                    )),
                }));
            }
        })
        .await
    }

    fn wait<T>(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<Result<T, Failed>> {
        match deadline_passed(&mut self.timer, deadline, cx) {
            true => Poll::Ready(Err(Failed::Timeout)),
            false => Poll::Pending,
        }
    }
}

fn zero() -> io::Error {
    io::ErrorKind::WriteZero.into()
}

/// Whether a request may be sent again after its connection failed before any answer: the
/// idempotent methods (RFC 9110 §9.2.2), as nginx's `proxy_next_upstream` retries.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl Pool {
    /// Sends a request without body on one of the hot path's own connections.
    pub(super) async fn send_bodiless<S: SetHeaders + ?Sized>(
        self: &Arc<Self>,
        req: &mut Request<RequestBody>,
        set: &S,
        deadline: Instant,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        let head_request = req.method() == Method::HEAD;
        let (mut wire, mut reused) = match self.take_wire().await {
            Some(wire) => (wire, true),
            // Boxed: connecting (a TLS handshake, maybe) is rare, and its future large.
            None => (Wire::new(Box::pin(self.open()).await?, deadline), false),
        };
        if let Err(e) =
            h1::encode_head(&mut wire.write, req.method(), req.uri(), req.headers(), set)
        {
            self.put_back_wire(wire);
            return Err(RequestError::upstream("the request cannot be sent", e));
        }
        // Written out, the request's map is kept for the thread's next request, and the
        // response is read into the map of its last response: each reuses the names of the
        // head it last carried (`maps`).
        crate::maps::give(Kind::Request, std::mem::take(req.headers_mut()));
        let mut map = crate::maps::take(Kind::Response);
        loop {
            wire.read.clear();
            match wire.exchange(head_request, deadline, &mut map).await {
                Ok(parsed) => return Ok(self.respond(wire, parsed)),
                // Once: the retry is on a new connection (`reused` false).
                Err(Failed::Early(e)) if reused && idempotent(req.method()) => {
                    debug!(error = %e, "pooled upstream connection closed; retrying");
                    let mut fresh = Wire::new(Box::pin(self.open()).await?, deadline);
                    // The head written already goes again as it is.
                    std::mem::swap(&mut fresh.write, &mut wire.write);
                    (wire, reused) = (fresh, false);
                }
                Err(Failed::Early(e)) => {
                    return Err(RequestError::upstream(
                        "the connection closed before a response",
                        e,
                    ))
                }
                // The connection is mid-request: it closes with `wire`.
                Err(Failed::Timeout) => return Err(RequestError::UpstreamTimeout),
                Err(Failed::Other(e)) => return Err(e),
            }
        }
    }

    fn respond(self: &Arc<Self>, mut wire: Box<Wire>, parsed: Parsed) -> Response<UpstreamBody> {
        let Parsed {
            response,
            framing,
            reuse,
        } = parsed;
        let state = match framing {
            Framing::Empty => return response.map(|()| self.whole(wire, reuse, None)),
            Framing::Length(n) if wire.read.len() as u64 == n => {
                let data = wire.read.split().freeze();
                return response.map(|()| self.whole(wire, reuse, Some(data)));
            }
            Framing::Length(n) => Framed::Length(n),
            Framing::Chunked => Framed::Chunked(Chunked::default()),
            Framing::Close => Framed::Close,
        };
        let reader = Reader {
            wire: Some(wire),
            state,
            reuse,
        };
        response.map(|()| UpstreamBody::own(reader, self.clone()))
    }

    /// A body with nothing more to read (none, or all of it read with the head, as a small
    /// response usually is): the connection goes back to the pool now, and the body is plain
    /// bytes, holding no hold on the pool.
    fn whole(&self, wire: Box<Wire>, reuse: bool, data: Option<Bytes>) -> UpstreamBody {
        self.read_to_end(wire, reuse);
        UpstreamBody::whole(data)
    }

    /// A connection whose response has been read to its end: back to the pool if it may be
    /// reused and nothing past the response was read from it (a desync), else closed.
    fn read_to_end(&self, wire: Box<Wire>, reuse: bool) {
        if reuse && wire.read.is_empty() {
            self.put_back_wire(wire);
        }
    }
}

/// The state of a response body being read.
enum Framed {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

/// A response body read from a hot-path connection.
pub(super) struct Reader {
    /// `None` once the connection has been pooled again or closed.
    wire: Option<Box<Wire>>,
    state: Framed,
    /// Whether the response allows another request on the connection.
    reuse: bool,
}

/// A body that ended before its framing said it would.
#[derive(Debug, thiserror::Error)]
#[error("the upstream connection ended inside the response body")]
pub struct Truncated;

impl Reader {
    pub(super) fn is_end_stream(&self) -> bool {
        matches!(self.state, Framed::Done)
    }

    pub(super) fn size_hint(&self) -> SizeHint {
        match self.state {
            Framed::Length(n) => SizeHint::with_exact(n),
            Framed::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The connection's timer, for the body's stall limit.
    pub(super) fn timer(&mut self) -> Option<&mut Pin<Box<Sleep>>> {
        self.wire.as_mut().map(|w| &mut w.timer)
    }

    /// Closes the connection (mid-response: it cannot be pooled).
    pub(super) fn close(&mut self) {
        self.wire = None;
    }

    /// The body has ended: the connection is pooled if the response allows it and nothing
    /// was read beyond the body's end.
    fn finish(&mut self, pool: &Pool) {
        self.state = Framed::Done;
        if let Some(wire) = self.wire.take() {
            pool.read_to_end(wire, self.reuse);
        }
    }

    pub(super) fn poll_frame(
        &mut self,
        pool: &Pool,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Framed::Done = self.state {
                return Poll::Ready(None);
            }
            let Some(wire) = &mut self.wire else {
                return Poll::Ready(Some(Err(Truncated.into())));
            };
            let read = &mut wire.read;
            match &mut self.state {
                Framed::Length(left) if !read.is_empty() => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
                    let data = read.split_to(n).freeze();
                    *left -= n as u64;
                    if *left == 0 {
                        self.finish(pool);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framed::Chunked(chunked) => match chunked.step(read) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::End) => {
                        self.finish(pool);
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => {}
                    Err(e) => {
                        self.close();
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Framed::Close if !read.is_empty() => {
                    let data = read.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                _ => {}
            }
            read.reserve(READ_ROOM);
            match poll_read_buf(Pin::new(&mut wire.io), cx, read) {
                Poll::Ready(Ok(0)) if matches!(self.state, Framed::Close) => {
                    self.state = Framed::Done;
                    self.close();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    self.close();
                    return Poll::Ready(Some(Err(Truncated.into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    self.close();
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
