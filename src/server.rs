//! The HTTPS listener: accept, TLS handshake (bounded), HTTP/1.1 or HTTP/2 with upgrades, and a
//! graceful shutdown that stops accepting and drains in-flight requests for a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, debug_span, info, warn, Instrument};

use crate::app::AppState;
use crate::config::{Config, Limits, TlsSource};
use crate::error::StartError;

/// A bound, ready listener; [`Server::run`] serves it.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    http: Arc<auto::Builder<InSpan>>,
    limits: Limits,
    handshake_timeout: Duration,
    reload: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Loads certificates, builds the state and binds the listener.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let host = config.public_url.host_str().unwrap_or("localhost");
        let (tls, resolver, files) =
            crate::tls::server_config(&config.tls, &config.data_dir, host)?;
        let reload = matches!(config.tls.source, TlsSource::Files { .. })
            .then(|| tokio::spawn(resolver.watch(files, config.tls.reload_interval)));
        let state = Arc::new(AppState::new(&config).await?);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(tls),
            state,
            http: Arc::new(http_builder(&config.limits)),
            handshake_timeout: config.tls.handshake_timeout,
            limits: config.limits,
            reload,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for at most
    /// `limits.shutdown_grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        debug!(peer = %peer, "connection limit reached, refusing");
                        continue;
                    };
                    let conn = Connection {
                        acceptor: self.acceptor.clone(),
                        state: self.state.clone(),
                        http: self.http.clone(),
                        handshake_timeout: self.handshake_timeout,
                    };
                    let watcher = graceful.watcher();
                    tokio::spawn(
                        async move {
                            conn.serve(tcp, peer, watcher).await;
                            drop(slot);
                        }
                        // Debug level: an enabled span costs an enter and exit on every poll of
                        // the connection. Lines logged for a request name its peer themselves.
                        .instrument(debug_span!("conn", peer = %peer)),
                    );
                }
            }
        }
        drop(self.listener);
        if let Some(reload) = self.reload {
            reload.abort();
        }
        let open = graceful.count();
        info!(open, "stopped accepting; draining connections");
        tokio::select! {
            () = graceful.shutdown() => info!("all connections drained"),
            () = tokio::time::sleep(self.limits.shutdown_grace) => {
                warn!(grace = ?self.limits.shutdown_grace, "grace period over; closing the remaining connections");
            }
        }
    }
}

/// Spawns hyper's tasks (HTTP/2 streams) inside the span of the connection that spawns them,
/// so their log lines carry `conn{peer=…}` like HTTP/1.1 ones.
#[derive(Clone, Copy)]
struct InSpan;

impl<F> hyper::rt::Executor<F> for InSpan
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut.in_current_span());
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<InSpan> {
    let mut builder = auto::Builder::new(InSpan);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

struct Connection {
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    http: Arc<auto::Builder<InSpan>>,
    handshake_timeout: Duration,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let _ = tcp.set_nodelay(true);
        let tls =
            match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!("TLS handshake timed out");
                    return;
                }
            };
        let state = self.state;
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(state.handle(req, peer).await) }
        });
        let conn = self
            .http
            .serve_connection_with_upgrades(TokioIo::new(tls), service);
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            debug!(error = %e, "connection ended with an error");
        }
    }
}
