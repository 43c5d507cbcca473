//! HTTP/1.1 connections that hold no HTTP state while they wait for the next request.
//!
//! hyper keeps two 8 KiB buffers (and its connection state) for as long as a connection lives,
//! busy or not; a thousand idle keep-alive connections held 16 MiB that way. Here a connection
//! is served in rounds: a round is one hyper connection, started when the client has sent
//! something. Once a request has been answered completely, and only then, the round is ended
//! with hyper's own graceful close of an idle connection, the TLS stream and any bytes hyper
//! read ahead (a pipelined request) are taken back, and the connection waits for readability
//! holding nothing but its TLS state. The next round starts with those bytes.
//!
//! A round ends early only after a request that leaves nothing unread or unwritten: no request
//! body, HTTP/1.1 keep-alive on both sides, no upgrade, and a response body that ended cleanly.
//! Anything else (an upload, `Connection: close`, a failed body, an upgrade) leaves the round to
//! hyper, which then closes or upgrades the connection as it always does.
//!
//! Each request is first offered to the express lane (`express.rs`), which serves plain GETs
//! and HEADs without hyper; a round starts only for what the lane declines, with the bytes the
//! lane read as its read-ahead.
//!
//! The connection's slot under `limits.max_connections` lives in the stream hyper is given, so
//! an upgraded connection keeps it for as long as its tunnel lasts.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tracing::debug;

mod round;

use round::{Round, Tracked};

use super::express::{self, Outcome};
use super::slots::Slot;
use super::{Hold, Http};
use arc_swap::ArcSwap;

use crate::app::AppState;
use crate::util::deadline_passed;

