//! The application state shared by every connection, and the first and last request phases
//! common to both roles: normalise the path, dispatch to central or gateway, answer errors,
//! echo the request id, log one access line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::body::RequestBody;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tracing::{warn, Level};

use crate::accesslog::{self, AccessLog, Line};
use crate::central::{self, Central};
use crate::config::Config;
use crate::context::{LaterUser, RequestCtx, User, Verdict, X_REQUEST_ID};
use crate::error::{RequestError, StartError};
use crate::gateway::{Carry, Gateway, Prepared};
use crate::metrics::{Logins, Metrics, RouteStats, UpstreamError};
use crate::pages::{self, Body};
use crate::path::NormalPath;
use crate::step::Step;

/// Built from one config, at start-up and by each reload, and swapped in whole
/// (`reload.rs`); every request runs on the one that was current when it started.
pub struct AppState {
    pub central: Option<Central>,
    pub gateway: Option<Gateway>,
    /// `None` when access lines are off (`log.access: false`, or `RUST_LOG` filters the
    /// `access` target out): then nothing on the request path reads a clock for them.
    access: Option<AccessLog>,
    /// Peers whose `X-Request-Id` is kept (`gateway.trusted_proxies`).
    trusted_proxies: Vec<IpAddr>,
    /// `None` when metrics are off: counting a request is then this one check.
    counts: Option<Counts>,
    /// `Strict-Transport-Security`, when `tls.hsts` is set (every response here is HTTPS).
    hsts: Option<HeaderValue>,
}

/// Counters for the requests no gateway route counts.
struct Counts {
    /// Requests no route took (`route="-"`).
    unrouted: Arc<RouteStats>,
    /// The central's endpoints (`route="/oauth"`).
    central: Arc<RouteStats>,
}

impl AppState {
    /// `previous` is the state a reload replaces: what must outlive a reload (upstream pools,
    /// used login nonces) is taken over from it.
    pub async fn new(
        config: &Config,
        metrics: Option<&Arc<Metrics>>,
        previous: Option<&AppState>,
    ) -> Result<Self, StartError> {
        let central = match &config.central {
            Some(c) => {
                let mut central = Central::new(c).await?;
                central.logins = Logins::new(metrics);
                Some(central)
            }
            None => None,
        };
        let gateway = match &config.gateway {
            Some(g) => {
                // The central of this process vouches for logins only when the gateway uses it.
                let own_key = central
                    .as_ref()
                    .filter(|c| g.login.as_ref().is_some_and(|l| l.url == c.issuer()))
                    .map(Central::verifying_key);
                let idle = config.limits.tunnel_idle_timeout;
                let carry = Carry {
                    metrics,
                    previous: previous.and_then(|p| p.gateway.as_ref()),
                };
                Some(Gateway::new(g, &config.data_dir, own_key, idle, carry)?)
            }
            None => None,
        };
        let counts = metrics.map(|m| Counts {
            unrouted: m.route("-"),
            central: m.route(central::PREFIX),
        });
        let access = accesslog::installed()
            .filter(|_| config.log.access && tracing::enabled!(target: "access", Level::INFO));
        Ok(AppState {
            central,
            gateway,
            access,
            counts,
            hsts: config
                .tls
                .hsts
                .and_then(|age| HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()),
            trusted_proxies: config
                .gateway
                .as_ref()
                .map(|g| g.trusted_proxies.clone())
                .unwrap_or_default(),
        })
    }

    /// Serves one request; never fails (errors become pages here, at the one error edge),
    /// echoes its request id and logs one access line.
    /// `sni` is the TLS server name the client sent, if any.
    pub async fn handle(
        &self,
        mut req: Request<RequestBody>,
        peer: SocketAddr,
        sni: Option<&str>,
    ) -> Response<Body> {
        let (mut res, request_id) = self.answer(&mut req, peer, sni).await;
        set_request_id(res.headers_mut(), request_id);
        res
    }

