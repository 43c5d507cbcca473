//! The gateway role: a TLS-terminating reverse proxy in front of unmodified apps.
//!
//! Each request goes through the same phases, in this order (the first and last in `app`):
//! normalise the path → the gateway's own endpoints → route → methods → session (or bearer
//! token) → policy → rewrite headers and forward (or serve files) → access log.

mod added;
pub mod bearer;
mod client;
mod files;
mod forward;
pub mod headers;
pub mod hosts;
pub mod identity;
pub(crate) mod login;

pub mod policy;
pub mod routes;
pub mod session;
pub mod signer;
mod stored;
mod tunnel;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::body::{take_request, RequestBody};
use ed25519_dalek::VerifyingKey;
use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};

use crate::config::{GatewayConfig, Route, UpstreamSettings};
use crate::context::{RequestCtx, User, Verdict};
use crate::error::{RequestError, StartError};
use crate::metrics::{Logins, Metrics, RouteStats};
use crate::pages::{self, Body};
use crate::path::NormalPath;
pub use forward::Prepared;
use forward::Upstream;
use login::LoginFlow;
use policy::{target_of, Decision, Facts};
use routes::{upstreams, Destination, RouteTable, Routed};
use stored::Presented;

/// Everything the gateway needs per request, built once at start-up.
pub struct Gateway {
    auth_prefix: String,
    /// The host requests to routes without `host:` must name (see `hosts::check_host`).
    public_host: String,
    routes: RouteTable,
    response_timeout: Duration,
    tunnel_idle: Duration,
    /// `None` when no route needs a login.
    login: Option<LoginFlow>,
    /// Peers whose `X-Forwarded-For` says who the client is (for `allow.networks`).
    trusted_proxies: Vec<IpAddr>,
    /// The names of `identity.headers`, removed from client requests on every route.
    also_reserved: Vec<Box<[u8]>>,
    /// The gateway's own key: `None` unless assertions or bearer routes need it.
    signer: Option<signer::Signer>,
    /// `identity.assertion`.
    assertion: bool,
    /// Checks bearer tokens; `None` unless a route has `bearer: true`.
    bearer: Option<Arc<bearer::Bearer>>,
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
        let needs_key = config.identity.assertion || config.routes.iter().any(|r| r.access.bearer);
        let signer = match needs_key {
            true => Some(signer::Signer::load(data_dir, &config.public_url)?),
            false => None,
        };
        let bearer = match (&signer, config.routes.iter().any(|r| r.access.bearer)) {
            (Some(signer), true) => Some(Arc::new(bearer::Bearer::new(config, signer.key())?)),
            _ => None,
        };
        if let Some(b) = &bearer {
            b.warm_up();
        }
        let login = match &config.login {
            Some(source) => {
                let mut flow = LoginFlow::new(config, source, data_dir, central_key)?;
                flow.carry_over(carry.previous.and_then(|g| g.login.as_ref()));
                flow.logins = Logins::new(carry.metrics);
                if let Some(store) = flow.sessions.store() {
                    store.count_into(carry.metrics);
                }
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
            trusted_proxies: config.trusted_proxies.clone(),
            also_reserved: identity::reserved_names(&config.identity.headers),
            signer,
            assertion: config.identity.assertion,
            bearer,
            own_stats: carry.metrics.map(|m| m.route(&config.auth_prefix)),
            pools,
            pool_settings: config.upstream.clone(),
        })
    }

    /// Takes one request whose path is already normalised as far as it can without waiting:
    /// own endpoints → route → `Host` → `methods` → session (or, on a `bearer: true` route
    /// with a token, the token: the one branch that may wait) and policy → rewrite for the
    /// upstream (or files). Returns what is left to do; `ctx.route` says which route took it.
    pub fn serve<'a>(
        &'a self,
        req: &'a mut Request<RequestBody>,
        path: NormalPath,
        ctx: &mut RequestCtx<'a>,
    ) -> Step<'a> {
        let peer = ctx.peer;
        // Only a config whose routes name hosts reads the host to route: others route as
        // they always did, at the same cost.
        let host = match self.routes.by_host() {
            false => None,
            true => match hosts::request_host(req, ctx.sni) {
                Ok(host) => host,
                Err(e) => return Step::Answer(Err(e)),
            },
        };
        if crate::path::under(path.as_str(), &self.auth_prefix) {
            ctx.route = Some(&self.auth_prefix);
            ctx.stats = self.own_stats.as_deref();
            let host = host.map(str::to_owned);
            let req = take_request(req);
            return Step::Later(Box::pin(async move {
                self.own_endpoint(req, &path, peer, host.as_deref()).await
            }));
        }
        let table = self.routes.table(host);
        let Some(routed) = table.find(&path) else {
            return Step::Answer(Err(RequestError::NoRoute));
        };
        let route = &routed.route;
        ctx.route = Some(&routed.label);
        ctx.stats = routed.stats.as_deref();
        // A route of a host took the request by its host; the others serve `public_url`'s
        // host only, unless `preserve_host: any`.
        if let (Destination::Upstream(_), false, None) = (&routed.to, route.any_host, &route.host) {
            if let Err(e) = hosts::check_host(req, &self.public_host) {
                return Step::Answer(Err(e));
            }
        }
        // A browser's preflight has no body: an `OPTIONS` with one is judged like any request
        // (checked only for preflights, so other requests pay nothing).
        let preflight = policy::is_preflight(req.method(), req.headers())
            && hyper::body::Body::is_end_stream(req.body());
        // Before any login: the method is the route's, whoever asks.
        if let Some(allow) = route.access.refuses(req.method(), preflight) {
            return Step::Answer(Err(RequestError::MethodNotListed { allow }));
        }
        let also = table
            .also_judged(&path, routed)
            .map(|r| r.map(|r| &r.route));
        let judged = Judged {
            route,
            also,
            preflight,
            navigation: ctx.navigation,
        };
        if route.access.bearer {
            let id = ctx.request_id.clone();
            if let Some(step) = self.bearer_step(routed, judged, req, peer, id) {
                return step(take_request(req), path);
            }
        }
        // The session is judged for the host the request was routed by (SNI when an HTTP/1.0
        // request names none), never one read again elsewhere.
        let bound = self.login.as_ref().and_then(|l| l.sites.bound(host));
        let session = match self.session_of(judged, req, bound) {
            Ok(session) => session,
            // Redis must be asked: the one other branch that may wait.
            Err(fetch) => {
                let id = ctx.request_id.clone();
                let bound = bound.map(str::to_owned);
                return self.stored_step(
                    routed,
                    judged,
                    fetch,
                    bound,
                    take_request(req),
                    path,
                    peer,
                    id,
                );
            }
        };
        let mut who = None;
        let identity = self.policy(
            judged,
            req,
            &path,
            peer,
            Presented::Cookie(session),
            &mut who,
        );
        ctx.user = who.map(|v| v as Arc<dyn User>);
        match identity {
            Ok(identity) => {
                // A refusal or a login is the error edge's to record (`RequestCtx::failed`).
                ctx.decide(Verdict::Pass, None);
                let id = ctx.request_id.clone();
                self.deliver(routed, req, path, peer, identity, id)
            }
            Err(e) => Step::Answer(Err(e)),
        }
    }

    /// The last phase: the request to its route's upstream (rewritten), or its files.
    fn deliver<'a>(
        &'a self,
        routed: &'a Routed,
        req: &'a mut Request<RequestBody>,
        path: NormalPath,
        peer: SocketAddr,
        identity: Option<identity::Outgoing>,
        request_id: HeaderValue,
    ) -> Step<'a> {
        match &routed.to {
            Destination::Files(dir) => {
                let method = req.method().clone();
                Step::Later(Box::pin(
                    async move { files::serve(dir, &method, &path).await },
                ))
            }
            Destination::Upstream(pool) => {
                let to = Upstream {
                    pool,
                    strip: routed.strip,
                    prefix: &routed.route.prefix,
                    preserve_host: routed.route.preserve_host,
                    response_timeout: self.response_timeout,
                    tunnel_idle: self.tunnel_idle,
                    also_reserved: &self.also_reserved,
                    stats: routed.stats.as_ref(),
                };
                match forward::prepare(to, req, &path, peer, identity, request_id) {
                    Ok(prepared) => Step::Forward(prepared),
                    Err(e) => Step::Answer(Err(e)),
                }
            }
        }
    }

    /// The session and policy phases: the identity to forward (if any), or why the request
    /// stops here (a login is needed, `allow` refuses it, or the client's network does).
    /// The session's user, when there is one, is left in `who` (for the access line).
    fn policy(
        &self,
        j: Judged<'_>,
        req: &Request<RequestBody>,
        path: &NormalPath,
        peer: SocketAddr,
        presented: Presented,
        who: &mut Option<Arc<session::Verified>>,
    ) -> Result<Option<identity::Outgoing>, RequestError> {
        let Judged {
            route,
            also,
            preflight,
            navigation,
        } = j;
        let judged = || std::iter::once(route).chain(also.into_iter().flatten());
        let networks = judged().any(|r| !r.allow.networks.is_empty());
        let needs_session = j.needs_session();
        let login = self.login.as_ref().filter(|_| needs_session);
        // A bearer token stands for the session: the cookie is not read.
        let (session, bearer) = match presented {
            Presented::Cookie(session) => (session, false),
            Presented::Bearer(v) => (Some(v), true),
        };
        if !needs_session && !networks && !bearer {
            // No session to open and no address to check: `decide` would pass.
            return Ok(None);
        }
        let facts = Facts {
            session,
            client: networks
                .then(|| client::client_addr(peer, req.headers(), &self.trusted_proxies))
                .flatten(),
            preflight,
        };
        *who = facts.session.clone();
        match policy::decide_all(route, also, &facts) {
            Decision::Pass(v) => Ok(v.map(|verified| identity::Outgoing {
                assertion: self.assertion_for(route, &verified),
                verified,
            })),
            Decision::Forbidden(v) => Err(RequestError::Forbidden {
                reason: "forbidden",
                page: match (navigation, login) {
                    (true, Some(login)) => {
                        Some(login.forbidden_page(&v.session, &target_of(req, path)))
                    }
                    _ => None,
                },
            }),
            Decision::Network => Err(RequestError::Forbidden {
                reason: "network",
                page: None,
            }),
            Decision::Login => match login {
                Some(login) => Err(RequestError::LoginRequired {
                    login_url: login.login_url(&target_of(req, path)),
                    redirect: true,
                }),
                // A `bearer: true` route of a gateway without logins, and no token.
                None => Err(RequestError::BearerRequired),
            },
        }
    }

    /// What `/_auth/check` needs to judge like a proxied request.
    fn check_context<'s>(
        &'s self,
        peer: SocketAddr,
        host: Option<&'s str>,
    ) -> login::CheckContext<'s> {
        login::CheckContext {
            routes: &self.routes,
            host,
            peer,
            assertion: self.signer.as_ref().filter(|_| self.assertion),
        }
    }

    /// `X-User-Assertion` for a request of `v` to `route`'s upstream, when configured.
    fn assertion_for(&self, route: &Route, v: &session::Verified) -> Option<HeaderValue> {
        let (true, Some(signer), Some(aud)) =
            (self.assertion, &self.signer, &route.access.audience)
        else {
            return None;
        };
        signer.assertion(v, aud, crate::util::now())
    }

    /// The gateway's endpoints under its own prefix (`/_auth` by default).
    async fn own_endpoint(
        &self,
        req: Request<RequestBody>,
        path: &NormalPath,
        peer: SocketAddr,
        host: Option<&str>,
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
        if endpoint == "/jwks" {
            return match (&self.signer, req.method()) {
                (Some(s), &Method::GET | &Method::HEAD) => {
                    Ok(pages::json(StatusCode::OK, &s.jwks()))
                }
                (Some(_), _) => Err(RequestError::MethodNotAllowed),
                (None, _) => Err(RequestError::NotFound),
            };
        }
        match &self.login {
            Some(login) => match login
                .endpoint(endpoint, req, self.check_context(peer, host))
                .await
            {
                Some(result) => result,
                None => Err(RequestError::NotFound),
            },
            None => Err(RequestError::NotFound),
        }
    }
}

/// The routes that judge one request, and whether it is a CORS preflight.
#[derive(Clone, Copy)]
struct Judged<'r> {
    route: &'r Route,
    /// See `RouteTable::also_judged`.
    also: [Option<&'r Route>; 2],
    preflight: bool,
    /// A browser navigation: a refusal gets the page that names who is logged in.
    navigation: bool,
}

/// The gateway's steps: a request ready to forward is a [`forward::Prepared`].
pub type Step<'a> = crate::step::Step<'a, Prepared<'a>>;
