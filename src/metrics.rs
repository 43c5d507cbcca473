//! Prometheus metrics (SPEC §7): counted with atomics where requests pass, read and encoded
//! only when Prometheus scrapes `metrics.listen`.
//!
//! prometheus-client's `Family` looks its label set up in a map under a lock and its
//! `Histogram` locks per observation; neither belongs on the proxy path. So each route gets a
//! [`RouteStats`] of its own when a config is built (keyed by prefix, so a reload that keeps a
//! route keeps its counters), requests count into it with relaxed atomic additions, and a
//! custom collector turns the counters into prometheus-client's text encoding at scrape time.

mod encode;
mod histogram;
mod route;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

pub use route::{RouteStats, UpstreamError};

use crate::tls::sni::SniResolver;
use crate::tls::ReloadingResolver;

/// The `Content-Type` of a scrape: the Prometheus text format, version 0.0.4.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Connections refused at accept so far, by the limit's key.
type RefusalCounts = dyn Fn() -> [(&'static str, u64); 2] + Send + Sync;

/// Every metric of the process. Lives as long as the process: config reloads resolve their
/// routes' counters from it again.
#[derive(Default)]
pub struct Metrics {
    /// By route prefix, in the order they were first seen.
    routes: Mutex<Vec<(String, Arc<RouteStats>)>>,
    /// By (provider, outcome). Logins are rare next to requests: a lock is fine here.
    logins: Mutex<BTreeMap<(String, &'static str), u64>>,
    reloads_ok: AtomicU64,
    reloads_error: AtomicU64,
    /// Session store (Redis) operations that failed or timed out.
    session_store_errors: AtomicU64,
    /// Open client connections, read at scrape time from the listener's own count.
    connections: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
    /// Connections refused at a limit, by the limit's key: read at scrape time.
    refused: OnceLock<Box<RefusalCounts>>,
    /// The listener's certificate, whose `notAfter` is read at scrape time.
    tls: OnceLock<Arc<ReloadingResolver>>,
    /// With ACME: each host's certificate, read at scrape time.
    hosts: OnceLock<Arc<SniResolver>>,
    acme_ok: AtomicU64,
    acme_error: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// How a login ended, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Central: the provider vouched for someone and the client got its assertion.
    Completed,
    /// Central: the provider refused, failed or could not be reached.
    Failed,
    /// Gateway: the callback verified the assertion and opened a session.
    Accepted,
    /// Gateway: the callback refused what came back.
    Refused,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Completed => "completed",
            LoginOutcome::Failed => "failed",
            LoginOutcome::Accepted => "accepted",
            LoginOutcome::Refused => "refused",
        }
    }
}

/// The roles' handle for counting logins; does nothing when metrics are off.
#[derive(Debug, Clone, Default)]
pub struct Logins(Option<Arc<Metrics>>);

impl Logins {
    pub fn new(metrics: Option<&Arc<Metrics>>) -> Self {
        Logins(metrics.cloned())
    }

    /// `provider` must come from the config (or from a value this process sealed), never
    /// straight from a request: it is a label, and labels must stay a bounded set.
    pub fn count(&self, provider: &str, outcome: LoginOutcome) {
        if let Some(m) = &self.0 {
            *lock(&m.logins)
                .entry((provider.to_owned(), outcome.label()))
                .or_insert(0) += 1;
        }
    }
}

impl Metrics {
    /// The counters of the route with this prefix (`-`: no route), created on first use.
    /// Called when a config is built, never per request.
    pub fn route(&self, prefix: &str) -> Arc<RouteStats> {
        let mut routes = lock(&self.routes);
        if let Some((_, stats)) = routes.iter().find(|(p, _)| p == prefix) {
            return stats.clone();
        }
        let stats = Arc::new(RouteStats::default());
        routes.push((prefix.to_owned(), stats.clone()));
        stats
    }

    /// Counts a config reload attempt.
    pub fn reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_error
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a failed session store operation (`oauthgate_session_store_errors_total`).
    pub fn session_store_failed(&self) {
        self.session_store_errors.fetch_add(1, Relaxed);
    }

    /// Where `oauthgate_connections` comes from; set once by the listener.
    pub fn count_connections(&self, open: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.connections.set(Box::new(open));
    }

    /// Where `oauthgate_connections_refused_total` comes from; set once by the listener.
    pub fn count_refusals(
        &self,
        refused: impl Fn() -> [(&'static str, u64); 2] + Send + Sync + 'static,
    ) {
        let _ = self.refused.set(Box::new(refused));
    }

    /// The certificate resolver whose certificate's expiry is reported; set once.
    pub fn watch_certificate(&self, tls: Arc<ReloadingResolver>) {
        let _ = self.tls.set(tls);
    }

    /// The ACME resolver whose hosts' certificates' expiry is reported; set once.
    pub fn watch_hosts(&self, hosts: Arc<SniResolver>) {
        let _ = self.hosts.set(hosts);
    }

    /// Counts one finished ACME order (`oauthgate_acme_orders_total{result}`).
    pub fn acme_order(&self, ok: bool) {
        let counter = if ok { &self.acme_ok } else { &self.acme_error };
        counter.fetch_add(1, Relaxed);
    }

    /// The text Prometheus scrapes.
    pub fn render(self: &Arc<Self>) -> String {
        encode::render(self)
    }
}

// The listener: plain HTTP/1.1, `GET /metrics`, 404 for any other path. Kept apart from the
// HTTPS listener so it can stay on a private address.

/// Serves scrapes on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    crate::util::serve_plain(listener, "metrics", move |req| answer(req, &metrics)).await;
}

fn answer(req: &Request<Incoming>, metrics: &Arc<Metrics>) -> Response<Full<Bytes>> {
    let (status, body, kind) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            String::from("not found\n"),
            "text/plain",
        )
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            String::from("GET only\n"),
            "text/plain",
        )
    } else {
        (StatusCode::OK, metrics.render(), CONTENT_TYPE)
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(kind));
    res
}

/// A lock whose holder panicked is still usable: every update is a single insert or add.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
