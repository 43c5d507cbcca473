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

use crate::config::{GatewayConfig, Login, Route, Target};
use crate::context::{RequestCtx, User, Verdict};
use crate::error::{RequestError, StartError};
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
}

impl Gateway {
    /// `central_key` is the verify key of the central role in this process, if any;
    /// `tunnel_idle` is `limits.tunnel_idle_timeout`.
    pub fn new(
        config: &GatewayConfig,
        data_dir: &Path,
        central_key: Option<VerifyingKey>,
        tunnel_idle: Duration,
    ) -> Result<Self, StartError> {
        let login = match &config.login {
            Some(source) => Some(LoginFlow::new(config, source, data_dir, central_key)?),
            None => None,
        };
        Ok(Gateway {
            auth_prefix: config.auth_prefix.clone(),
            public_host: config.public_host.clone(),
            routes: upstreams(config)?,
            response_timeout: config.upstream.response_timeout,
            tunnel_idle,
            login,
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
            return Step::Later(Box::pin(async move {
                self.own_endpoint(req, &path, peer).await
            }));
        }
        let Some(routed) = self.routes.find(&path) else {
            return Step::Answer(Err(RequestError::NoRoute));
        };
        let route = &routed.route;
        ctx.route = Some(&route.prefix);
        if let (Destination::Upstream(_), false) = (&routed.to, route.any_host) {
            if let Err(e) = headers::check_host(&req, &self.public_host) {
                return Step::Answer(Err(e));
            }
        }
        let also = self
            .routes
            .also_judged(&path, routed)
            .map(|r| r.map(|r| &r.route));
        let identity = match self.policy(route, also, &req, &path, ctx) {
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
                };
                let id = ctx.request_id.clone();
                match forward::prepare(to, req, &path, peer, identity, id) {
                    Ok(prepared) => Step::Forward(prepared),
                    Err(e) => Step::Answer(Err(e)),
                }
            }
        }
    }

    /// The session and policy phases: the identity to forward (if any), or why the request
    /// stops here (a login is needed, or `allow` refuses it). The decision and the user go
    /// into `ctx` for the access line.
    fn policy(
        &self,
        route: &Route,
        also: [Option<&Route>; 2],
        req: &Request<Incoming>,
        path: &NormalPath,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<Option<HeaderValue>, RequestError> {
        let Some(login) = &self.login else {
            return Ok(None);
        };
        if route.login == Login::None && also.iter().all(Option::is_none) {
            // No session to open: `decide` would pass without one.
            return Ok(None);
        }
        let navigation = ctx.navigation;
        match policy::decide_all(route, also, login.sessions.current(req.headers())) {
            Decision::Pass(v) => {
                ctx.decide(Verdict::Pass, None);
                let identity = v.as_ref().map(|v| v.user_info.clone());
                ctx.user = v.map(|v| v as Arc<dyn User>);
                Ok(identity)
            }
            Decision::Forbidden(v) => {
                ctx.decide(Verdict::Deny, Some("not_allowed"));
                ctx.user = Some(v.clone());
                Err(RequestError::Forbidden {
                    reason: "forbidden",
                    page: navigation.then(|| {
                        login.forbidden_page(&v.session, req.headers(), &target_of(req, path))
                    }),
                })
            }
            Decision::Login => {
                ctx.decide(Verdict::Login, None);
                Err(RequestError::LoginRequired {
                    login_url: login.login_url(&target_of(req, path)),
                    redirect: true,
                })
            }
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

/// The route table, with one connection pool per upstream origin.
fn upstreams(config: &GatewayConfig) -> Result<RouteTable, StartError> {
    let mut pools: HashMap<String, Arc<crate::upstream::Pool>> = HashMap::new();
    RouteTable::new(&config.routes, |route| match &route.target {
        Target::Files(dir) => Ok(Destination::Files(dir.clone())),
        Target::Http { scheme, authority } => {
            let origin = format!("{scheme}://{authority}");
            let pool = match pools.get(&origin) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = crate::upstream::Pool::new(scheme, authority, &config.upstream)?;
                    pools.insert(origin, pool.clone());
                    pool
                }
            };
            Ok(Destination::Upstream(pool))
        }
    })
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
