//! `/_auth/check`, for nginx `auth_request` and forward-auth proxies (Caddy `forward_auth`,
//! Traefik `forwardAuth`). The original request, as the proxy describes it, is normalised,
//! routed and judged exactly as a proxied request would be: the same route, `methods`,
//! `login`, `allow` (networks included: the client is the proxy's `X-Forwarded-For`) and
//! identity headers. The answer is 200 with the identity headers to copy, 401, 403, 405, or,
//! for a forward-auth navigation or a `?rd=`, a 302 to the login.

use std::net::SocketAddr;

use crate::body::RequestBody;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tracing::warn;

use super::super::hosts::{forwarded_host, Site};
use super::super::identity::Outgoing;
use super::super::policy::{decide_all, is_preflight, Decision, Facts};
use super::super::routes::RouteTable;
use super::super::signer::Signer;
use super::LoginFlow;
use crate::error::RequestError;
use crate::pages::{self, Body};
use crate::path::NormalPath;
use crate::util::{now, Query};

static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// What `/check` needs of the gateway besides the login flow.
#[derive(Clone, Copy)]
pub struct CheckContext<'a> {
    pub routes: &'a RouteTable,
    /// The host this request is for (`None` unless routes name hosts).
    pub host: Option<&'a str>,
    pub peer: SocketAddr,
    /// Signs `X-User-Assertion` for the judged route's upstream (when `identity.assertion`).
    pub assertion: Option<&'a Signer>,
}

impl LoginFlow {
    /// The original URI (`X-Original-URI`, nginx; or `X-Forwarded-Uri` with
    /// `X-Forwarded-Method`, Caddy and Traefik), believed from trusted proxies only, is
    /// judged as a proxied request. It fails closed: a URI that does not parse is 400, one
    /// that names no route is 403, and so is a URI from a peer that is not a trusted proxy.
    /// Without a URI only the session is checked.
    pub(super) async fn check(
        &self,
        req: &Request<RequestBody>,
        cx: CheckContext<'_>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let header = original_uri(req.headers())?;
        let Some(uri) = header else {
            let session = self
                .sessions
                .resolve(req.headers(), site.bound.as_deref())
                .await?;
            return match session {
                Some(v) => Ok(pass(Outgoing {
                    verified: v,
                    assertion: None,
                })),
                None => self.login_answer(req, None, site),
            };
        };
        // Canonical, as `client_addr` reads it: an IPv4 peer of a dual-stack listener is
        // IPv4-mapped (`::ffff:127.0.0.1`).
        if !self.trusted_proxies.contains(&cx.peer.ip().to_canonical()) {
            warn!(peer = %cx.peer.ip(), "/check: an original URI from a peer not in gateway.trusted_proxies");
            return Err(RequestError::Forbidden {
                reason: "untrusted_proxy",
                page: None,
            });
        }
        let path = original_path(uri).ok_or(RequestError::BadPath(
            "The original URI is not a request path the gateway accepts.",
        ))?;
        // Each proxy's host header goes with its URI header, as its method header does: Caddy
        // and Traefik set `X-Forwarded-Host` with `X-Forwarded-Uri`, replacing a client's;
        // nginx passes the client's own headers on to `auth_request`, so beside
        // `X-Original-URI` the original host is this request's `Host` (the client's, which
        // nginx routed by), never an `X-Forwarded-Host` the client may have written.
        let forward_auth = req.headers().contains_key(&X_FORWARDED_URI);
        let host = match (cx.routes.by_host(), forward_auth) {
            (false, _) => None,
            (true, true) => forwarded_host(req.headers())?.or(cx.host),
            (true, false) => cx.host,
        };
        // One host for everything: the route table, and the session, which must be that
        // host's (see `Session::host`).
        let site = &*self.sites.of(host);
        let session = self
            .sessions
            .resolve(req.headers(), site.bound.as_deref())
            .await?;
        let table = cx.routes.table(host);
        let routed = table.find(&path).ok_or(RequestError::Forbidden {
            reason: "no_route",
            page: None,
        })?;
        let route = &routed.route;
        // Each proxy's method header goes with its URI header: nginx passes the client's own
        // headers on to the check, so beside `X-Original-URI` a client-sent
        // `X-Forwarded-Method` is never read (and `X-Original-Method` counts only for the 405:
        // a client could write it where the operator does not set it). Caddy and Traefik set
        // `X-Forwarded-Method` with `X-Forwarded-Uri`, replacing a client's.
        let method = forwarded_method(req.headers(), forward_auth)?;
        // `Origin` and `Access-Control-Request-Method` are the client's, passed on.
        let preflight = forward_auth
            && method
                .as_ref()
                .is_some_and(|m| is_preflight(m, req.headers()));
        if let Some(allow) = method
            .as_ref()
            .and_then(|m| route.access.refuses(m, preflight))
        {
            return Err(RequestError::MethodNotListed { allow });
        }
        let also = table
            .also_judged(&path, routed)
            .map(|r| r.map(|r| &r.route));
        let networks = std::iter::once(route)
            .chain(also.into_iter().flatten())
            .any(|r| !r.allow.networks.is_empty());
        let facts = Facts {
            session,
            client: networks
                .then(|| {
                    super::super::client::client_addr(cx.peer, req.headers(), &self.trusted_proxies)
                })
                .flatten(),
            preflight,
        };
        match decide_all(route, also, &facts) {
            Decision::Pass(None) => Ok(ok()),
            Decision::Pass(Some(verified)) => {
                let assertion = match (cx.assertion, &route.access.audience) {
                    (Some(s), Some(aud)) => s.assertion(&verified, aud, now()),
                    _ => None,
                };
                Ok(pass(Outgoing {
                    verified,
                    assertion,
                }))
            }
            Decision::Login => self.login_answer(req, Some(uri), site),
            Decision::Forbidden(_) => Err(RequestError::Forbidden {
                reason: "forbidden",
                page: None,
            }),
            Decision::Network => Err(RequestError::Forbidden {
                reason: "network",
                page: None,
            }),
        }
    }

