//! The bodies an upstream connection carries: the client's request body on its way up
//! ([`ReqBody`], which tells the request when the upload has ended or stalled), and the
//! response body on its way down ([`UpstreamBody`], cut when it stalls).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::errors::Kind;
use super::wire::Reader;
use super::{Conn, Pool};
use crate::body::RequestBody;
use crate::error::BoxError;
use crate::metrics::{RouteStats, UpstreamError};
use crate::util::{deadline_passed, ends_body};

/// A request body going upstream. Bodiless requests (most) carry no [`Progress`]: wrapping
/// them costs nothing.
pub struct ReqBody {
    body: RequestBody,
    progress: Option<Arc<Progress>>,
}

impl ReqBody {
    pub(super) fn plain(body: RequestBody) -> Self {
        ReqBody {
            body,
            progress: None,
        }
    }

    pub(super) fn tracked(body: RequestBody, progress: Arc<Progress>) -> Self {
        ReqBody {
            body,
            progress: Some(progress),
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(p) = &this.progress {
            match &frame {
                Poll::Pending => p.waiting_on_client.store(true, Ordering::Relaxed),
                Poll::Ready(Some(Ok(_))) if !this.body.is_end_stream() => p.moved(),
                Poll::Ready(Some(Ok(_)) | None) => p.finish(),
                Poll::Ready(Some(Err(_))) => {}
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How an upload is going, shared by its body (which writes it), the task driving its
/// connection (which cuts a stalled upload) and the request waiting for the response head
/// (whose `response_timeout` starts once the upload has ended).
pub(super) struct Progress {
    base: Instant,
    /// When the last frame came, in ms since `base`.
    last_ms: AtomicU64,
    /// When the body ended, in ms since `base`; `u64::MAX` until then.
    done_ms: AtomicU64,
    /// The last poll of the body waited for the client (rather than the upstream not asking
    /// for more): who stalled, when nothing moves.
    waiting_on_client: AtomicBool,
    /// Set when the upload was cut for making no progress.
    cut: AtomicBool,
    /// Wakes the waiting request when the body ends.
    pub(super) ended: Notify,
}

impl Progress {
    pub(super) fn new() -> Self {
        Progress {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            done_ms: AtomicU64::new(u64::MAX),
            waiting_on_client: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            ended: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn moved(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.waiting_on_client.store(false, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.done_ms.store(self.now_ms(), Ordering::Relaxed);
        self.ended.notify_one();
    }

    /// When the body ended, if it has.
    pub(super) fn ended_at(&self) -> Option<Instant> {
        match self.done_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.base + Duration::from_millis(ms)),
        }
    }

    /// When the upload is stalled if nothing moves before.
    pub(super) fn stalls_at(&self, idle: Duration) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    pub(super) fn mark_cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    /// Why the request failed, when its upload was cut: 408 when the client stopped
    /// sending, 504 when the upstream stopped reading.
    pub(super) fn cut_error(&self) -> Option<crate::error::RequestError> {
        use crate::error::RequestError;
        if !self.cut.load(Ordering::Relaxed) {
            return None;
        }
        Some(match self.waiting_on_client.load(Ordering::Relaxed) {
            true => RequestError::BodyTimeout,
            false => RequestError::UpstreamTimeout,
        })
    }
}

/// A response body from the upstream. Polling it also drives its connection (the rest of the
/// request body included); once it has ended, the connection goes back to its pool.
pub struct UpstreamBody {
    inner: Inner,
    /// Since when the body has been waiting for the upstream (`None` while data flows).
    stalled_since: Option<Instant>,
    /// The stall timer of a body whose connection is driven elsewhere (made on first need).
    timer: Option<Pin<Box<Sleep>>>,
    /// The route's counters, where a stall is counted as `kind="body_stalled"` (metrics on).
    stats: Option<Arc<RouteStats>>,
}

/// Who reads the body: hyper (uploads, upgrades), the hot path's own codec, or nobody (it
/// came whole with the head).
enum Inner {
    Hyper {
        body: Incoming,
        /// The connection, when this body drives it (no upload going on beside it).
        conn: Option<Box<Conn>>,
        pool: Arc<Pool>,
    },
    Own(Reader, Arc<Pool>),
    /// A body read whole with its head (`None`: none), its connection back in its pool
    /// already. It holds no hold on the pool: cloning the pool's `Arc` for every response
    /// wrote its count from both cores.
    Whole(Option<Bytes>),
}

impl UpstreamBody {
    pub(super) fn new(body: Incoming, conn: Option<Box<Conn>>, pool: Arc<Pool>) -> Self {
        Self::with(Inner::Hyper { body, conn, pool })
    }

    pub(super) fn own(reader: Reader, pool: Arc<Pool>) -> Self {
        Self::with(Inner::Own(reader, pool))
    }

    /// A body that came whole with the head (`None`: no body).
    pub(super) fn whole(data: Option<Bytes>) -> Self {
        Self::with(Inner::Whole(data.filter(|d| !d.is_empty())))
    }

    fn with(inner: Inner) -> Self {
        UpstreamBody {
            inner,
            stalled_since: None,
            timer: None,
            stats: None,
        }
    }

    fn pool(&self) -> Option<&Pool> {
        match &self.inner {
            Inner::Hyper { pool, .. } | Inner::Own(_, pool) => Some(pool),
            Inner::Whole(_) => None,
        }
    }

    /// Counts a stall of this body into a route's metrics too.
    pub fn count_stall_into(&mut self, stats: Arc<RouteStats>) {
        self.stats = Some(stats);
    }

    /// The response has ended: the connection goes back to the pool if it is ready for the
    /// next request. It may not be when the request body is still being sent (the upstream
    /// answered early); then it closes, as a pooled connection must never make its next user
    /// wait for a stranger's upload.
    fn release(&mut self, cx: Option<&mut Context<'_>>) {
        if let Inner::Hyper { conn, pool, .. } = &mut self.inner {
            if let Some(mut conn) = conn.take() {
                if let Some(cx) = cx {
                    conn.drive(cx);
                }
                if conn.driver.is_some() && conn.tx.is_ready() {
                    pool.put_back(conn);
                }
            }
        }
    }

    /// Whether the body has waited for the upstream longer than
    /// `limits.upstream_body_idle_timeout` (then that timeout); if not, the task wakes by
    /// then. The clock is read only when a wait starts, never while data flows.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Option<Duration> {
        // A whole body is never waited for.
        let timeout = self.pool()?.settings.response_body_idle_timeout;
        let since = *self.stalled_since.get_or_insert_with(Instant::now);
        let deadline = since + timeout;
        // The connection's own timer, when this body has it: it bounded the wait for the
        // head, which is over.
        let own = match &mut self.inner {
            Inner::Hyper { conn, .. } => conn.as_mut().map(|c| &mut c.timer),
            Inner::Own(reader, _) => reader.timer(),
            Inner::Whole(_) => None,
        };
        let timer = match own {
            Some(timer) => timer,
            None => self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline))),
        };
        deadline_passed(timer, deadline, cx).then_some(timeout)
    }

    /// Closes the connection: it is mid-response.
    fn close(&mut self) {
        match &mut self.inner {
            Inner::Hyper { conn, .. } => *conn = None,
            Inner::Own(reader, _) => reader.close(),
            Inner::Whole(_) => {}
        }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (body, conn) = match &mut self.inner {
            Inner::Own(reader, pool) => return reader.poll_frame(pool, cx),
            Inner::Whole(data) => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inner::Hyper { body, conn, .. } => (body, conn),
        };
        let mut frame = Pin::new(&mut *body).poll_frame(cx);
        if frame.is_pending() {
            // Read what the upstream sent (asking for more data above may be what lets the
            // connection go on), then look again.
            if let Some(conn) = conn {
                conn.drive(cx);
                frame = Pin::new(&mut *body).poll_frame(cx);
            }
        }
        if ends_body(&frame, &*body) {
            self.release(Some(cx));
        } else if let Poll::Ready(Some(Err(_))) = frame {
            *conn = None;
        }
        frame.map(|f| f.map(|f| f.map_err(BoxError::from)))
    }
}

/// The error a stalled response body ends with: the client's connection is closed without
/// the body's end (HTTP/1.1) or its stream reset (HTTP/2), so it cannot take a truncated
/// body for a whole one.
#[derive(Debug, thiserror::Error)]
#[error("the response body brought nothing for {0:?}")]
pub struct BodyStalled(Duration);

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = this.poll_inner(cx);
        if frame.is_pending() {
            if let Some(timeout) = this.stalled(cx) {
                this.close();
                let e = BodyStalled(timeout);
                if let Some(pool) = this.pool() {
                    pool.note(Kind::BodyStalled, &e);
                }
                if let Some(stats) = &this.stats {
                    stats.count_upstream_error(UpstreamError::BodyStalled);
                }
                return Poll::Ready(Some(Err(e.into())));
            }
            return Poll::Pending;
        }
        this.stalled_since = None;
        frame
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper { body, .. } => body.is_end_stream(),
            Inner::Own(reader, _) => reader.is_end_stream(),
            Inner::Whole(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper { body, .. } => body.size_hint(),
            Inner::Own(reader, _) => reader.size_hint(),
            Inner::Whole(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body without content (HEAD, 204, 304) is never polled: its end is known already.
        // Any other body still unread means the connection is mid-response: it closes (the
        // own codec's reader has pooled its connection at the end already).
        if self.is_end_stream() {
            self.release(None);
        }
    }
}
