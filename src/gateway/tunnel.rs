//! An upgraded connection (a WebSocket) relayed both ways until a side closes it, or until no
//! byte has moved either way for `limits.tunnel_idle_timeout`: then both sides are closed.
//!
//! Without the idle limit a tunnel whose client vanished without a FIN (a laptop lid shut, a
//! NAT entry dropped) would hold its client slot, its upstream connection and two sockets for
//! ever.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tracing::debug;

/// How long closing an idle tunnel may wait for each side to take its close.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(1);

/// Copies bytes between `client` and `upstream` until both directions have ended, either
/// side fails, or the tunnel has been quiet for `idle`.
pub async fn relay<C, U>(client: C, upstream: U, idle: Duration) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    // When a byte last came in from either side, in milliseconds after `start`.
    let last = AtomicU64::new(0);
    let mut client = Watched {
        io: client,
        start,
        last: &last,
    };
    let mut upstream = Watched {
        io: upstream,
        start,
        last: &last,
    };
    let copied = {
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        let quiet = quiet_for(idle, start, &last);
        tokio::select! {
            copied = copy => Some(copied),
            () = quiet => None,
        }
    };
    if let Some(copied) = copied {
        return copied.map(|_| ());
    }
    debug!(idle = ?idle, "closing an idle tunnel");
    // Both sides see the tunnel end (TLS close_notify and FIN to the client, FIN upstream);
    // a side that does not take it in time is simply dropped.
    let _ = tokio::time::timeout(SHUTDOWN_WRITE, client.io.shutdown()).await;
    let _ = tokio::time::timeout(SHUTDOWN_WRITE, upstream.io.shutdown()).await;
    Ok(())
}

/// Resolves once no byte has come in for `idle`.
async fn quiet_for(idle: Duration, start: Instant, last: &AtomicU64) {
    let mut timer = pin!(tokio::time::sleep_until(start + idle));
    std::future::poll_fn(|cx| {
        while timer.as_mut().poll(cx).is_ready() {
            let deadline = start + Duration::from_millis(last.load(Relaxed)) + idle;
            if deadline <= Instant::now() {
                return Poll::Ready(());
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await;
}

/// One side of the tunnel, noting when it last gave us bytes. (Reads are enough: every byte
/// written was read from the other side first.)
struct Watched<'a, S> {
    io: S,
    start: Instant,
    last: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Relaxed);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt};

    #[tokio::test]
    async fn a_quiet_tunnel_closes_both_sides_and_a_busy_one_does_not() {
        let (client, mut client_peer) = duplex(1024);
        let (upstream, mut upstream_peer) = duplex(1024);
        let idle = Duration::from_millis(500);
        let relay = tokio::spawn(relay(client, upstream, idle));
        // Traffic every 150 ms, either way, for three idle times: never quiet for long.
        for i in 0..10 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let (from, to) = if i % 2 == 0 {
                (&mut client_peer, &mut upstream_peer)
            } else {
                (&mut upstream_peer, &mut client_peer)
            };
            from.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            to.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
        }
        assert!(!relay.is_finished(), "a busy tunnel was closed");
        let last = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("an idle tunnel is closed")
            .unwrap()
            .unwrap();
        let took = last.elapsed();
        assert!(
            took >= Duration::from_millis(450),
            "closed {took:?} after the last byte"
        );
        // Both peers see the end.
        let mut rest = Vec::new();
        assert_eq!(client_peer.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(upstream_peer.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