    /// Nobody is logged in: a 302 to the login for a forward-auth proxy's navigation (Caddy
    /// and Traefik hand it to the browser) or when `?rd=` names where to come back to; else
    /// 401 JSON. nginx's `auth_request` (which sends `X-Original-URI`) takes only 2xx, 401
    /// and 403, so it always gets the 401 and redirects itself.
    fn login_answer(
        &self,
        req: &Request<RequestBody>,
        uri: Option<&HeaderValue>,
        site: &Site,
    ) -> Result<Response<Body>, RequestError> {
        let q = Query::of(req);
        let rd = q.get("rd").map(|rd| same_origin_path(rd, &site.origin));
        let forward_auth = req.headers().contains_key(&X_FORWARDED_URI);
        let original = uri.and_then(|v| v.to_str().ok()).unwrap_or("/");
        let login_url = self.login_url(rd.as_deref().unwrap_or(original));
        if rd.is_some() || (forward_auth && pages::is_navigation(req.headers())) {
            // Absolute: the proxy may serve another origin than the gateway's.
            return pages::redirect(StatusCode::FOUND, &format!("{}{login_url}", site.origin));
        }
        Err(RequestError::LoginRequired {
            login_url,
            redirect: false,
        })
    }
}

/// `rd`'s path and query when it is a path or a URL of `origin` (the gateway's, for this
/// request's host); `/` otherwise (the login only ever sends a browser back to its own
/// origin).
fn same_origin_path(rd: &str, origin: &str) -> String {
    if rd.starts_with('/') {
        return rd.to_owned();
    }
    match url::Url::parse(rd) {
        Ok(u) if u.origin().ascii_serialization() == origin => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
        _ => "/".to_owned(),
    }
}

fn ok() -> Response<Body> {
    pages::json(StatusCode::OK, &serde_json::json!({ "ok": true }))
}

/// 200 with the identity headers for the proxy to copy (`copy_headers`,
/// `authResponseHeaders`, `auth_request_set`).
fn pass(identity: Outgoing) -> Response<Body> {
    let mut res = ok();
    identity.set(res.headers_mut());
    // Reaches the browser only through a proxy that copies it (nginx: `auth_request_set`).
    if let Some(renewed) = identity.verified.renewal() {
        res.headers_mut()
            .append(http::header::SET_COOKIE, renewed.clone());
    }
    res
}

/// The original method, if sent (once): `X-Forwarded-Method` from a forward-auth proxy (with
/// `X-Forwarded-Uri`), else `X-Original-Method` (an nginx `proxy_set_header`).
fn forwarded_method(
    headers: &http::HeaderMap,
    forward_auth: bool,
) -> Result<Option<Method>, RequestError> {
    let name = match forward_auth {
        true => &X_FORWARDED_METHOD,
        false => &X_ORIGINAL_METHOD,
    };
    let mut all = headers.get_all(name).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(RequestError::BadPath("Send the original method once."));
    }
    let Some(v) = first else { return Ok(None) };
    Method::from_bytes(v.as_bytes())
        .map(Some)
        .map_err(|_| RequestError::BadPath("X-Forwarded-Method is not a method."))
}

/// The original URI header, if any. Both names at once, or one of them twice, is 400: Caddy
/// `forward_auth` and Traefik pass the client's own headers on beside the one they set, so a
/// client's `X-Original-URI: /public` next to the proxy's `X-Forwarded-Uri: /admin` must not
/// decide which of the two is judged.
pub(crate) fn original_uri(
    headers: &http::HeaderMap,
) -> Result<Option<&HeaderValue>, RequestError> {
    let mut all = headers
        .get_all(&X_ORIGINAL_URI)
        .iter()
        .chain(headers.get_all(&X_FORWARDED_URI).iter());
    let first = all.next();
    if all.next().is_some() {
        return Err(RequestError::BadPath(
            "Send the original URI in one header, X-Original-URI or X-Forwarded-Uri, once.",
        ));
    }
    Ok(first)
}

/// The normalised path of an original request target, read as hyper reads a request line
/// (origin-form or absolute-form; the query is not part of the path).
pub(crate) fn original_path(uri: &HeaderValue) -> Option<NormalPath> {
    let uri = http::Uri::try_from(uri.as_bytes()).ok()?;
    if uri.path().is_empty() || uri.path() == "*" {
        return None;
    }
    NormalPath::parse(uri.path()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_method_from_the_header_of_the_proxy_that_sent_the_uri() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(forwarded_method(&h(&[]), true).unwrap(), None);
        let both = h(&[
            ("x-forwarded-method", "DELETE"),
            ("x-original-method", "POST"),
        ]);
        assert_eq!(forwarded_method(&both, true).unwrap(), Some(Method::DELETE));
        assert_eq!(forwarded_method(&both, false).unwrap(), Some(Method::POST));
        // Beside X-Original-URI a client's X-Forwarded-Method is not read.
        let client = h(&[("x-forwarded-method", "OPTIONS")]);
        assert_eq!(forwarded_method(&client, false).unwrap(), None);
        for bad in [
            h(&[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-method", "DELETE"),
            ]),
            h(&[("x-forwarded-method", "G ET")]),
        ] {
            assert!(forwarded_method(&bad, true).is_err(), "{bad:?}");
        }
    }
}
