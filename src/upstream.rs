//! Keep-alive HTTP/1.1 connections to one upstream origin, driven by the requests that use them
//! (the client side of the proxy; below both roles, since every response body may be one).
//!
//! Each origin has a [`Pool`]: a stack of idle connections, the most recently used on top.
//! A request takes one (or opens one) and polls it from its own task, first while waiting for
//! the response head, then from the response body ([`UpstreamBody`]). So a proxied request costs
//! no task, channel hand-over or wake-up beyond the client connection's own, as in an
//! event-driven proxy. A connection goes back to the pool once its response body has been read
//! to the end; a body dropped before that (the client went away) closes it.
//!
//! Idle connections are not polled. An upstream that closed one while it idled is noticed when
//! it is taken: the connection is polled once, reads the end of stream (or bytes nobody asked
//! for) and is dropped. A bodiless request whose pooled connection ends before any byte of an
//! answer (the upstream closed it as the request went out) is sent again on a new connection
//! when its method is idempotent, as nginx does; others get a 502. An upload that hyper could
//! not send at all is sent again.
//!
//! A request without body (most) goes over the hot path's own HTTP/1.1 codec ([`wire`], [`h1`],
//! [`chunked`]) and connections of its own; uploads and `CONNECT` go through hyper, on a
//! second stack of idle connections.
//!
//! `Upgrade` requests get a connection of their own, in a task of its own, that is never pooled.

mod body;
pub(crate) mod chunked;
mod conn;
pub mod errors;
pub(crate) mod h1;
mod wire;

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response};
use hyper::body::{Body, Incoming};

use crate::body::RequestBody;
use hyper::client::conn::http1;
use hyper::client::conn::TrySendError;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::debug;

pub use body::UpstreamBody;
use body::{Progress, ReqBody};
use conn::{
    certificate_hint, drive_upload, lock, per_thread, reap, tls_client_config, Conn, Stacks, Stream,
};
use errors::{Errors, Kind};
pub use h1::SetHeaders;
use wire::Wire;

use crate::config::{UpstreamSettings, UpstreamTls};
use crate::error::{RequestError, StartError};
use crate::util::deadline_passed;

/// How the error of a failed connection attempt starts (see [`errors::Kind::of`]).
const CONNECTING: &str = "connecting to";

/// The connections to one origin (`scheme://host:port`).
pub struct Pool {
    /// `host:port`, for connecting.
    address: String,
    /// The origin's authority, the `Host` of requests that do not keep the client's.
    pub host: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    settings: UpstreamSettings,
    /// Idle connections, a stack per serving thread (`util::serving_thread`) for each kind:
    /// a connection is registered with the event loop of the thread that opened it, and is
    /// used there only, so that its I/O never wakes another thread.
    /// Idle hyper connections (uploads).
    idle: Stacks<Conn>,
    /// Idle connections of the hot path's own codec.
    wires: Stacks<Wire>,
    /// How many connections idle, in all stacks, counted only when `max_idle` caps them: a
    /// count that both threads write on every request moves its cache line between cores.
    idle_count: AtomicUsize,
    errors: Errors,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

struct Idle<C> {
    conn: Box<C>,
    since: Instant,
}

impl Pool {
    /// `tls`: the route's `upstream_tls` (an `https` origin's roots and name), if set.
    pub fn new(
        scheme: &Scheme,
        authority: &Authority,
        settings: &UpstreamSettings,
        tls: Option<&UpstreamTls>,
    ) -> Result<Arc<Self>, StartError> {
        let https = *scheme == Scheme::HTTPS;
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host();
        let tls = if https {
            let name = match tls.and_then(|t| t.server_name.clone()) {
                Some(name) => name,
                None => {
                    let name = host.trim_start_matches('[').trim_end_matches(']');
                    ServerName::try_from(name.to_owned())
                        .map_err(|e| StartError::tls(format!("upstream host {host}"), e))?
                }
            };
            let ca = tls.map(|t| t.ca.as_slice()).unwrap_or_default();
            Some((TlsConnector::from(tls_client_config(ca)?), name))
        } else {
            None
        };
        let pool = Arc::new(Pool {
            address: format!("{host}:{port}"),
            host: HeaderValue::from_str(authority.as_str())
                .map_err(|e| StartError::tls(format!("upstream authority {authority}"), e))?,
            tls,
            settings: settings.clone(),
            idle: per_thread(),
            wires: per_thread(),
            idle_count: AtomicUsize::new(0),
            errors: Errors::default(),
        });
        tokio::spawn(reap(Arc::downgrade(&pool)));
        Ok(pool)
    }

