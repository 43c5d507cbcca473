//! The HTTPS listener: accept, TLS handshake (bounded), HTTP/2 or HTTP/1.1 by ALPN, and a
//! graceful shutdown that stops accepting and drains in-flight requests for a bounded time.

mod express;
mod h1;
mod h2;
mod pending;
mod plain;
pub mod slots;
pub mod threads;

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
use crate::config::{Challenge, Config, Limits, TlsSource};
use crate::error::StartError;
use crate::metrics::Metrics;
use crate::tls::acme::Acme;
use crate::tls::sni::{SniResolver, ACME_TLS_ALPN};
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
    /// The certificate from files (`None` with ACME).
    resolver: Option<Arc<ReloadingResolver>>,
    /// With ACME: the per-host certificates, to tell connections on the temporary one.
    sni: Option<Arc<SniResolver>>,
    /// The config the server started with, for the reloader to compare against.
    config: Config,
    /// Connections refused at a limit, for the metrics.
    refused: Arc<slots::Refused>,
}

impl Server {
    /// Loads certificates, builds the state and binds the listeners.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let metrics = config
            .metrics
            .as_ref()
            .map(|_| Arc::new(Metrics::default()));
        let certs = Certs::load(&config, metrics.as_ref())?;
        let state = AppState::new(&config, metrics.as_ref(), None).await?;
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let refused = Arc::<slots::Refused>::default();
        let listener = bind(config.listen).await?;
        let mut tasks = Vec::new();
        if let Some(resolver) = &certs.files {
            tasks.push(tokio::spawn(
                resolver.clone().watch(config.tls.reload_interval),
            ));
        }
        if let Some(acme) = certs.acme {
            tasks.push(tokio::spawn(acme.run()));
        }
        if let Some(addr) = config.http_listen {
            let plain = bind(addr).await?;
            let https_port = listener
                .local_addr()
                .map_or(config.listen.port(), |a| a.port());
            let bound = plain.local_addr().map_or(addr, |a| a);
            info!(http_addr = %bound, "http_listen: ACME challenges, everything else redirected to https");
            let answers = Arc::new(plain::Plain::new(&config, certs.sni.clone(), https_port));
            tasks.push(tokio::spawn(plain::serve(plain, answers)));
        }
        if let (Some(m), Some(settings)) = (&metrics, &config.metrics) {
            let scrape = bind(settings.listen).await?;
            let addr = scrape.local_addr().map_err(|source| StartError::Bind {
                addr: settings.listen,
                source,
            })?;
            info!(metrics_addr = %addr, "serving metrics at /metrics");
            if let Some(r) = &certs.files {
                m.watch_certificate(r.clone());
            }
            if let Some(sni) = &certs.sni {
                m.watch_hosts(sni.clone());
            }
            let counted = refused.clone();
            m.count_refusals(move || counted.counts());
            tasks.push(tokio::spawn(crate::metrics::serve(scrape, m.clone())));
        }
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(certs.tls),
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
            resolver: certs.files,
            sni: certs.sni,
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
    /// `limits.shutdown_grace`. The calling thread is the first of [`threads::count`] serving
    /// threads (see `threads.rs`): call it on a [`threads::runtime`].
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
        let accept = Arc::new(Accept {
            conn: Connection {
                sni: self.sni,
                acceptor: self.acceptor,
                state: self.state,
                http: self.http,
                handshake_timeout: self.handshake_timeout,
            },
            slots,
            refused: self.refused,
            stopped,
        });
        let others = threads::Others::start(&self.listener, threads::count(), &accept);
        accept.serve(&self.listener, shutdown).await;
        others.stop_accepting();
        drop(self.listener);
        for task in self.tasks {
            task.abort();
        }
        let open = accept.slots.open();
        drop(accept);
        info!(open, "stopped accepting; draining connections");
        stop.send_replace(());
        tokio::select! {
            () = stop.closed() => info!("all connections drained"),
            () = tokio::time::sleep(self.limits.shutdown_grace) => {
                warn!(grace = ?self.limits.shutdown_grace, "grace period over; closing the remaining connections");
            }
        }
        others.stop().await;
    }
}

/// What a serving thread needs to accept connections; shared by all of them.
struct Accept {
    /// The template of every connection.
    conn: Connection,
    slots: slots::Slots,
    refused: Arc<slots::Refused>,
    /// Cloned into every connection's [`Hold`].
    stopped: watch::Receiver<()>,
}

impl Accept {
    /// Accepts from `listener` until `until` resolves; each connection goes on in a task of
    /// its own on this thread's runtime.
    async fn serve(&self, listener: &TcpListener, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                biased;
                () = &mut until => return,
                accepted = listener.accept() => {
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
                    let slot = match self.slots.take(peer.ip()) {
                        Ok(slot) => slot,
                        Err(full) => {
                            self.refused.note(full, peer, self.slots.max(full));
                            continue;
                        }
                    };
                    let hold = Hold {
                        stop: self.stopped.clone(),
                    };
                    tokio::spawn(
                        self.conn.clone().start(tcp, peer, hold, slot)
                            // Debug level: an enabled span costs an enter and exit on every poll
                            // of the connection. Lines logged for a request name its peer.
                            .instrument(debug_span!("conn", peer = %peer)),
                    );
                }
            }
        }
    }
}

/// The listener's certificates: from files (watched), or per host from ACME.
struct Certs {
    tls: Arc<rustls::ServerConfig>,
    files: Option<Arc<ReloadingResolver>>,
    sni: Option<Arc<SniResolver>>,
    /// Started once the listeners are bound.
    acme: Option<Arc<Acme>>,
}

impl Certs {
    fn load(config: &Config, metrics: Option<&Arc<Metrics>>) -> Result<Self, StartError> {
        let host = config.public_url.host_str().unwrap_or("localhost");
        if let TlsSource::Acme(settings) = &config.tls.source {
            let hosts = crate::tls::acme::hosts(config);
            let sni = Arc::new(SniResolver::new(hosts, config.data_dir.clone())?);
            let acme = Acme::new(
                settings,
                config.data_dir.clone(),
                sni.clone(),
                metrics.cloned(),
            )?;
            let alpn = settings.challenge == Challenge::TlsAlpn01;
            return Ok(Certs {
                tls: crate::tls::server_config(sni.clone(), alpn)?,
                files: None,
                sni: Some(sni),
                acme: Some(Arc::new(acme)),
            });
        }
        let files =
            crate::tls::cert_files(&config.tls, &config.data_dir, host)?.ok_or_else(|| {
                StartError::Tls {
                    what: "no certificate files".into(),
                    source: None,
                }
            })?;
        let resolver = crate::tls::file_resolver(files)?;
        Ok(Certs {
            tls: crate::tls::server_config(resolver.clone(), false)?,
            files: Some(resolver),
            sni: None,
            acme: None,
        })
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
    /// `limits.max_header_bytes`, for the HTTP/1.1 express lane.
    max_head: usize,
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
            max_head: limits.max_header_bytes,
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

#[derive(Clone)]
struct Connection {
    /// With ACME: connections served the temporary certificate get the 503 page.
    sni: Option<Arc<SniResolver>>,
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
        let session = tls.get_ref().1;
        // RFC 8737 §3: the handshake was the answer; no application data follows.
        if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            return;
        }
        if let Some(sni) = &self.sni {
            if sni.chosen(session.server_name()).is_none() {
                let serve = async move { pending::serve(tls, &self.http, hold, slot).await };
                tokio::spawn(serve.instrument(span));
                return;
            }
        }
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
