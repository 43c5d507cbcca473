//! One upstream connection: its byte stream (TCP or TLS) and TLS settings, the hyper HTTP/1.1
//! state machine (uploads) polled by whichever task uses it, the task that drives an upload's
//! connection, and the reaper of connections idle too long.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::client::TlsStream;
use tracing::debug;

use super::body::{Progress, ReqBody};
use super::{Idle, Pool};
use crate::util::{deadline_passed, PerThread};

/// One HTTP/1.1 connection: the handle requests go through and the state machine that does
/// the I/O, polled by whichever task is using the connection.
pub(super) struct Conn {
    pub(super) tx: SendRequest<ReqBody>,
    /// `None` once the connection has closed.
    pub(super) driver: Option<Connection<TokioIo<Stream>, ReqBody>>,
    /// Bounds the wait for a response head. One timer per connection, re-armed only when it
    /// goes off before the current request's deadline: setting a timer for every request
    /// would cost two timer-wheel updates each.
    pub(super) timer: Pin<Box<Sleep>>,
}

impl Conn {
    /// Does the connection's pending I/O; false once it has closed.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = &mut self.driver else {
            return false;
        };
        match Pin::new(driver).poll(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                if let Err(e) = result {
                    debug!(error = %e, "upstream connection ended with an error");
                }
                self.driver = None;
                false
            }
        }
    }

    /// Ready(true) when a request can be sent, Ready(false) when the connection has closed.
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let open = self.drive(cx);
        match self.tx.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(open),
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending if open => Poll::Pending,
            Poll::Pending => Poll::Ready(false),
        }
    }
}

/// Drives an upload's connection until both the request and the response are done, then
/// pools it. An upload that brings nothing for `limits.body_idle_timeout` is cut: the
/// connection closes, and the waiting request learns why from `progress`.
pub(super) async fn drive_upload(mut conn: Box<Conn>, pool: Arc<Pool>, progress: Arc<Progress>) {
    let idle = pool.settings.body_idle_timeout;
    let mut timer = Box::pin(tokio::time::sleep(idle));
    let open = poll_fn(|cx| {
        if let Poll::Ready(open) = conn.poll_ready(cx) {
            return Poll::Ready(open);
        }
        if progress.ended_at().is_none()
            && deadline_passed(&mut timer, progress.stalls_at(idle), cx)
        {
            progress.mark_cut();
            return Poll::Ready(false);
        }
        Poll::Pending
    })
    .await;
    if open {
        pool.put_back(conn);
    }
}

/// Drops the idle connections older than the idle timeout, every quarter of it, for as long
/// as the pool exists.
pub(super) async fn reap(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => (p.settings.idle_timeout / 4).max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        // Each stack's expired connections close after its lock is released.
        let timeout = pool.settings.idle_timeout;
        let mut gone = 0;
        for stack in pool.idle.all() {
            gone += expired(stack, timeout).len();
        }
        for stack in pool.wires.all() {
            gone += expired(stack, timeout).len();
        }
        if pool.settings.max_idle.is_some() {
            pool.idle_count.fetch_sub(gone, Relaxed);
        }
    }
}

/// A pool's idle connections of one kind: a stack per serving thread, each on cache lines
/// of its own (every request pops and pushes its thread's stack).
pub(super) type Stacks<C> = PerThread<Mutex<Vec<Idle<C>>>>;

/// One empty stack per serving thread.
pub(super) fn per_thread<C>() -> Stacks<C> {
    PerThread::new(|| Mutex::new(Vec::new()))
}

pub(super) fn lock<C>(stack: &Mutex<Vec<Idle<C>>>) -> MutexGuard<'_, Vec<Idle<C>>> {
    stack.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the connections idle for `timeout` or longer out of `stack` (oldest at the bottom).
fn expired<C>(stack: &Mutex<Vec<Idle<C>>>, timeout: Duration) -> Vec<Idle<C>> {
    let mut idle = lock(stack);
    let keep = idle
        .iter()
        .position(|i| i.since.elapsed() < timeout)
        .unwrap_or(idle.len());
    idle.drain(..keep).collect()
}

/// Says what to do when an https upstream's certificate is not trusted, the usual cause
/// being a backend with a self-signed certificate (only on a failed connect).
pub(super) fn certificate_hint(e: &io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_)) => {
            " (its certificate is not trusted: self-signed, or from a private CA? set the \
             route's upstream_tls.ca to that CA's PEM (or the certificate itself), and \
             upstream_tls.server_name when the certificate names another host)"
        }
        _ => "",
    }
}

/// Trusts `ca` only when given (`upstream_tls.ca`), else the public roots.
pub(super) fn tls_client_config(
    ca: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, crate::error::StartError> {
    let roots = match ca {
        [] => rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        ca => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in ca {
                roots
                    .add(cert.clone())
                    .map_err(|e| crate::error::StartError::tls("upstream_tls.ca", e))?;
            }
            roots
        }
    };
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::error::StartError::tls("client protocol versions", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection to an upstream: plain TCP or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