    /// Sends `req`, with the headers of `set`, and returns the response head; its body keeps
    /// driving the connection. `Err` is the request's answer: 502, 504 when no head came
    /// within `timeout` of the request's end (its body included), 408 when the client's body
    /// stalled.
    pub async fn send<S: SetHeaders + ?Sized>(
        self: &Arc<Self>,
        req: &mut Request<RequestBody>,
        set: &S,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        // `CONNECT` stays with hyper, which knows a 2xx to it opens a tunnel. The request is
        // lent, not moved: every level of a request's futures is copied once per request,
        // and a reference is 8 bytes of it.
        if req.body().is_end_stream() && req.method() != Method::CONNECT {
            return self.send_bodiless(req, set, Instant::now() + timeout).await;
        }
        let mut req = std::mem::replace(req, Request::new(RequestBody::Empty));
        set.set_in(req.headers_mut());
        // Boxed: hyper's client futures are large, and every request's state would carry
        // their room (the express lane allocates and moves that state once per request).
        Box::pin(self.send_with_hyper(req, timeout)).await
    }

    /// [`send`](Self::send) for a request with a body (or `CONNECT`): hyper's client.
    async fn send_with_hyper(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        // Only an upload is watched: a bodiless request costs nothing more.
        let progress = (!req.body().is_end_stream()).then(|| Arc::new(Progress::new()));
        let mut req = match &progress {
            Some(p) => req.map(|b| ReqBody::tracked(b, p.clone())),
            None => req.map(ReqBody::plain),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let (mut conn, reused) = match self.take().await {
                Some(conn) => (conn, true),
                // Boxed: connecting (a TLS handshake, maybe) is rare, and its future large.
                None => (Box::pin(self.connect(deadline)).await?, false),
            };
            if let Some(progress) = &progress {
                match self.upload(conn, req, progress, timeout).await? {
                    Ok(res) => return Ok(res.map(|b| UpstreamBody::new(b, None, self.clone()))),
                    Err(e) => match progress.cut_error() {
                        Some(cut) => return Err(cut),
                        None => req = retry_or_fail(e, reused)?,
                    },
                }
                continue;
            }
            // Sends the request and drives the connection until the response head is in.
            let mut response = std::pin::pin!(conn.tx.try_send_request(req));
            let sent = poll_fn(|cx| {
                // Write the request (and read the response) first, then look for the head. A
                // closed connection has settled the response future with its error.
                conn.drive(cx);
                if let Poll::Ready(sent) = response.as_mut().poll(cx) {
                    return Poll::Ready(Some(sent));
                }
                match deadline_passed(&mut conn.timer, deadline, cx) {
                    true => Poll::Ready(None),
                    false => Poll::Pending,
                }
            })
            .await;
            let Some(sent) = sent else {
                // The connection is mid-request: it closes with `conn`.
                return Err(RequestError::UpstreamTimeout);
            };
            match sent {
                Ok(res) => {
                    return Ok(res.map(|b| UpstreamBody::new(b, Some(conn), self.clone())));
                }
                Err(e) => req = retry_or_fail(e, reused)?,
            }
        }
    }

    /// A request with a body: the upload may still be going when the response comes back,
    /// and the client may read the response only once it has sent everything. A task of its
    /// own drives such a connection, so that neither direction waits for the other, and
    /// pools it when both are done. `timeout` runs from the end of the upload: a long upload
    /// is no slow answer. An upload that stalls is cut by the driving task instead.
    async fn upload(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        req: Request<ReqBody>,
        progress: &Arc<Progress>,
        timeout: Duration,
    ) -> Result<Result<Response<Incoming>, TrySendError<Request<ReqBody>>>, RequestError> {
        let response = conn.tx.try_send_request(req);
        tokio::spawn(drive_upload(conn, self.clone(), progress.clone()));
        let mut response = std::pin::pin!(response);
        loop {
            if let Some(ended) = progress.ended_at() {
                return tokio::time::timeout_at(ended + timeout, response)
                    .await
                    .map_err(|_| RequestError::UpstreamTimeout);
            }
            tokio::select! {
                biased;
                sent = &mut response => return Ok(sent),
                // A permit is kept when the body ends before this waits: no wake-up is lost.
                () = progress.ended.notified() => {}
            }
        }
    }

    /// Sends an `Upgrade` request on a new connection of its own, driven by a task that hands
    /// the connection over to the upgrade once the upstream switches protocols.
    pub async fn send_upgrade(
        self: &Arc<Self>,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        let io = self.open().await?;
        let (mut tx, driver) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(upstream_error)?;
        tokio::spawn(async move {
            if let Err(e) = driver.with_upgrades().await {
                debug!(error = %e, "upstream connection ended with an error");
            }
        });
        let res = tx.send_request(req).await.map_err(upstream_error)?;
        Ok(res.map(|b| UpstreamBody::new(b, None, self.clone())))
    }

