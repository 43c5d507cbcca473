//! The gateway role: a TLS-terminating reverse proxy in front of unmodified apps.
//!
//! Each request goes through the same phases, in this order (the first and last in `app`):
//! normalise the path → the gateway's own endpoints → route → session → policy → rewrite
//! headers and forward (or serve files) → access log.

mod files;
mod forward;
pub mod headers;
pub(crate) mod login;

pub mod policy;
pub mod routes;
pub mod session;
mod tunnel;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::{GatewayConfig, Login, Route, Target, UpstreamSettings};
use crate::context::RequestCtx;
use crate::error::{RequestError, StartError};
use crate::metrics::{Logins, Metrics, RouteStats};
use crate::pages::{self, Body};
use crate::path::NormalPath;
pub use forward::Prepared;
use forward::Upstream;
use login::LoginFlow;
use policy::Decision;
use routes::{Destination, RouteTable};

/// Everything the gateway needs per request, built once at start-up.
pub struct Gateway {
    auth_prefix: String,
    /// The host requests to upstreams must name (see `headers::check_host`).
    public_host: String,
    routes: RouteTable,
    response_timeout: Duration,
    tunnel_idle: Duration,
    /// `None` when no route needs a login.
    login: Option<LoginFlow>,
    /// The counters of the gateway's own endpoints (`auth_prefix`), when metrics are on.
    own_stats: Option<Arc<RouteStats>>,
    /// The pools by origin, and the settings they were built with: a reload that keeps both
    /// keeps the pool and its idle connections.
    pools: HashMap<String, Arc<crate::upstream::Pool>>,
    pool_settings: UpstreamSettings,
}

/// What a gateway built by a reload takes over from the one before, and where it counts.
#[derive(Default, Clone, Copy)]
pub struct Carry<'a> {
    pub metrics: Option<&'a Arc<Metrics>>,
    pub previous: Option<&'a Gateway>,
}

impl Gateway {
    /// `central_key` is the verify key of the central role in this process, if any;
    /// `tunnel_idle` is `limits.tunnel_idle_timeout`.
    pub fn new(
        config: &GatewayConfig,
        data_dir: &Path,
        central_key: Option<VerifyingKey>,
        tunnel_idle: Duration,
        carry: Carry<'_>,
    ) -> Result<Self, StartError> {
        let login = match &config.login {
            Some(source) => {
                let mut flow = LoginFlow::new(config, source, data_dir, central_key)?;
                flow.carry_over(carry.previous.and_then(|g| g.login.as_ref()));
                flow.logins = Logins::new(carry.metrics);
                Some(flow)
            }
            None => None,
        };
        // Pools are kept only when they would be built the same way.
        let kept = carry
            .previous
            .filter(|g| g.pool_settings == config.upstream)
            .map(|g| g.pools.clone())
            .unwrap_or_default();
        let (mut routes, pools) = upstreams(config, kept)?;
        if let Some(m) = carry.metrics {
            routes.count_into(m);
        }
        Ok(Gateway {
            auth_prefix: config.auth_prefix.clone(),
            public_host: config.public_host.clone(),
            routes,
            response_timeout: config.upstream.response_timeout,
            tunnel_idle,
            login,
            own_stats: carry.metrics.map(|m| m.route(&config.auth_prefix)),
            pools,
            pool_settings: config.upstream.clone(),
        })
    }