/// Serves one HTTP/1.1 connection until it closes, it idles out, or the server stops.
///
/// Not an `async fn`: the stream is moved into the future once, not kept twice in it.
pub(super) fn serve(
    tls: TlsStream<TcpStream>,
    state: Arc<ArcSwap<AppState>>,
    peer: SocketAddr,
    sni: Option<Arc<str>>,
    http: Arc<Http>,
    hold: Hold,
    slot: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    let round = Arc::new(Round::default());
    let mut io = Io {
        tls: TokioIo::new(tls),
        ahead: Bytes::new(),
        round: round.clone(),
        _slot: slot,
    };
    let (lane_state, lane_sni) = (state.clone(), sni.clone());
    let mut service = {
        let round = round.clone();
        service_fn(move |req: Request<Incoming>| {
            let reusable = round.start(&req);
            // A response the express lane made, for hyper to write.
            let made = round.take_made();
            // The state current now serves this request to its end, even if a reload swaps
            // in another meanwhile: one arc-swap load, no lock.
            let (state, round) = (super::threads::current_state(&state), round.clone());
            // A reference count, not a copy of the name.
            let sni = sni.clone();
            async move {
                let res = match made {
                    Some(res) => res,
                    None => {
                        state
                            .handle(req.map(Into::into), peer, sni.as_deref())
                            .await
                    }
                };
                // hyper closes after an HTTP/1.0 response without a length; a 101 upgrades.
                let reusable = reusable
                    && res.version() == Version::HTTP_11
                    && res.status() != StatusCode::SWITCHING_PROTOCOLS
                    && !res.headers().contains_key(header::CONNECTION);
                Ok::<_, Infallible>(res.map(|body| Tracked {
                    body,
                    round,
                    reusable,
                    ended: false,
                }))
            }
        })
    };
    async move {
        let idle = http.idle;
        let mut stop = pin!(hold.stop_signal());
        // Whether `stop` has been polled once, and so will wake the task.
        let mut stop_armed = false;
        let mut timer = Box::pin(tokio::time::sleep(idle));
        // When the client first sent something the lane could not read yet (a TLS record
        // still incomplete): the head began then, and its time runs from then, however the
        // record's bytes are dribbled.
        let mut begun: Option<Instant> = None;
        loop {
            round.reset();
            if io.ahead.is_empty() && !io.tls_has_news() {
                let (stop, armed) = (stop.as_mut(), &mut stop_armed);
                let wait = begun.map_or(idle, |at| idle.saturating_sub(at.elapsed()));
                if !next_request(&mut io, stop, armed, &hold, &mut timer, wait).await {
                    return;
                }
            }
            // Shutting down with a pipelined request read: hyper, stopped at once, would not
            // start it either.
            if hold.stopping() {
                return close(&mut io, &mut timer).await;
            }
            let lane = express::Lane {
                state: &lane_state,
                peer,
                sni: lane_sni.as_deref(),
                max_head: http.max_head,
                header_read: idle,
                begun,
            };
            let tls = io.tls.inner_mut();
            // Boxed, like hyper's rounds: the task itself keeps no room for a request's state
            // (the lane's read, `handle`, the write), which a quiet connection would carry
            // (about 1.7 KiB more per quiet connection, measured with bench/proxy.sh).
            let lane = Box::pin(express::serve(
                tls,
                &mut io.ahead,
                &mut timer,
                &lane,
                || hold.stopping(),
            ));
            match lane.await {
                Outcome::Quiet => {
                    begun.get_or_insert_with(Instant::now);
                    continue;
                }
                Outcome::Next => {
                    begun = None;
                    continue;
                }
                Outcome::Close => return close(&mut io, &mut timer).await,
                Outcome::Gone => return,
                Outcome::Decline => {}
                Outcome::Replay(res) => round.make(*res),
            }
            begun = None;
            // Boxed, so that the task holds no room for hyper's state between rounds.
            let mut conn = Box::pin(http.h1.serve_connection(io, service).with_upgrades());
            let mut stopping = false;
            // When this round was first seen between requests, and after which request.
            let mut quiet: Option<(u32, Instant)> = None;
            let ended = std::future::poll_fn(|cx| loop {
                if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                if stopping {
                    return Poll::Pending;
                }
                if let Some(request) = round.between() {
                    let since = match quiet {
                        Some((seen, since)) if seen == request => since,
                        _ => quiet.insert((request, Instant::now())).1,
                    } + RELEASE_AFTER;
                    if deadline_passed(&mut timer, since, cx) {
                        // Once: hyper, idle, now closes its state and finishes.
                        round.released.store(true, Relaxed);
                        conn.as_mut().graceful_shutdown();
                        continue;
                    }
                }
                if !stop_armed || hold.stopping() {
                    stop_armed = true;
                    if stop.as_mut().poll(cx).is_ready() {
                        stopping = true;
                        // hyper's shutdown of the stream goes through: close_notify, FIN.
                        round.released.store(false, Relaxed);
                        conn.as_mut().graceful_shutdown();
                        continue;
                    }
                }
                return Poll::Pending;
            })
            .await;
            if let Err(e) = ended {
                debug!(error = %e, "connection ended with an error");
                return;
            }
            if !round.released.load(Relaxed) || stopping {
                // hyper closed the connection itself and shut the stream down.
                return;
            }
            // `None`: upgraded, and the tunnel owns the stream (not after a request that could
            // be released: see `Round::start`).
            let Some(parts) = Pin::into_inner(conn).into_parts() else {
                return;
            };
            io = parts.io;
            service = parts.service;
            io.ahead = join(parts.read_buf, std::mem::take(&mut io.ahead));
        }
    }
}

/// How long a connection stays quiet before its round ends and hyper's buffers are freed. A
/// client sending more than a few requests a second keeps its round (building one costs about
/// a microsecond and a half of CPU per request); one that pauses holds no buffers.
const RELEASE_AFTER: Duration = Duration::from_millis(250);

/// How long closing a connection may wait for the peer to take our close_notify.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(1);

