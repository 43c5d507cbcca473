//! The HTTPS listener: accept, TLS handshake (bounded), HTTP/2 or HTTP/1.1 by ALPN, and a
//! graceful shutdown that stops accepting and drains in-flight requests for a bounded time.

mod h1;
mod h2;
pub mod slots;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, debug_span, info, warn, Instrument};

use crate::app::AppState;
use crate::config::{Config, Limits};
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::tls::ReloadingResolver;

/// A bound, ready listener; [`Server::run`] serves it.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    /// The current state; a reload swaps in a new one (`reload.rs`).
    state: Arc<ArcSwap<AppState>>,
    http: Arc<Http>,
    limits: Limits,
    /// Peers exempt from `limits.max_connections_per_ip`.
    proxies: Vec<IpAddr>,
    handshake_timeout: Duration,
    /// Background work that ends with the listener: the certificate watch, the metrics
    /// listener, the config reloader.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    metrics: Option<Arc<Metrics>>,
    resolver: Arc<ReloadingResolver>,
    /// The config the server started with, for the reloader to compare against.
    config: Config,
    /// Connections refused at a limit, for the metrics.
    refused: Arc<slots::Refused>,
}

impl Server {
    /// Loads certificates, builds the state and binds the listener.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let host = config.public_url.host_str().unwrap_or("localhost");
        let (tls, resolver) = crate::tls::server_config(&config.tls, &config.data_dir, host)?;
        let metrics = config
            .metrics
            .as_ref()
            .map(|_| Arc::new(Metrics::default()));
        let state = AppState::new(&config, metrics.as_ref(), None).await?;
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let refused = Arc::<slots::Refused>::default();
        let listener = bind(config.listen).await?;
        let mut tasks = vec![tokio::spawn(
            resolver.clone().watch(config.tls.reload_interval),
        )];
        if let (Some(m), Some(settings)) = (&metrics, &config.metrics) {
            let scrape = bind(settings.listen).await?;
            let addr = scrape.local_addr().map_err(|source| StartError::Bind {
                addr: settings.listen,
                source,
            })?;
            info!(metrics_addr = %addr, "serving metrics at /metrics");
            m.watch_certificate(resolver.clone());
            let counted = refused.clone();
            m.count_refusals(move || counted.counts());
            tasks.push(tokio::spawn(crate::metrics::serve(scrape, m.clone())));
        }
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(tls),
            state: Arc::new(ArcSwap::from_pointee(state)),
            http: Arc::new(Http::new(&config.limits)),
            handshake_timeout: config.tls.handshake_timeout,
            proxies: config
                .gateway
                .as_ref()
                .map(|g| g.trusted_proxies.clone())
                .unwrap_or_default(),
            limits: config.limits.clone(),
            tasks,
            metrics,
            resolver,
            config,
            refused,
        })
    }

    /// Reloads the config from `path` on SIGHUP and whenever the file changes (SPEC §7).
    /// Call before announcing the server: from here on SIGHUP no longer ends the process.
    pub fn reload_from(&mut self, path: std::path::PathBuf) -> Result<(), StartError> {
        let reloader = crate::reload::Reloader::new(
            path,
            self.config.clone(),
            self.state.clone(),
            self.metrics.clone(),
            self.resolver.clone(),
        )?;
        self.tasks.push(tokio::spawn(reloader.run()));
        Ok(())
    }

    /// The connections refused at `limits.max_connections(_per_ip)` so far, by limit.
    pub fn refused(&self) -> Arc<slots::Refused> {
        self.refused.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for at most
    /// `limits.shutdown_grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // Every connection holds a receiver: `stop` tells them to finish, and `closed()` is
        // when the last one has.
        let (stop, stopped) = watch::channel(());
        let slots = slots::Slots::new(
            crate::fdlimit::connections_allowed(self.limits.max_connections),
            self.limits.max_connections_per_ip,
            self.proxies,
        );
        if let Some(m) = &self.metrics {
            m.count_connections(slots.open_count());
        }
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
                    // Refused like a full listen queue: the socket is closed before TLS.
                    let slot = match slots.take(peer.ip()) {
                        Ok(slot) => slot,
                        Err(full) => {
                            self.refused.note(full, peer, slots.max(full));
                            continue;
                        }
                    };
                    let conn = Connection {
                        acceptor: self.acceptor.clone(),
                        state: self.state.clone(),
                        http: self.http.clone(),
                        handshake_timeout: self.handshake_timeout,
                    };
                    let hold = Hold {
                        stop: stopped.clone(),
                    };
                    tokio::spawn(
                        conn.start(tcp, peer, hold, slot)
                            // Debug level: an enabled span costs an enter and exit on every poll
                            // of the connection. Lines logged for a request name its peer.
                            .instrument(debug_span!("conn", peer = %peer)),
                    );
                }
            }
        }
        drop(self.listener);
        for task in self.tasks {
            task.abort();
        }
        drop(stopped);
        let open = slots.open();
        info!(open, "stopped accepting; draining connections");
        stop.send_replace(());
        tokio::select! {
            () = stop.closed() => info!("all connections drained"),
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

/// How connections speak HTTP, per protocol.
struct Http {
    h1: http1::Builder,
    h2: http2::Builder<InSpan>,
    /// How long an HTTP/1.1 connection waits for its next request.
    idle: Duration,
    /// How long an HTTP/2 connection may have no open stream.
    h2_idle: Duration,
}

impl Http {
    fn new(limits: &Limits) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes);
        let mut h2 = http2::Builder::new(InSpan);
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        Http {
            h1,
            h2,
            idle: limits.header_read_timeout,
            h2_idle: limits.idle_timeout,
        }
    }
}

/// A connection's hold on the server: the signal to finish up. (Its place under
/// `limits.max_connections` is a [`slots::Slot`], which goes with the client's socket: into a
/// tunnel when the connection is upgraded.)
struct Hold {
    stop: watch::Receiver<()>,
}

impl Hold {
    /// Resolves when the server is shutting down. Once polled, it stays registered for a
    /// wake-up; polling it again takes a lock shared by all connections, so hot paths ask
    /// [`Hold::stopping`] first.
    fn stop_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        // Unconstrained: a poll the task's cooperative budget turned into Pending would not
        // register, and callers poll it again only once it has fired.
        tokio::task::unconstrained(async move {
            let _ = stop.changed().await;
        })
    }

    /// Whether the server is shutting down: one atomic load.
    fn stopping(&self) -> bool {
        self.stop.has_changed().unwrap_or(true)
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    state: Arc<ArcSwap<AppState>>,
    http: Arc<Http>,
    handshake_timeout: Duration,
}

impl Connection {
    /// The TLS handshake. The connection then goes on in a task of its own, so that it does
    /// not carry the room the handshake's state took for as long as it lives.
    async fn start(self, tcp: TcpStream, peer: SocketAddr, hold: Hold, slot: slots::Slot) {
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
        let span = tracing::Span::current();
        // Once per connection: requests compare their host with it (when routes name hosts).
        let sni: Option<Arc<str>> = tls.get_ref().1.server_name().map(Arc::from);
        // HTTP/2 over TLS is chosen by ALPN only (RFC 9113 §3.2); anything else is HTTP/1.1.
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            tokio::spawn(
                h2::serve(tls, self.state, peer, sni, self.http, hold, slot).instrument(span),
            );
        } else {
            tokio::spawn(
                h1::serve(tls, self.state, peer, sni, self.http, hold, slot).instrument(span),
            );
        }
    }
}
