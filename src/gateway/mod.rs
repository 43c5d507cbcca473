//! The gateway role: a TLS-terminating reverse proxy in front of unmodified apps.
//!
//! Each request goes through the same phases, in this order (the first and last in `app`):
//! normalise the path → the gateway's own endpoints → route → session → policy → rewrite
//! headers and forward (or serve files) → access log.

mod files;
mod forward;
pub mod headers;
mod login;
pub mod path;
pub mod policy;
pub mod routes;
pub mod session;
mod tunnel;
mod upstream;

pub use upstream::UpstreamBody;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::{GatewayConfig, Login, Route, Target};
use crate::error::{RequestError, StartError};
use crate::pages::{self, Body};
use forward::Upstream;
use login::LoginFlow;
use path::NormalPath;
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

    /// Takes one request whose path is already normalised as far as it can without waiting;
    /// returns what is left to do and the route it took.
    pub fn serve(
        &self,
        req: Request<Incoming>,
        path: NormalPath,
        peer: SocketAddr,
    ) -> (Step<'_>, Option<&str>) {
        if routes::under(path.as_str(), &self.auth_prefix) {
            let answer = Box::pin(async move { self.own_endpoint(req, &path, peer).await });
            return (Step::Later(answer), Some(&self.auth_prefix));
        }
        let Some(routed) = self.routes.find(&path) else {
            return (Step::Answer(Err(RequestError::NoRoute)), None);
        };
        let route = &routed.route;
        if let (Destination::Upstream(_), false) = (&routed.to, route.any_host) {
            if let Err(e) = headers::check_host(&req, &self.public_host) {
                return (Step::Answer(Err(e)), Some(&route.prefix));
            }
        }
        let identity = match self.policy(route, &req, &path) {
            Verdict::Pass(identity) => identity,
            Verdict::Stop(answer) => return (Step::Answer(answer), Some(&route.prefix)),
        };
        let step = match &routed.to {
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
                match forward::prepare(to, req, &path, peer, identity) {
                    Ok(prepared) => Step::Forward(prepared),
                    Err(e) => Step::Answer(Err(e)),
                }
            }
        };
        (step, Some(&route.prefix))
    }

    /// The session and policy phases: the identity to forward, or the answer that stops
    /// the request here (login redirect, 401, 403).
    fn policy(&self, route: &Route, req: &Request<Incoming>, path: &NormalPath) -> Verdict {
        let Some(login) = &self.login else {
            return Verdict::Pass(None);
        };
        if route.login == Login::None {
            // No session to open: `decide` would pass without one.
            return Verdict::Pass(None);
        }
        match policy::decide(route, login.sessions.current(req.headers())) {
            Decision::Pass(v) => Verdict::Pass(v.map(|v| v.user_info.clone())),
            Decision::Forbidden(v) => Verdict::Stop(Ok(login.forbidden(
                &v.session,
                req.headers(),
                &target_of(req, path),
            ))),
            Decision::Login => Verdict::Stop(
                login.login_needed(&target_of(req, path), pages::is_navigation(req.headers())),
            ),
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
    let mut pools: HashMap<String, Arc<upstream::Pool>> = HashMap::new();
    RouteTable::new(&config.routes, |route| match &route.target {
        Target::Files(dir) => Ok(Destination::Files(dir.clone())),
        Target::Http { scheme, authority } => {
            let origin = format!("{scheme}://{authority}");
            let pool = match pools.get(&origin) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = upstream::Pool::new(scheme, authority, &config.upstream)?;
                    pools.insert(origin, pool.clone());
                    pool
                }
            };
            Ok(Destination::Upstream(pool))
        }
    })
}

/// What is left to do for a request once it has been routed, without waiting, as far as it
/// goes. Only the proxied request, the common case, is awaited in place; the rest is boxed, so
/// that the future of every request stays small (it is moved and kept per connection).
pub enum Step<'a> {
    /// The answer is known.
    Answer(Result<Response<Body>, RequestError>),
    /// A request ready for its upstream.
    Forward(forward::Prepared<'a>),
    /// Anything else that waits: login endpoints, files, the central role.
    Later(Pin<Box<dyn Future<Output = Result<Response<Body>, RequestError>> + Send + 'a>>),
}

/// What the policy phase decided.
enum Verdict {
    /// Go on, forwarding this identity (if any).
    Pass(Option<HeaderValue>),
    /// Answer now: a login redirect, 401 or 403.
    Stop(Result<Response<Body>, RequestError>),
}

/// The normalised path and original query: where to come back to after logging in.
fn target_of(req: &Request<Incoming>, path: &NormalPath) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", path.encoded()),
        None => path.encoded().to_owned(),
    }
}