/// Waits between requests, holding only the TLS state, until the client sends again: `true`.
/// `false` once the connection has been closed instead, because the server stops, the socket
/// failed or the client stayed quiet for `idle`.
async fn next_request(
    io: &mut Io,
    mut stop: Pin<&mut impl Future<Output = ()>>,
    stop_armed: &mut bool,
    hold: &Hold,
    timer: &mut Pin<Box<Sleep>>,
    idle: Duration,
) -> bool {
    let deadline = Instant::now() + idle;
    let waited = {
        let mut readable = pin!(io.tls.inner().get_ref().0.readable());
        std::future::poll_fn(|cx| {
            // Once polled, `stop` wakes the task when it fires; polling it again takes a lock
            // all connections share, and every request on a connection passes here.
            if !*stop_armed || hold.stopping() {
                *stop_armed = true;
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some("stopping"));
                }
            }
            match readable.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(None),
                Poll::Ready(Err(_)) => return Poll::Ready(Some("error")),
                Poll::Pending => {}
            }
            if deadline_passed(timer, deadline, cx) {
                Poll::Ready(Some("idle"))
            } else {
                Poll::Pending
            }
        })
        .await
    };
    let Some(waited) = waited else {
        return true;
    };
    debug!(reason = waited, "closing a connection between requests");
    close(io, timer).await;
    false
}

/// Closes the connection: close_notify and FIN, waiting a bounded time for the peer.
async fn close(io: &mut Io, timer: &mut Pin<Box<Sleep>>) {
    let _ = tokio::select! {
        r = io.tls.inner_mut().shutdown() => r,
        () = expired(timer, Instant::now() + SHUTDOWN_WRITE) => Ok(()),
    };
}

/// Resolves once `deadline` has passed.
async fn expired(timer: &mut Pin<Box<Sleep>>, deadline: Instant) {
    std::future::poll_fn(|cx| {
        if deadline_passed(timer, deadline, cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The client's TLS stream as hyper sees it: first the bytes read ahead by the last round, and
/// a record of whether the last read found nothing.
struct Io {
    tls: TokioIo<TlsStream<TcpStream>>,
    ahead: Bytes,
    round: Arc<Round>,
    /// Freed with the stream: when the connection closes, or when the tunnel it was upgraded
    /// to ends (hyper hands this `Io` to the upgrade).
    _slot: Slot,
}

impl Io {
    /// Whether TLS already holds something for hyper to read: decrypted bytes, the client's
    /// close_notify, or an error to report. None of them makes the socket readable again.
    fn tls_has_news(&mut self) -> bool {
        let (_, tls) = self.tls.inner_mut().get_mut();
        match tls.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }
}

impl Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ahead.is_empty() {
            let n = self.ahead.len().min(buf.remaining());
            buf.put_slice(&self.ahead[..n]);
            self.ahead.advance(n);
            if self.ahead.is_empty() {
                // An empty slice would still keep its whole buffer.
                self.ahead = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let read = Pin::new(&mut self.tls).poll_read(cx, buf);
        self.round.read_pending.store(read.is_pending(), Relaxed);
        read
    }
}

impl Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.round.flushed.store(false, Relaxed);
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.round.flushed.store(false, Relaxed);
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.tls).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.round.flushed.store(true, Relaxed);
        }
        flushed
    }

    /// hyper shuts the stream down when its connection is done; a round ended early only
    /// flushes, and the stream goes on.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.round.released.load(Relaxed) {
            Pin::new(&mut self.tls).poll_flush(cx)
        } else {
            // hyper is closing the connection: this round must not be ended early any more.
            self.round.hyper_owns.store(true, Relaxed);
            Pin::new(&mut self.tls).poll_shutdown(cx)
        }
    }
}

/// Bytes hyper read ahead go before those it had not been given yet. Copied: a slice of
/// hyper's read buffer would keep all of it while the connection waits.
fn join(first: Bytes, then: Bytes) -> Bytes {
    if first.is_empty() && then.is_empty() {
        return Bytes::new();
    }
    let mut b = BytesMut::with_capacity(first.len() + then.len());
    b.extend_from_slice(&first);
    b.extend_from_slice(&then);
    b.freeze()
}