    /// Counts and logs (rate-limited) a failed request, when the failure was the upstream's.
    pub fn failed(&self, e: &RequestError) {
        if let Some(kind) = Kind::of(e) {
            self.note(kind, e);
        }
    }

    fn note(&self, kind: Kind, e: &dyn std::error::Error) {
        self.errors.note(&self.address, kind, e);
    }

    /// The most recently used idle connection that is still open and ready.
    async fn take(&self) -> Option<Box<Conn>> {
        loop {
            // No clock read here: the reaper closes what idled too long.
            let mut conn = self.pop_idle(&self.idle)?;
            // Polling once reads what arrived while the connection idled: nothing, or its
            // end. A pooled connection was ready when it was put back; one that is not ready
            // now is not trusted.
            if poll_fn(|cx| Poll::Ready(conn.poll_ready(cx))).await == Poll::Ready(true) {
                return Some(conn);
            }
        }
    }

    /// The most recently used idle connection of the hot path that is still open and has
    /// received nothing while it idled.
    async fn take_wire(&self) -> Option<Box<Wire>> {
        loop {
            let mut wire = self.pop_idle(&self.wires)?;
            if poll_fn(|cx| Poll::Ready(wire.idle_fit(cx))).await {
                return Some(wire);
            }
        }
    }

    fn put_back(&self, conn: Box<Conn>) {
        self.push_idle(&self.idle, conn);
    }

    fn put_back_wire(&self, wire: Box<Wire>) {
        self.push_idle(&self.wires, wire);
    }

    /// The most recently used connection of this thread's stack in `stacks`.
    fn pop_idle<C>(&self, stacks: &Stacks<C>) -> Option<Box<C>> {
        let conn = lock(stacks.mine()).pop()?.conn;
        if self.settings.max_idle.is_some() {
            self.idle_count.fetch_sub(1, Relaxed);
        }
        Some(conn)
    }

    fn push_idle<C>(&self, stacks: &Stacks<C>, conn: Box<C>) {
        let mut idle = lock(stacks.mine());
        // No cap by default: the pool holds what the load needed (the most connections busy
        // at once in the last `idle_timeout`), as every one of them is about to be needed
        // again. A cap below the concurrency closes a connection after each response and
        // opens another for the next request: a socket in TIME_WAIT per request.
        if let Some(max) = self.settings.max_idle {
            if self.idle_count.load(Relaxed) >= max {
                return;
            }
            self.idle_count.fetch_add(1, Relaxed);
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Boxed, so that requests move a pointer, not the connection's state, around.
    async fn connect(&self, deadline: Instant) -> Result<Box<Conn>, RequestError> {
        let io = self.open().await?;
        let (tx, driver) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(upstream_error)?;
        Ok(Box::new(Conn {
            tx,
            driver: Some(driver),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }))
    }

    /// A TCP (and, for `https`, TLS) connection within the connect timeout.
    async fn open(&self) -> Result<Stream, RequestError> {
        let connect = async {
            let tcp = TcpStream::connect(&self.address).await?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, io::Error>(match &self.tls {
                None => Stream::Plain(tcp),
                Some((connector, name)) => {
                    Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
                }
            })
        };
        match tokio::time::timeout(self.settings.connect_timeout, connect).await {
            Err(_) => Err(RequestError::UpstreamTimeout),
            Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Err(RequestError::UpstreamTimeout),
            Ok(Err(e)) => Err(RequestError::upstream(
                format!("{CONNECTING} {}{}", self.address, certificate_hint(&e)),
                e,
            )),
            Ok(Ok(stream)) => Ok(stream),
        }
    }
}

/// A send that failed: the request back, to send again on a new connection, when the
/// connection closed before the request went out and was a pooled one (the upstream timed it
/// out just now); otherwise the request's error.
fn retry_or_fail(
    mut e: TrySendError<Request<ReqBody>>,
    reused: bool,
) -> Result<Request<ReqBody>, RequestError> {
    if reused {
        if let Some(req) = e.take_message() {
            debug!(error = %e.error(), "pooled upstream connection closed; retrying");
            return Ok(req);
        }
    }
    Err(upstream_error(e.into_error()))
}

/// 504 when the upstream timed out (an I/O timeout anywhere in the chain), 502 otherwise.
fn upstream_error(e: hyper::Error) -> RequestError {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return RequestError::UpstreamTimeout;
        }
        source = s.source();
    }
    RequestError::upstream("the request failed", e)
}