    /// Takes one request whose path is already normalised as far as it can without waiting:
    /// own endpoints → route → `Host` → session and policy → rewrite for the upstream (or
    /// files). Returns what is left to do; `ctx.route` says which route took it.
    pub fn serve<'a>(
        &'a self,
        req: Request<Incoming>,
        path: NormalPath,
        ctx: &mut RequestCtx<'a>,
    ) -> Step<'a> {
        let peer = ctx.peer;
        if crate::path::under(path.as_str(), &self.auth_prefix) {
            ctx.route = Some(&self.auth_prefix);
            ctx.stats = self.own_stats.as_deref();
            return Step::Later(Box::pin(async move {
                self.own_endpoint(req, &path, peer).await
            }));
        }
        let Some(routed) = self.routes.find(&path) else {
            return Step::Answer(Err(RequestError::NoRoute));
        };
        let route = &routed.route;
        ctx.route = Some(&route.prefix);
        ctx.stats = routed.stats.as_deref();
        if let (Destination::Upstream(_), false) = (&routed.to, route.any_host) {
            if let Err(e) = headers::check_host(&req, &self.public_host) {
                return Step::Answer(Err(e));
            }
        }
        let also = self
            .routes
            .also_judged(&path, routed)
            .map(|r| r.map(|r| &r.route));
        let identity = match self.policy(route, also, &req, &path, ctx.navigation) {
            Ok(identity) => identity,
            Err(e) => return Step::Answer(Err(e)),
        };
        match &routed.to {
            Destination::Files(dir) => Step::Later(Box::pin(async move {
                files::serve(dir, req.method(), &path).await
            })),
            Destination::Upstream(pool) => {
                let to = Upstream {
                    pool,
                    preserve_host: route.preserve_host,
                    response_timeout: self.response_timeout,
                    tunnel_idle: self.tunnel_idle,
                    stats: routed.stats.as_ref(),
                };
                match forward::prepare(to, req, &path, peer, identity) {
                    Ok(prepared) => Step::Forward(prepared),
                    Err(e) => Step::Answer(Err(e)),
                }
            }
        }
    }

    /// Upstream failures so far as (route prefix, kind, count), for
    /// `oauthgate_upstream_errors_total{route,kind}`. Routes to the same origin share its
    /// pool, and so its counts: export one route per origin, or sum by origin.
    #[allow(dead_code)] // read by the metrics exporter
    pub fn upstream_errors(&self) -> Vec<(&str, &'static str, u64)> {
        use crate::upstream::errors::Kind;
        let mut out = Vec::new();
        for routed in self.routes.iter() {
            if let Destination::Upstream(pool) = &routed.to {
                for kind in Kind::ALL {
                    let n = pool.errors().count(kind);
                    out.push((routed.route.prefix.as_str(), kind.as_str(), n));
                }
            }
        }
        out
    }

    /// The session and policy phases: the identity to forward (if any), or why the request
    /// stops here (a login is needed, or `allow` refuses it).
    fn policy(
        &self,
        route: &Route,
        also: [Option<&Route>; 2],
        req: &Request<Incoming>,
        path: &NormalPath,
        navigation: bool,
    ) -> Result<Option<HeaderValue>, RequestError> {
        let Some(login) = &self.login else {
            return Ok(None);
        };
        if route.login == Login::None && also.iter().all(Option::is_none) {
            // No session to open: `decide` would pass without one.
            return Ok(None);
        }
        match policy::decide_all(route, also, login.sessions.current(req.headers())) {
            Decision::Pass(v) => Ok(v.map(|v| v.user_info.clone())),
            Decision::Forbidden(v) => Err(RequestError::Forbidden {
                reason: "forbidden",
                page: navigation.then(|| {
                    login.forbidden_page(&v.session, req.headers(), &target_of(req, path))
                }),
            }),
            Decision::Login => Err(RequestError::LoginRequired {
                login_url: login.login_url(&target_of(req, path)),
                redirect: true,
            }),
        }
    }

    /// The gateway's endpoints under its own prefix (`/_auth` by default).
    async fn own_endpoint(
        &self,
        req: Request<Incoming>,
        path: &NormalPath,
        peer: SocketAddr,
    ) -> Result<Response<Body>, RequestError> {
        let endpoint = path
            .as_str()
            .strip_prefix(self.auth_prefix.as_str())
            .unwrap_or("");
        if endpoint == "/health" {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Err(RequestError::MethodNotAllowed);
            }
            return Ok(pages::json(
                StatusCode::OK,
                &serde_json::json!({ "status": "ok" }),
            ));
        }
        match &self.login {
            Some(login) => match login.endpoint(endpoint, req, &self.routes, peer).await {
                Some(result) => result,
                None => Err(RequestError::NotFound),
            },
            None => Err(RequestError::NotFound),
        }
    }
}

/// The route table, with one connection pool per upstream origin: the one in `kept` (from
/// the config before a reload) when there is one, else a new one. Returns the pools in use.
#[allow(clippy::type_complexity)]
fn upstreams(
    config: &GatewayConfig,
    kept: HashMap<String, Arc<crate::upstream::Pool>>,
) -> Result<(RouteTable, HashMap<String, Arc<crate::upstream::Pool>>), StartError> {
    let mut pools: HashMap<String, Arc<crate::upstream::Pool>> = HashMap::new();
    let table = RouteTable::new(&config.routes, |route| match &route.target {
        Target::Files(dir) => Ok(Destination::Files(dir.clone())),
        Target::Http { scheme, authority } => {
            let origin = format!("{scheme}://{authority}");
            let pool = match pools.get(&origin).or_else(|| kept.get(&origin)) {
                Some(pool) => pool.clone(),
                None => crate::upstream::Pool::new(scheme, authority, &config.upstream)?,
            };
            pools.insert(origin, pool.clone());
            Ok(Destination::Upstream(pool))
        }
    })?;
    Ok((table, pools))
}

/// The gateway's steps: a request ready to forward is a [`forward::Prepared`].
pub type Step<'a> = crate::step::Step<'a, Prepared<'a>>;

/// The normalised path and original query: where to come back to after logging in.
fn target_of(req: &Request<Incoming>, path: &NormalPath) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", path.encoded()),
        None => path.encoded().to_owned(),
    }
}