    /// [`handle`](Self::handle), with the request id to echo beside the response rather than
    /// in it: the express lane writes it with the head.
    pub async fn answer(
        &self,
        req: &mut Request<RequestBody>,
        peer: SocketAddr,
        sni: Option<&str>,
    ) -> (Response<Body>, HeaderValue) {
        // The clock is read only for the access log and the metrics.
        let timed = self.counts.is_some() || self.access.is_some();
        let mut ctx = RequestCtx::new(req, peer, sni, timed, &self.trusted_proxies);
        let method = req.method().clone();
        // A Uri clone shares its bytes: no copy of the path for the log line.
        let uri = req.uri().clone();
        // Lent down, not moved: it stays in the caller's frame, and the send's future
        // borrows it (each move copied it, and each level of futures held it again).
        let mut step = self.dispatch(req, &mut ctx);
        let result = match step {
            Step::Answer(answer) => answer,
            Step::Forward(ref mut prepared) => prepared.send().await,
            Step::Later(work) => work.await,
        };
        let failed = self
            .counts
            .as_ref()
            .and(result.as_ref().err())
            .and_then(UpstreamError::of);
        let mut res = match result {
            Ok(mut res) => {
                ctx.decide(Verdict::Pass, None);
                if ctx.user.is_none() {
                    // Empty extensions (every response but a waited-for session's): no work.
                    ctx.user = res.extensions_mut().remove::<LaterUser>().map(|u| u.0);
                }
                res
            }
            Err(e) => {
                ctx.failed(&e);
                // An upstream's failures are logged by its pool, the session store's by the
                // store, rate-limited.
                if e.status().is_server_error() && !e.logged_where_it_failed() {
                    let id = ctx.request_id.to_str().unwrap_or("-");
                    warn!(error = %crate::util::error_chain(&e), peer = %peer.ip(), path = %uri.path(), request_id = id, "request failed");
                }
                pages::error_response(&e, ctx.navigation, &ctx.request_id)
            }
        };
        // A session due for renewal (or sealed with a previous secret): its new cookie, on
        // a response no shared cache may store (else on a later one).
        if let Some(renewed) = ctx.user.as_deref().and_then(User::renewal) {
            crate::cookies::attach_unshared(res.headers_mut(), renewed);
        }
        if let Some(hsts) = &self.hsts {
            res.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        if let (Some(log), Some(started)) = (&self.access, ctx.started) {
            log.write(&access_line(
                &ctx,
                &method,
                uri.path(),
                res.status(),
                started,
            ));
        }
        self.count(&ctx, res.status(), failed);
        (res, ctx.request_id)
    }

    /// Counts an answered request into its route's counters (or `-`), when metrics are on.
    fn count(&self, ctx: &RequestCtx<'_>, status: StatusCode, failed: Option<UpstreamError>) {
        if let Some(counts) = &self.counts {
            let took = ctx.started.map_or(Duration::ZERO, |s| s.elapsed());
            let stats = ctx.stats.unwrap_or(&counts.unrouted);
            stats.record(status.as_u16(), took, failed);
        }
    }

    /// Normalises the path and hands the request to its role; nothing here waits.
    fn dispatch<'a>(
        &'a self,
        req: &'a mut Request<RequestBody>,
        ctx: &mut RequestCtx<'a>,
    ) -> Step<'a, Prepared<'a>> {
        if req.method() == Method::CONNECT {
            return Step::Answer(Err(RequestError::MethodNotAllowed));
        }
        let path = match NormalPath::parse(req.uri().path()) {
            Ok(p) => p,
            Err(e) => return Step::Answer(Err(e)),
        };
        if let Some(central) = &self.central {
            if crate::path::under(path.as_str(), central::PREFIX) {
                ctx.route = Some(central::PREFIX);
                ctx.stats = self.counts.as_ref().map(|c| &*c.central);
                let req = crate::body::take_request(req);
                return Step::Later(Box::pin(async move { central.handle(req, &path).await }));
            }
        }
        match &self.gateway {
            Some(gateway) => gateway.serve(req, path, ctx),
            None => Step::Answer(Err(RequestError::NoRoute)),
        }
    }
}

/// Echoes the request's id in its response, in place of any the upstream sent.
pub fn set_request_id(headers: &mut http::HeaderMap, id: HeaderValue) {
    headers.insert(X_REQUEST_ID.clone(), id);
}

/// The access line of a finished request, read from its context.
fn access_line<'a>(
    ctx: &'a RequestCtx<'_>,
    method: &'a Method,
    path: &'a str,
    status: StatusCode,
    started: Instant,
) -> Line<'a> {
    let (verdict, reason) = ctx.verdict.unwrap_or((Verdict::Pass, None));
    Line {
        time: SystemTime::now(),
        request_id: ctx.request_id.as_bytes(),
        peer: ctx.peer.ip(),
        method: method.as_str(),
        path,
        status: status.as_u16(),
        route: ctx.route.unwrap_or("-"),
        duration: started.elapsed(),
        user: ctx.user.as_deref().map(User::sub),
        verdict,
        reason,
    }
}
