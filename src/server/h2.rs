//! HTTP/2 connections, closed once no stream has been open on them for `limits.idle_timeout`.
//!
//! hyper keeps an HTTP/2 connection for as long as the client answers its PINGs, so a client
//! that opens connections and sends nothing could hold every `max_connections` slot for ever.
//! Each request here counts as an open stream from its arrival until hyper drops its response
//! body (sent, or reset); when none has been open for the idle time, the connection gets a
//! GOAWAY and closes as soon as the client has seen it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::slots::Slot;
use super::{Hold, Http};
use arc_swap::ArcSwap;

use crate::app::AppState;
use crate::pages::Body as ResBody;

/// How long a connection told to go away for idleness may take to finish closing (the client
/// answers the GOAWAY's PING) while no stream is open, before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Not an `async fn`, for the same reason as [`super::h1::serve`]: the connection is built
/// (and boxed) before the future, which then holds a pointer rather than the stream and the
/// connection side by side.
pub(super) fn serve(
    tls: TlsStream<TcpStream>,
    state: Arc<ArcSwap<AppState>>,
    peer: SocketAddr,
    sni: Option<Arc<str>>,
    http: Arc<Http>,
    hold: Hold,
    slot: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    let streams = Arc::new(Streams::new());
    let service = {
        let streams = streams.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            // The state current now serves this stream to its end (see h1.rs).
            let state = super::threads::current_state(&state);
            // Counted from here: a request still waiting for its upstream is an open stream.
            let open = Open::new(&streams);
            let sni = sni.clone();
            async move {
                let res = state
                    .handle(req.map(Into::into), peer, sni.as_deref())
                    .await;
                Ok::<_, Infallible>(res.map(|body| Counted { body, _open: open }))
            }
        })
    };
    let mut conn = Box::pin(http.h2.serve_connection(TokioIo::new(tls), service));
    let idle = http.h2_idle;
    async move {
        // The TLS stream is in `conn`; its slot is freed when this connection ends.
        let _slot = slot;
        let mut stop = pin!(hold.stop_signal());
        // Whether `stop` has been polled once, and so will wake the task.
        let mut stop_armed = false;
        let mut stopping = false;
        // Since when, and for how long, no open stream makes the connection go: the idle
        // time from the start; once told to go away, the time it has to finish closing.
        let (mut quiet_from, mut quiet_for) = (streams.born, idle);
        let mut timer = Box::pin(tokio::time::sleep_until(quiet_from + quiet_for));
        let mut going = false;
        let ended = std::future::poll_fn(|cx| loop {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if !stopping && (!stop_armed || hold.stopping()) {
                stop_armed = true;
                if stop.as_mut().poll(cx).is_ready() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                    continue;
                }
            }
            if streams.quiet(quiet_from, quiet_for, &mut timer, cx) {
                if going {
                    // The client has not finished closing and has nothing open: drop it.
                    return Poll::Ready(None);
                }
                debug!(idle = ?idle, "closing an idle HTTP/2 connection");
                going = true;
                (quiet_from, quiet_for) = (Instant::now(), CLOSE_WAIT);
                timer.as_mut().reset(quiet_from + quiet_for);
                conn.as_mut().graceful_shutdown();
                continue;
            }
            return Poll::Pending;
        })
        .await;
        match ended {
            Some(Err(e)) => debug!(error = %e, "connection ended with an error"),
            Some(Ok(())) => {}
            None => debug!("dropped an HTTP/2 connection that did not finish closing"),
        }
    }
}

/// The streams of one connection: how many are open, and when the last one closed.
struct Streams {
    born: Instant,
    open: AtomicUsize,
    /// When the count last fell to zero, in milliseconds after `born`.
    idle_since: AtomicU64,
}

impl Streams {
    fn new() -> Self {
        Streams {
            born: Instant::now(),
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    /// Whether no stream has been open since `from` + `quiet` (or since the last one closed,
    /// if later). If not, `timer` wakes the task when that may have become true.
    fn quiet(
        &self,
        from: Instant,
        quiet: Duration,
        timer: &mut Pin<Box<Sleep>>,
        cx: &mut Context<'_>,
    ) -> bool {
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = if self.open.load(Ordering::Acquire) > 0 {
                // Busy: look again one idle time from now, the earliest it could be over.
                now + quiet
            } else {
                let closed = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
                (self.born + closed).max(from) + quiet
            };
            if deadline <= now {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        false
    }
}

/// One open stream; dropping it closes it.
struct Open(Arc<Streams>);

impl Open {
    fn new(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::AcqRel);
        Open(streams.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let ms = u64::try_from(self.0.born.elapsed().as_millis()).unwrap_or(u64::MAX);
            // The latest wins when two streams close at once.
            self.0.idle_since.fetch_max(ms, Ordering::AcqRel);
        }
    }
}

/// A response body that keeps its stream counted as open until hyper drops it.
struct Counted {
    body: ResBody,
    _open: Open,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = <ResBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
