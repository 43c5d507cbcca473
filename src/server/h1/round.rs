//! What hyper's service and stream tell an HTTP/1.1 connection about its current round, and
//! the response body that reports when an exchange is over (see `h1.rs`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::upgrade::OnUpgrade;

use crate::pages::Body as ResBody;
use crate::util::ends_body;

/// What the service and the stream tell the connection about the current round.
#[derive(Default)]
pub(super) struct Round {
    /// The last request was answered completely and left nothing unread or unwritten.
    pub(super) done: AtomicBool,
    /// Requests seen in this round.
    pub(super) requests: AtomicU32,
    /// The last read from the client found nothing to read.
    pub(super) read_pending: AtomicBool,
    /// Everything written has been flushed to the socket.
    pub(super) flushed: AtomicBool,
    /// The round is left to hyper until it ends: hyper prepared an upgrade (it keeps it
    /// until the connection ends), or it has begun closing the stream.
    pub(super) hyper_owns: AtomicBool,
    /// The round is being ended early: hyper's shutdown of the stream must not reach it.
    pub(super) released: AtomicBool,
    /// `made` holds a response: checked first, so that other requests take no lock.
    pub(super) has_made: AtomicBool,
    /// A response the express lane made but left to hyper to write (`Outcome::Replay`).
    pub(super) made: Mutex<Option<Response<ResBody>>>,
}

impl Round {
    pub(super) fn reset(&self) {
        self.done.store(false, Relaxed);
        self.read_pending.store(false, Relaxed);
        self.flushed.store(true, Relaxed);
        self.hyper_owns.store(false, Relaxed);
        self.released.store(false, Relaxed);
    }

    /// Hands hyper the response to the request it reads next.
    pub(super) fn make(&self, res: Response<ResBody>) {
        if let Ok(mut made) = self.made.lock() {
            *made = Some(res);
            self.has_made.store(true, Relaxed);
        }
    }

    /// The response the lane made, if any.
    pub(super) fn take_made(&self) -> Option<Response<ResBody>> {
        if !self.has_made.swap(false, Relaxed) {
            return None;
        }
        self.made.lock().ok()?.take()
    }

    /// A request arrives; whether it can be the last of a round that ends early. hyper
    /// prepares an upgrade for any `Upgrade` header or CONNECT and hands the stream to it when
    /// the connection ends, whatever the answer was: such a round is never ended early.
    pub(super) fn start(&self, req: &Request<Incoming>) -> bool {
        self.done.store(false, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        if req.extensions().get::<OnUpgrade>().is_some() {
            self.hyper_owns.store(true, Relaxed);
        }
        req.version() == Version::HTTP_11
            && req.body().is_end_stream()
            && !asks_to_close(req.headers())
    }

    /// If the round is between requests, with nothing left to read or write and no next
    /// request in sight: which request it is after. Not once it is being ended.
    pub(super) fn between(&self) -> Option<u32> {
        (self.done.load(Relaxed)
            && self.flushed.load(Relaxed)
            && self.read_pending.load(Relaxed)
            && !self.hyper_owns.load(Relaxed)
            && !self.released.load(Relaxed))
        .then(|| self.requests.load(Relaxed))
    }
}

/// `Connection: close` among the request's connection options.
fn asks_to_close(headers: &HeaderMap) -> bool {
    crate::util::connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("close"))
}

/// A response body that tells the round, when hyper drops it, whether the exchange is over with
/// nothing left behind.
pub(super) struct Tracked {
    pub(super) body: ResBody,
    pub(super) round: Arc<Round>,
    pub(super) reusable: bool,
    pub(super) ended: bool,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = <ResBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        self.ended |= ends_body(&frame, &self.body);
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A body hyper never polled (empty from the start) ends where it stands.
        let ended = self.ended || self.body.is_end_stream();
        self.round.done.store(self.reusable && ended, Relaxed);
    }
}
